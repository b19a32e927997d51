//! The command line: one binary, a daemon and the client verbs that drive it.
//! These names are a contract (scripts outside this repo use them).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    about = "Runs an appliance's services, each in its own namespaces, root filesystem and cgroup",
    after_help = "Client commands find the daemon through --state-dir, else $SUPERVISOR_STATE_DIR, \
                  else the state_dir of -c FILE, else /run/supervisor."
)]
pub struct Cli {
    /// Directory of the daemon's control socket, logs and runtime state (also
    /// taken after the daemon and client commands, where it applies).
    #[arg(long, env = "SUPERVISOR_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground: start autostart services and supervise them.
    Daemon(DaemonArgs),
    /// Start services.
    Start(Names),
    /// Stop services (stop_signal, then kill after stop_timeout).
    Stop(Names),
    /// Stop, then start services.
    Restart(Names),
    /// Show the state of all services, or of those named.
    Status {
        /// Services to show, in this order (all when none is named).
        names: Vec<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: OptConfigArg,
    },
    /// Print a service's log, or every service's interleaved (without NAME).
    /// Reads the log files: works without a running daemon.
    Logs {
        /// The service (all services, interleaved, without it).
        name: Option<String>,
        /// Print only the last LINES lines.
        #[arg(short = 'n', long = "lines", value_name = "LINES")]
        lines: Option<usize>,
        /// Keep printing as the log grows.
        #[arg(short, long)]
        follow: bool,
        /// Print the service's output as written: by default its control
        /// characters (escape sequences, carriage returns) show as `\xNN`.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        config: OptConfigArg,
    },
    /// Run a command in a running service: its namespaces, cgroup, root, user,
    /// capabilities and seccomp filter. Exit status: the command's (126: it
    /// cannot be executed, 127: not found).
    Exec {
        /// Give the command a pseudo-terminal.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Run as this user (NAME, UID or UID:GID) instead of the service's.
        #[arg(short = 'u', long = "user", value_name = "USER")]
        user: Option<String>,
        /// Set an environment variable (KEY=VALUE, or KEY to pass ours on).
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory inside the service (default: the service's).
        #[arg(short = 'w', long = "workdir", value_name = "DIR")]
        workdir: Option<PathBuf>,
        /// The service.
        name: String,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
        #[command(flatten)]
        config: OptConfigArg,
    },
    /// Print what the kernel made of a running service, as JSON.
    Inspect {
        /// The running service.
        name: String,
        #[command(flatten)]
        config: OptConfigArg,
    },
    /// Live CPU, memory, pids and I/O of services (all without NAME), until Ctrl-C.
    Stats {
        /// Services to show (all running ones when none is named).
        names: Vec<String>,
        /// Print one sample and exit.
        #[arg(long)]
        no_stream: bool,
        /// Print JSON (an array per sample, one a line).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: OptConfigArg,
    },
    /// Print services' lifecycle events as they happen (started, exited, restarting,
    /// frozen, stopped, ...), one a line, until Ctrl-C or the daemon's exit.
    Events {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
        /// First print the past events of this long ago up to now (e.g. 30s, 10m,
        /// 1h; the daemon keeps the last 1000).
        #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
        since: Option<std::time::Duration>,
        #[command(flatten)]
        config: OptConfigArg,
    },
    /// Freeze every process of services (cgroup freezer).
    Freeze(Names),
    /// Thaw frozen services.
    Thaw(Names),
    /// Re-read the service list and reconcile: start new, stop removed, restart changed.
    Reload(OptConfigArg),
    /// Stop all services and the daemon.
    Shutdown(OptConfigArg),
    /// Exec the daemon's binary from disk again (after an upgrade), keeping every service running.
    Reexec(OptConfigArg),
    /// Boot the machine as its PID 1 (what the kernel runs as init; also the
    /// default when started as PID 1 without a subcommand): mounts, hostname,
    /// sysctls, watchdog, then the daemon on /etc/supervisor/services.yaml
    /// (or `supervisor.config=PATH` on the kernel command line).
    Boot,
    /// Stop every service, then power the machine off (only when the daemon is PID 1).
    Poweroff(OptConfigArg),
    /// Stop every service, then reboot the machine (only when the daemon is PID 1).
    Reboot(OptConfigArg),
    /// Stop every service, then halt the machine (only when the daemon is PID 1).
    Halt(OptConfigArg),
    /// Validate a service list and print its errors.
    Check(ConfigArg),
    /// Run one service of the file in the foreground, without a daemon.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Give the service a pseudo-terminal.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// The service to run.
        name: String,
        /// Override the service's command.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Write a service as an OCI runtime bundle (config.json and rootfs) for runc, crun, containerd...
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// The service to export.
        name: String,
        /// Where the bundle goes: a new or empty directory.
        dir: PathBuf,
    },
    /// Manage root filesystem images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print a shell completion script (e.g. `supervisor completions bash > /etc/bash_completion.d/supervisor`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for supervisor and each of its commands into DIR.
    Manpages {
        /// Where the pages go (created if missing), e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
    /// Internal: sets up a service's container inside its new namespaces, then
    /// execs init. Started by the supervisor itself, never by users.
    #[command(hide = true, name = "container-setup")]
    ContainerSetup,
    /// Internal: enters a running service and execs a command (`exec`).
    #[command(hide = true, name = "exec-setup")]
    ExecSetup,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The service list (YAML).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Directory of the control socket, logs and runtime state (instead of the file's state_dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Internal (`reexec`): the listener and client descriptors the previous image handed over.
    #[arg(long = "reexec-fds", hide = true, value_name = "FDS")]
    pub reexec_fds: Option<String>,
}

/// How a client command finds the daemon: only these commands take
/// `--state-dir` (image commands, `check`, `run` and `export` do not use one).
#[derive(Debug, Args)]
pub struct OptConfigArg {
    /// The service list, used to find the daemon's state_dir.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the daemon's control socket, logs and runtime state.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Names {
    /// The services.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub config: OptConfigArg,
}

#[derive(Debug, Args)]
pub struct ImagesDirArgs {
    /// Directory that holds the images.
    #[arg(long, value_name = "DIR")]
    pub images_dir: Option<PathBuf>,
    /// Take images_dir from this service list.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import a root filesystem: an export tarball (plain, gzip, zstd), an OCI layout, or a directory.
    Import {
        /// The image's name (letters, digits, ., _ and -).
        name: String,
        /// A tarball (plain, gzip or zstd; /dev/stdin reads a pipe), an OCI layout or a directory.
        file: PathBuf,
        /// Replace an image of the same name, atomically (refused while a service uses it).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dirs: ImagesDirArgs,
    },
    /// List images.
    Ls {
        #[command(flatten)]
        dirs: ImagesDirArgs,
    },
    /// Remove an image (refused while a service uses it).
    Rm {
        /// The image to remove.
        name: String,
        #[command(flatten)]
        dirs: ImagesDirArgs,
    },
    /// Build a busybox root filesystem from the host's static busybox.
    BuildBusybox {
        /// The new image's name.
        name: String,
        #[command(flatten)]
        dirs: ImagesDirArgs,
    },
}
