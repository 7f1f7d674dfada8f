//! The binary on bad input: exit 2, a located message, and no QEMU started.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs aviary with a PATH whose `qemu-system-x86_64` only records that it was called.
fn aviary(args: &[&str]) -> (i32, String) {
    let spy = tempfile::tempdir().unwrap();
    let marker = spy.path().join("qemu-was-started");
    let fake = spy.path().join("qemu-system-x86_64");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        spy.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let reports = spy.path().join("reports");
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(args)
        .arg("--reports")
        .arg(&reports)
        .current_dir(repo())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(!marker.exists(), "QEMU was started for {args:?}");
    assert!(!reports.exists(), "a run folder was created for {args:?}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_key_exits_2_with_location() {
    let (code, err) = aviary(&["run", "fixtures/broken-suites/unknown-key.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("fixtures/broken-suites/unknown-key.yaml:5:5:"),
        "{err}"
    );
    assert!(err.contains("stepz"), "{err}");
}

#[test]
fn bad_duration_exits_2_with_location_and_field() {
    let (code, err) = aviary(&["run", "fixtures/broken-suites/bad-duration.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("fixtures/broken-suites/bad-duration.yaml:4:14: tests[0].timeout:"),
        "{err}"
    );
    assert!(err.contains("unknown unit `minutes`"), "{err}");
}

#[test]
fn undeclared_machine_exits_2_with_location_and_field() {
    let (code, err) = aviary(&["run", "fixtures/broken-suites/undeclared-machine.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "fixtures/broken-suites/undeclared-machine.yaml:7:17: tests[0].steps[1].reboot:"
        ),
        "{err}"
    );
    assert!(err.contains("machine `nodes` is not declared"), "{err}");
}

#[test]
fn unknown_image_and_empty_filter_exit_2() {
    let (code, err) = aviary(&["run", "suites/provisioning.yaml", "--image", "gamma"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--image `gamma`: unknown channel"), "{err}");
    let (code, err) = aviary(&["run", "suites/provisioning.yaml", "--filter", "no-such-*"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no test matches"), "{err}");
}

#[test]
fn missing_suite_file_exits_2() {
    let (code, err) = aviary(&["run", "suites/does-not-exist.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("suites/does-not-exist.yaml"), "{err}");
}

#[test]
fn list_prints_the_plan() {
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(["list", "suites/provisioning.yaml", "--filter", "*slot*"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("provisioning::boots-slot-a  machines: node(stable)"),
        "{text}"
    );
}
