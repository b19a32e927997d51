//! Integration tests for `init`, run for real as root: once as PID 1 of a new
//! PID namespace (through `unshare --fork --pid --mount-proc`) and once as a
//! plain child subreaper. They synchronise through the child's output and
//! files, and never assert timings.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use integration_tests::{bin, read_to_end, require_root, BoundedChild, BoundedCommand, BOUND};

/// How init runs in a test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Pid1,
    Subreaper,
}

const MODES: [Mode; 2] = [Mode::Pid1, Mode::Subreaper];

/// `init INIT_ARGS -- COMMAND...`, as PID 1 of a new PID namespace or not.
fn init(mode: Mode, init_args: &[&str], command: &[&str]) -> Command {
    require_root();
    let mut cmd = match mode {
        Mode::Pid1 => {
            let mut cmd = Command::new("unshare");
            cmd.args(["--fork", "--pid", "--mount-proc"])
                .arg(bin("init"));
            cmd
        }
        Mode::Subreaper => Command::new(bin("init")),
    };
    cmd.args(init_args).arg("--").args(command);
    cmd
}

/// `init INIT_ARGS -- sh -c SCRIPT`.
fn init_sh(mode: Mode, init_args: &[&str], script: &str) -> Command {
    init(mode, init_args, &["sh", "-c", script])
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .bounded_output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {output:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running init whose main child talks to the test line by line on stdout.
/// Dropping it before `finish` (a failed test) kills init and everything below.
struct Session {
    process: Child,
    lines: std::sync::mpsc::Receiver<String>,
    mode: Mode,
}

impl Session {
    fn start(mut cmd: Command, mode: Mode) -> Session {
        let mut process = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let stdout = BufReader::new(process.stdout.take().expect("stdout"));
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Session {
            process,
            lines,
            mode,
        }
    }

    /// The child's next line (waits generously, so that a lost signal fails
    /// the test instead of hanging it).
    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the child's output ended or stalled")
    }

    /// Host pid of init: our child, or unshare's child in PID 1 mode.
    fn init_pid(&self) -> i32 {
        let pid = self.process.id() as i32;
        match self.mode {
            Mode::Subreaper => pid,
            Mode::Pid1 => {
                let path = format!("/proc/{pid}/task/{pid}/children");
                let children = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{path} (CONFIG_PROC_CHILDREN needed): {e}"));
                children
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("unshare has forked init")
            }
        }
    }

    fn signal(&self, signal: i32) {
        let pid = self.init_pid();
        // SAFETY: kill takes plain numbers; the pid is our own init.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// Waits for init to exit; returns its exit code and stderr.
    fn finish(&mut self) -> (i32, String) {
        let stderr = read_to_end(self.process.stderr.take().expect("stderr"));
        let status = self.process.bounded_wait().expect("waiting for init");
        let stderr = stderr
            .recv_timeout(BOUND)
            .expect("init's stderr stayed open after it exited");
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let code = status
            .code()
            .unwrap_or_else(|| panic!("init killed: {status:?}"));
        (code, stderr)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        kill_tree(&mut self.process);
    }
}

/// Kills `process` and all its descendants unless it has exited already:
/// cleanup after a failed test.
fn kill_tree(process: &mut Child) {
    if !matches!(process.try_wait(), Ok(None)) {
        return;
    }
    let mut tree = vec![process.id() as i32];
    let mut next = 0;
    while let Some(&pid) = tree.get(next) {
        let children = format!("/proc/{pid}/task/{pid}/children");
        let children = std::fs::read_to_string(children).unwrap_or_default();
        tree.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
        next += 1;
    }
    for pid in tree {
        // SAFETY: kill takes plain numbers; these are our own processes.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = process.wait();
}

/// Runs `test` with `process`, which is killed with its descendants if the
/// test fails.
fn with_process<T>(process: Child, test: impl FnOnce(&mut Child) -> T) -> T {
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            kill_tree(&mut self.0);
        }
    }
    let mut guard = Guard(process);
    test(&mut guard.0)
}

/// Process state letter from /proc/PID/stat.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Waits (bounded, generously) until `pid` is in a state `wanted` accepts.
fn await_state(pid: i32, wanted: impl Fn(Option<char>) -> bool) {
    for _ in 0..6000 {
        if wanted(process_state(pid)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!(
        "process {pid} never reached the expected state: {:?}",
        process_state(pid)
    );
}

/// Count of zombies whose parent is the shell's parent (init), then the
/// wait for init to reap them all (bounded).
const AWAIT_NO_ZOMBIES: &str = r#"
zombies() {
    cat /proc/[0-9]*/stat 2>/dev/null |
        awk -v pp="$PPID" '{ sub(/^.*\) /, ""); if ($1 == "Z" && $2 == pp) n++ } END { print n + 0 }'
}
n=0
while [ "$(zombies)" != 0 ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
echo "zombies=$(zombies)"
"#;

#[test]
fn reaps_ten_thousand_orphans() {
    // INIT_TEST_ORPHANS lowers the count where forks are slow: the arm64 stage
    // (tests/arm64) runs under software emulation.
    let orphans: usize = std::env::var("INIT_TEST_ORPHANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    for mode in MODES {
        // `(true &)`: the subshell exits at once, so `true` is orphaned and
        // reparented to init, which has to reap it.
        let script = format!(
            "i=0; while [ $i -lt {orphans} ]; do (true &); i=$((i + 1)); done\n{AWAIT_NO_ZOMBIES}"
        );
        let mut cmd = init_sh(mode, &[], &script);
        cmd.env("INIT_LOG", "trace");
        let output = run(cmd);
        let stderr = text(&output.stderr);
        assert_eq!(
            code(&output),
            0,
            "{mode:?}: {}",
            stderr.lines().last().unwrap_or("")
        );
        assert_eq!(text(&output.stdout).trim(), "zombies=0", "{mode:?}");
        let reaped = stderr
            .lines()
            .filter(|l| l.starts_with("init: trace: reaped"))
            .count();
        assert!(
            reaped > orphans,
            "{mode:?}: init reaped only {reaped} processes"
        );
    }
}

/// Signals the main child traps and reports; `init` must pass each one on.
fn forwards_each_signal(mode: Mode, signals: &[i32]) {
    let traps: String = signals
        .iter()
        .map(|s| format!("trap 'echo got {s}' {s}\n"))
        .collect();
    let script = format!(
        "{traps}trap 'echo got 15; exit 0' 15\necho ready\nsleep 1000 & p=$!\nwhile :; do wait $p; done"
    );
    let mut session = Session::start(init_sh(mode, &[], &script), mode);
    assert_eq!(session.line(), "ready");
    for &signal in signals.iter().chain(&[libc::SIGTERM]) {
        session.signal(signal);
        assert_eq!(session.line(), format!("got {signal}"), "{mode:?}");
    }
    let (code, stderr) = session.finish();
    assert_eq!(code, 0, "{mode:?}: {stderr}");
}

const FORWARDED: [i32; 19] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSYS,
    libc::SIGTRAP,
    40, // a real-time signal
];

#[test]
fn forwards_signals_as_pid1() {
    let job_control = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];
    forwards_each_signal(Mode::Pid1, &[&FORWARDED[..], &job_control].concat());
}

#[test]
fn forwards_signals_as_subreaper() {
    forwards_each_signal(Mode::Subreaper, &FORWARDED);
}

#[test]
fn job_control_stop_stops_init_too_like_dumb_init() {
    let script = "trap 'echo got 20' 20; trap 'echo got 18' 18; trap 'exit 0' 15\n\
                  echo ready; sleep 1000 & p=$!; while :; do wait $p; done";
    let mut session = Session::start(init_sh(Mode::Subreaper, &[], script), Mode::Subreaper);
    assert_eq!(session.line(), "ready");
    let pid = session.init_pid();
    session.signal(libc::SIGTSTP);
    assert_eq!(session.line(), "got 20");
    await_state(pid, |s| s == Some('T'));
    session.signal(libc::SIGCONT);
    await_state(pid, |s| s != Some('T'));
    assert_eq!(session.line(), "got 18");
    session.signal(libc::SIGTERM);
    assert_eq!(session.finish().0, 0);
}

#[test]
fn process_group_option_signals_the_whole_group() {
    let script = "(trap 'echo sub got 10; exit 0' 10; echo sub ready; sleep 1000 & wait $!) &\n\
                  trap 'echo main got 10' 10; trap 'exit 0' 15\n\
                  echo main ready; sleep 1000 & p=$!; while :; do wait $p; done";
    let mode = Mode::Subreaper;
    let mut session = Session::start(init_sh(mode, &["-g"], script), mode);
    let mut ready = [session.line(), session.line()];
    ready.sort();
    assert_eq!(ready, ["main ready", "sub ready"]);
    session.signal(libc::SIGUSR1);
    let mut got = [session.line(), session.line()];
    got.sort();
    assert_eq!(got, ["main got 10", "sub got 10"]);
    session.signal(libc::SIGTERM);
    assert_eq!(session.finish().0, 0);
}

#[test]
fn exit_status_is_passed_on() {
    for mode in MODES {
        for (script, expected) in [
            ("exit 0", 0),
            ("exit 3", 3),
            ("kill -TERM $$", 128 + 15),
            ("kill -KILL $$", 128 + 9),
        ] {
            let output = run(init_sh(mode, &[], script));
            assert_eq!(code(&output), expected, "{mode:?} {script}: {output:?}");
        }
    }
}

#[test]
fn forwarded_term_kills_the_child_with_128_plus_15() {
    for mode in MODES {
        let mut session = Session::start(
            init(mode, &[], &["sh", "-c", "echo ready; exec sleep 1000"]),
            mode,
        );
        assert_eq!(session.line(), "ready");
        session.signal(libc::SIGTERM);
        assert_eq!(session.finish().0, 128 + 15, "{mode:?}");
    }
}

#[test]
fn expected_exit_codes_map_to_zero() {
    for (args, script, expected) in [
        (&["-e", "3"][..], "exit 3", 0),
        (&["-e", "3", "-e", "4"], "exit 4", 0),
        (&["-e", "3"], "exit 5", 5),
        (&["--expect-exit=143"], "kill -TERM $$", 0),
    ] {
        let output = run(init_sh(Mode::Subreaper, args, script));
        assert_eq!(code(&output), expected, "{args:?} {script}");
    }
}

#[test]
fn argv_passes_verbatim() {
    let args: [&OsStr; 6] = [
        OsStr::new("two words"),
        OsStr::new(""),
        OsStr::new("ünïcödé ✓"),
        OsStr::from_bytes(b"\xff\xfe not utf-8"),
        OsStr::new("--grace"),
        OsStr::new("-e"),
    ];
    for mode in MODES {
        // `; :` keeps the shell from exec'ing cat in its place (busybox sh does).
        let mut cmd = init_sh(mode, &[], "cat /proc/$$/cmdline; :");
        cmd.arg("argv0").args(args);
        let output = run(cmd);
        assert_eq!(code(&output), 0, "{mode:?}");
        let mut expected = b"sh\0-c\0cat /proc/$$/cmdline; :\0argv0\0".to_vec();
        for arg in args {
            expected.extend_from_slice(arg.as_bytes());
            expected.push(0);
        }
        assert_eq!(output.stdout, expected, "{mode:?}");
    }
}

/// The SigBlk/SigIgn/SigCgt lines of the child's /proc status, when init
/// itself was started with signals ignored and blocked.
#[test]
fn child_gets_empty_signal_mask_and_default_dispositions() {
    for mode in MODES {
        let mut cmd = init(mode, &[], &["cat", "/proc/self/status"]);
        // SAFETY: signal and sigprocmask are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                for signal in [
                    libc::SIGINT,
                    libc::SIGQUIT,
                    libc::SIGHUP,
                    libc::SIGPIPE,
                    libc::SIGTSTP,
                ] {
                    libc::signal(signal, libc::SIG_IGN);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for signal in [libc::SIGUSR1, libc::SIGTERM, libc::SIGTTOU, libc::SIGCHLD] {
                    libc::sigaddset(&mut set, signal);
                }
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let output = run(cmd);
        assert_eq!(code(&output), 0, "{mode:?}");
        let status = text(&output.stdout);
        for field in ["SigBlk", "SigIgn", "SigCgt"] {
            let line = status
                .lines()
                .find(|l| l.starts_with(&format!("{field}:")))
                .unwrap_or_else(|| panic!("no {field} in {status}"));
            assert!(line.ends_with("0000000000000000"), "{mode:?}: {line}");
        }
    }
}

#[test]
fn child_gets_no_extra_file_descriptors() {
    for mode in MODES {
        // `; :` keeps the shell from exec'ing ls, whose own fd 3 would show.
        let mut cmd = init_sh(mode, &[], "ls /proc/$$/fd; :");
        // SAFETY: close is async-signal-safe; only descriptors >= 3 go.
        unsafe {
            cmd.pre_exec(|| {
                for fd in 3..1024 {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let output = run(cmd);
        assert_eq!(code(&output), 0, "{mode:?}");
        assert_eq!(text(&output.stdout), "0\n1\n2\n", "{mode:?}");
    }
}

#[test]
fn leftovers_get_term_then_kill_after_the_grace() {
    for mode in MODES {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        // One leftover exits on SIGTERM, one ignores it; the main child waits
        // until both have set their traps, then exits with 7.
        let script = format!(
            "sh -c 'trap \"echo polite >> {d}/log; exit 0\" TERM; echo $$ > {d}/polite.tmp; mv {d}/polite.tmp {d}/polite; while :; do sleep 1; done' &\n\
             sh -c 'trap \"echo stubborn >> {d}/log\" TERM; echo $$ > {d}/stubborn.tmp; mv {d}/stubborn.tmp {d}/stubborn; while :; do sleep 1; done' &\n\
             while [ ! -e {d}/polite ] || [ ! -e {d}/stubborn ]; do sleep 0.05; done\n\
             exit 7"
        );
        let output = run(init_sh(mode, &["--grace", "1s"], &script));
        let stderr = text(&output.stderr);
        assert_eq!(code(&output), 7, "{mode:?}: {stderr}");
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        assert!(
            log.contains("polite"),
            "{mode:?}: polite leftover got no SIGTERM: {log:?}"
        );
        assert!(
            log.contains("stubborn"),
            "{mode:?}: stubborn leftover got no SIGTERM: {log:?}"
        );
        assert!(
            stderr.contains("SIGKILL"),
            "{mode:?}: no SIGKILL logged: {stderr}"
        );
        if mode == Mode::Subreaper {
            for name in ["polite", "stubborn"] {
                let pid: i32 = read_pid(&dir.path().join(name));
                assert!(
                    process_state(pid).is_none(),
                    "{mode:?}: {name} ({pid}) survived"
                );
            }
        }
    }
}

fn read_pid(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path).expect("pid file");
    text.trim().parse().expect("pid")
}

#[test]
fn no_grace_wait_when_leftovers_exit_on_term() {
    for mode in MODES {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let script = format!(
            "sh -c 'trap \"exit 0\" TERM; touch {d}/ready; while :; do sleep 1; done' &\n\
             while [ ! -e {d}/ready ]; do sleep 0.05; done"
        );
        // A grace of an hour: the test only ends if init does not wait it out.
        let output = run(init_sh(mode, &["--grace", "60m"], &script));
        let stderr = text(&output.stderr);
        assert_eq!(code(&output), 0, "{mode:?}: {stderr}");
        assert!(!stderr.contains("SIGKILL"), "{mode:?}: {stderr}");
    }
}

#[test]
fn subreaper_is_logged() {
    let mut cmd = init(Mode::Subreaper, &[], &["true"]);
    cmd.env("INIT_LOG", "info");
    let output = run(cmd);
    // The success line only, not the failure ("cannot become a child subreaper").
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("not PID 1: registered as a child subreaper")
            && !stderr.contains("cannot become"),
        "{stderr:?}"
    );
}

/// One line on stderr and tini's exit code.
fn assert_error(cmd: Command, expected: i32) {
    let output = run(cmd);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), expected, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("init: "), "{stderr:?}");
}

#[test]
fn errors_use_tini_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_executable = dir.path().join("data");
    std::fs::write(&not_executable, "just data").expect("write");
    let raw = |args: &[&str]| {
        let mut cmd = Command::new(bin("init"));
        cmd.args(args);
        cmd
    };
    assert_error(
        init(Mode::Subreaper, &[], &["no-such-command-anywhere"]),
        127,
    );
    assert_error(init(Mode::Subreaper, &[], &["/no/such/path"]), 127);
    let path = not_executable.to_str().expect("utf-8 temp path");
    assert_error(init(Mode::Subreaper, &[], &[path]), 126);
    assert_error(
        init(Mode::Subreaper, &[], &[dir.path().to_str().expect("utf-8")]),
        126,
    );
    assert_error(raw(&[]), 2);
    assert_error(raw(&["--"]), 2);
    assert_error(raw(&["--bogus", "true"]), 2);
    assert_error(raw(&["-p", "SIGNOPE", "true"]), 2);
    assert_error(raw(&["-e", "300", "true"]), 2);
    assert_error(raw(&["--grace", "soon", "true"]), 2);
    assert_error(init(Mode::Pid1, &[], &["no-such-command-anywhere"]), 127);
}

#[test]
fn help_and_version() {
    let with_arg = |arg| {
        let mut cmd = Command::new(bin("init"));
        cmd.arg(arg);
        cmd
    };
    let help = run(with_arg("--help"));
    assert_eq!(code(&help), 0);
    assert!(text(&help.stdout).contains("Usage: init"));
    let version = run(with_arg("--version"));
    assert_eq!(code(&version), 0);
    assert!(text(&version.stdout).starts_with("init "));
}

#[test]
fn parent_death_signal_reaches_init_and_the_child() {
    // An intermediate shell starts init in the background and exits: init's
    // parent dies, init gets SIGTERM and forwards it; the child reports it.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let init = bin("init");
    let inner = format!(
        "trap 'echo got TERM > {d}/got; exit 0' TERM; touch {d}/ready; sleep 1000 & wait $!"
    );
    let outer = format!(
        "{} -p SIGTERM -- sh -c \"$1\" & while [ ! -e {d}/ready ]; do sleep 0.05; done",
        init.display()
    );
    let output = run({
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &outer, "sh", &inner]);
        cmd
    });
    assert_eq!(code(&output), 0);
    let got = dir.path().join("got");
    for _ in 0..6000 {
        if std::fs::read_to_string(&got).is_ok_and(|t| t.contains("got TERM")) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the child never got the parent-death signal");
}

/// ELF program headers: a static binary has no PT_INTERP.
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).expect("reading the binary");
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes")) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .any(|i| u32::from_le_bytes(elf[phoff + i * phentsize..][..4].try_into().expect("4")) == 3)
}

#[test]
fn binary_is_static_and_runs_in_an_empty_root() {
    require_root();
    let init = bin("init");
    assert!(
        !has_interpreter(&init),
        "{} is dynamically linked",
        init.display()
    );
    let busybox = PathBuf::from("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: apt-get install busybox-static"
    );
    assert!(
        !has_interpreter(&busybox),
        "/bin/busybox is not static: install busybox-static"
    );

    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("bin")).expect("mkdir");
    std::fs::copy(&init, root.path().join("init")).expect("copy init");
    std::fs::copy(&busybox, root.path().join("bin/busybox")).expect("copy busybox");
    for mode in MODES {
        let mut cmd = match mode {
            Mode::Pid1 => {
                let mut cmd = Command::new("unshare");
                cmd.args(["--fork", "--pid", "chroot"]);
                cmd
            }
            Mode::Subreaper => Command::new("chroot"),
        };
        cmd.arg(root.path())
            .args([
                "/init",
                "--",
                "/bin/busybox",
                "sh",
                "-c",
                "echo hello from $$; exit 7",
            ])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let output = run(cmd);
        let expected = if mode == Mode::Pid1 {
            "hello from 2\n"
        } else {
            "hello from "
        };
        assert_eq!(code(&output), 7, "{mode:?}: {}", text(&output.stderr));
        assert!(
            text(&output.stdout).starts_with(expected),
            "{mode:?}: {:?}",
            text(&output.stdout)
        );
    }
}

#[test]
fn child_gets_the_terminal_foreground() {
    require_root();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = Command::new(bin("init"));
    cmd.args(["--", "cat", "/proc/self/stat"])
        .stdin(Stdio::from(pty.slave.try_clone().expect("dup")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid and ioctl are async-signal-safe. The new session makes
    // the pty its controlling terminal, with init in the foreground.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd
        .spawn()
        .and_then(|child| child.bounded_wait_with_output())
        .expect("running init on a pty");
    drop(pty);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let stat = text(&output.stdout);
    let pid: i32 = stat
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let fields: Vec<i32> = stat[stat.rfind(')').expect(")") + 4..]
        .split_whitespace()
        .take(5)
        .map(|f| f.parse().expect("number"))
        .collect();
    let (group, foreground) = (fields[1], fields[4]);
    assert_eq!(
        group, pid,
        "the child is not in its own process group: {stat}"
    );
    assert_eq!(
        foreground, group,
        "the child's group is not the terminal's foreground: {stat}"
    );
}

/// Everything read so far from a pty master, filled by a reader thread.
struct Terminal {
    master: std::fs::File,
    output: std::sync::Arc<(std::sync::Mutex<Vec<u8>>, std::sync::Condvar)>,
}

impl Terminal {
    fn new(master: std::os::fd::OwnedFd) -> Terminal {
        let master = std::fs::File::from(master);
        let output =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let (mut reader, sink) = (master.try_clone().expect("dup"), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the shell and init have closed the terminal.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.0.lock().expect("lock").extend_from_slice(&buf[..n]);
                sink.1.notify_all();
            }
        });
        Terminal { master, output }
    }

    fn type_in(&mut self, text: &str) {
        std::io::Write::write_all(&mut self.master, text.as_bytes()).expect("typing");
    }

    /// Waits (bounded, generously) until the terminal's foreground process
    /// group is led by a process named `name`.
    fn await_foreground(&self, name: &str) {
        for _ in 0..6000 {
            let group = nix::unistd::tcgetpgrp(&self.master).expect("tcgetpgrp");
            let comm = std::fs::read_to_string(format!("/proc/{group}/comm")).unwrap_or_default();
            if comm.trim_end() == name {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let output = self.output.0.lock().expect("lock");
        panic!("{name} never got the terminal: {:?}", text_of(&output));
    }

    /// Waits (bounded, generously) until `text` has appeared `times` times.
    fn expect(&self, text: &str, times: usize) {
        let (lock, ready) = &*self.output;
        let mut output = lock.lock().expect("lock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let seen = String::from_utf8_lossy(&output).matches(text).count();
            if seen >= times {
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "never saw {text:?} x{times} in {:?}",
                text_of(&output)
            );
            output = ready.wait_timeout(output, left).expect("lock").0;
        }
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn interactive_shell_job_control_works_through_init() {
    require_root();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = || Stdio::from(pty.slave.try_clone().expect("dup"));
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-i"])
        .env("PS1", "$ ")
        .env("INIT", bin("init"))
        .stdin(slave())
        .stdout(slave())
        .stderr(slave());
    // SAFETY: setsid and ioctl are async-signal-safe; the pty becomes the
    // controlling terminal of bash's new session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shell = cmd.spawn().expect("bash is needed for this test");
    drop(cmd);
    drop(pty.slave);
    let mut term = Terminal::new(pty.master);
    let status = with_process(shell, |shell| {
        term.await_foreground("bash");
        term.type_in("\"$INIT\" -- cat\n");
        term.await_foreground("cat");
        term.type_in("hello\n");
        term.expect("hello", 2); // the terminal's echo, then cat's
        term.type_in("\x1a"); // ^Z: cat stops, init follows, bash gets the job back
        term.expect("Stopped", 1);
        term.await_foreground("bash");
        term.type_in("fg\n");
        term.await_foreground("cat");
        term.type_in("again\n");
        term.expect("again", 2);
        term.type_in("\x04"); // ^D: cat, then init, exit
        term.await_foreground("bash");
        term.type_in("echo \"RC=[$?]\"\n");
        term.expect("RC=[0]", 1);
        term.type_in("exit\n");
        shell.bounded_wait().expect("waiting for bash")
    });
    assert!(status.success(), "{status:?}");
}
