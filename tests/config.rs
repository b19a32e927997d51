//! `supervisor check -c FILE`, run as the real binary.
//!
//! Golden tests: each broken `fixtures/config/NAME.yaml` has its exact expected
//! stderr in `NAME.expected`. The binary runs from that directory with a
//! relative path, so the file names in the text are stable. To rewrite the
//! expected files after an intended change of wording, run with
//! `UPDATE_GOLDEN=1` and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration_tests::{bin, BoundedCommand};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config")
}

/// Runs `supervisor check -c FILE` from `dir`.
fn check(dir: &Path, file: &str) -> Output {
    Command::new(bin("supervisor"))
        .current_dir(dir)
        .args(["check", "-c", file])
        .env_remove("SUPERVISOR_STATE_DIR")
        .bounded_output()
        .expect("run supervisor check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn broken_files_print_every_problem_and_exit_1() {
    let dir = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures/config")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".yaml").map(str::to_owned))
        .filter(|name| name != "good")
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures missing: {names:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for name in &names {
        let output = check(&dir, &format!("{name}.yaml"));
        let stderr = text(&output.stderr);
        let expected_path = dir.join(format!("{name}.expected"));
        if update {
            std::fs::write(&expected_path, &stderr).expect("write expected");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if output.status.code() != Some(1) {
            failures.push(format!(
                "{name}: exit status {:?}, expected 1",
                output.status
            ));
        }
        if !output.stdout.is_empty() {
            failures.push(format!(
                "{name}: unexpected stdout:\n{}",
                text(&output.stdout)
            ));
        }
        if stderr != expected {
            failures.push(format!(
                "{name}: stderr differs\n--- expected\n{expected}--- got\n{stderr}"
            ));
        }
        // Every line is FILE:LINE:COLUMN: message.
        for line in stderr.lines() {
            let mut parts = line.splitn(4, ':');
            let located = parts.next() == Some(&format!("{name}.yaml"))
                && parts
                    .next()
                    .is_some_and(|l| l.parse::<usize>().is_ok_and(|l| l >= 1))
                && parts
                    .next()
                    .is_some_and(|c| c.parse::<usize>().is_ok_and(|c| c >= 1))
                && parts.next().is_some_and(|m| m.len() > 1);
            if !located {
                failures.push(format!("{name}: not FILE:LINE:COLUMN: message: {line}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_good_file_prints_the_number_of_services() {
    let output = check(&fixtures(), "good.yaml");
    assert_eq!(text(&output.stderr), "");
    let expected =
        std::fs::read_to_string(fixtures().join("good.expected")).expect("good.expected");
    assert_eq!(text(&output.stdout), expected);
    assert_eq!(expected, "good.yaml: 3 services OK\n");
    assert!(output.status.success());
}

#[test]
fn an_unreadable_file_is_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = check(dir.path(), "missing.yaml");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        text(&output.stderr),
        "missing.yaml: cannot read: No such file or directory (os error 2)\n"
    );

    let output = check(dir.path(), ".");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr).lines().count(),
        1,
        "{}",
        text(&output.stderr)
    );
}

/// Relative paths in the file resolve against the file's directory, not the
/// current directory; the file name is printed as given.
#[test]
fn relative_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("rootfs")).expect("rootfs");
    std::fs::create_dir_all(dir.path().join("data")).expect("data");
    let file = dir.path().join("services.yaml");
    let yaml = "services:\n  app:\n    command: [/bin/app]\n    image: ./rootfs\n    mounts:\n      - {source: data, target: /data}\n";
    std::fs::write(&file, yaml).expect("write");
    let output = check(Path::new("/"), file.to_str().expect("utf-8 path"));
    assert_eq!(text(&output.stderr), "");
    assert_eq!(
        text(&output.stdout),
        format!("{}: 1 services OK\n", file.display())
    );

    std::fs::remove_dir(dir.path().join("data")).expect("rmdir");
    let output = check(dir.path(), "services.yaml");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "services.yaml:6:18: source: `data`: No such file or directory\n"
    );
}
