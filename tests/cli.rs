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
