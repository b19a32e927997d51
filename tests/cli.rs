//! Conventions of both command lines: `--version`, shell completions and man
//! pages generated from the CLI definition.

use std::process::Command;

use integration_tests::bin;

fn output(binary: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin(binary))
        .args(args)
        .output()
        .expect("run binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn both_binaries_print_their_version() {
    let version = env!("CARGO_PKG_VERSION");
    for binary in ["supervisor", "init"] {
        let (ok, stdout, stderr) = output(binary, &["--version"]);
        assert!(ok, "{binary} --version: {stderr}");
        assert!(
            stdout.contains(version),
            "{binary} --version printed {stdout:?}"
        );
    }
}

#[test]
fn completions_cover_every_shell_and_command() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, script, stderr) = output("supervisor", &["completions", shell]);
        assert!(ok, "completions {shell}: {stderr}");
        for verb in ["daemon", "freeze", "status", "image"] {
            assert!(script.contains(verb), "{shell} script lacks `{verb}`");
        }
        assert!(
            !script.contains("container-setup"),
            "{shell} script offers the internal command"
        );
    }
    let (ok, _, stderr) = output("supervisor", &["completions", "tcsh"]);
    assert!(!ok, "an unknown shell must fail");
    assert!(stderr.contains("tcsh"), "{stderr}");
}

#[test]
fn a_man_page_for_every_visible_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pages = dir.path().join("man1");
    let (ok, _, stderr) = output("supervisor", &["manpages", pages.to_str().unwrap()]);
    assert!(ok, "manpages: {stderr}");
    for page in [
        "supervisor",
        "supervisor-daemon",
        "supervisor-freeze",
        "supervisor-run",
        "supervisor-image-ls",
        "supervisor-completions",
    ] {
        let text = std::fs::read_to_string(pages.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        assert!(text.contains(&format!(".TH {page} 1")), "{page}.1:\n{text}");
        assert!(text.contains(".SH SYNOPSIS"), "{page}.1:\n{text}");
    }
    assert!(
        !pages.join("supervisor-container-setup.1").exists(),
        "the internal command got a page"
    );
}

/// Every visible command of `supervisor` (and of `supervisor image`).
const COMMANDS: &[&[&str]] = &[
    &["daemon"],
    &["start"],
    &["stop"],
    &["restart"],
    &["status"],
    &["logs"],
    &["exec"],
    &["inspect"],
    &["stats"],
    &["freeze"],
    &["thaw"],
    &["reload"],
    &["shutdown"],
    &["boot"],
    &["poweroff"],
    &["reboot"],
    &["halt"],
    &["check"],
    &["run"],
    &["export"],
    &["completions"],
    &["manpages"],
    &["image", "import"],
    &["image", "ls"],
    &["image", "rm"],
    &["image", "build-busybox"],
];

#[test]
fn help_describes_every_argument_and_offers_state_dir_only_where_it_applies() {
    let uses_a_daemon = [
        "daemon", "start", "stop", "restart", "status", "logs", "exec", "inspect", "stats",
        "freeze", "thaw", "reload", "shutdown", "poweroff", "reboot", "halt",
    ];
    for command in COMMANDS {
        let args: Vec<&str> = command.iter().copied().chain(["--help"]).collect();
        let (ok, help, stderr) = output("supervisor", &args);
        assert!(ok, "{args:?}: {stderr}");
        let applies = uses_a_daemon.contains(&command[0]);
        assert_eq!(help.contains("--state-dir"), applies, "{args:?}:\n{help}");
        // Each line of the Arguments section names one and says what it is.
        let arguments = help
            .split("Arguments:\n")
            .nth(1)
            .map(|rest| rest.split("\n\n").next().unwrap_or(""))
            .unwrap_or("");
        for line in arguments.lines() {
            let described = line
                .trim()
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            assert!(
                described,
                "{args:?}: undescribed argument {line:?}:\n{help}"
            );
        }
    }
}
