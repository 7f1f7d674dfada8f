//! The binary on bad input: exit 2, a located message, and no QEMU started.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A folder holding a `qemu-system-x86_64` that runs `prelude`, then records that it was
/// called (touches the marker) and fails; and a PATH that finds it first.
fn spy_qemu(prelude: &str) -> (tempfile::TempDir, PathBuf, String) {
    let spy = tempfile::tempdir().unwrap();
    let marker = spy.path().join("qemu-was-started");
    let fake = spy.path().join("qemu-system-x86_64");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n{prelude}touch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        spy.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (spy, marker, path)
}

/// Runs aviary with a PATH whose `qemu-system-x86_64` only records that it was called.
fn aviary(args: &[&str]) -> (i32, String) {
    let (spy, marker, path) = spy_qemu("");
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

/// On a release whose OS profile gives `update` no meaning, `list` says which tests the run
/// would skip, and why; machines show the firmware and TPM they ask for.
#[test]
fn list_says_what_a_profile_would_skip() {
    let d = tempfile::tempdir().unwrap();
    let manifest = d.path().join("channels.yaml");
    std::fs::write(
        &manifest,
        "channels:\n  stable:\n    version: 1000.0.0\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n    profile: flatcar\n  beta:\n    version: 1001.0.0\n    kernel_package: linux-image-6.1.0-53-cloud-amd64\n  alpha:\n    version: 1002.0.0\n    kernel_package: linux-image-6.1.0-56-cloud-amd64\n",
    )
    .unwrap();
    let list = |suite: &str, filter: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
            .args(["list", suite, "--filter", filter])
            .current_dir(repo())
            .env("AVIARY_MANIFEST", &manifest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = list(
        "suites/upgrade-rollback.yaml",
        "stable-to-beta-kernel-panic-falls-back-uefi",
    );
    assert!(text.contains("machines: node(stable, uefi)"), "{text}");
    assert!(
        text.contains("SKIP: profile flatcar: update: Flatcar updates through update_engine"),
        "{text}"
    );
    let text = list("suites/provisioning.yaml", "uefi-boot-with-a-tpm");
    assert!(text.contains("node(stable, uefi, tpm)"), "{text}");
    assert!(!text.contains("SKIP"), "{text}");
}

#[test]
fn bad_manifest_exits_2_with_location() {
    let d = tempfile::tempdir().unwrap();
    let manifest = d.path().join("channels.yaml");
    std::fs::write(
        &manifest,
        "channels:\n  stable:\n    version: \"1000\"\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(["list", "suites/provisioning.yaml"])
        .current_dir(repo())
        .env("AVIARY_MANIFEST", &manifest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3:14: channel `stable`: version `1000` is not MAJOR.MINOR.PATCH",
            manifest.display()
        )),
        "{err}"
    );
}

/// Runs aviary as is (no `--reports`), in the repository, with QEMU replaced by a spy that
/// records any call but `--version` (the accelerator cache key asks for it).
fn aviary_plain(args: &[&str]) -> (i32, String, String) {
    let (_spy, marker, path) = spy_qemu("[ \"$1\" = --version ] && exit 1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(args)
        .current_dir(repo())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(!marker.exists(), "QEMU was started for {args:?}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_shards_exit_2_naming_the_flag() {
    for (bad, why) in [
        ("0/0", "N must be at least 1"),
        ("0/2", "shards are numbered from 1"),
        ("3/2", "I is greater than N"),
        ("one/2", "I is not a number"),
        ("2", "no `/`"),
    ] {
        let (code, err) = aviary(&["run", "suites/provisioning.yaml", "--shard", bad]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains(&format!("--shard `{bad}`: {why}")), "{err}");
        assert!(err.contains("expected I/N with 1 ≤ I ≤ N"), "{err}");
        let (code, _, err) = aviary_plain(&["list", "suites/provisioning.yaml", "--shard", bad]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains(&format!("--shard `{bad}`")), "{err}");
    }
}

#[test]
fn list_shards_partition_the_plan() {
    let lines = |args: &[&str]| {
        let (code, out, err) = aviary_plain(args);
        assert_eq!(code, 0, "{err}");
        out.lines().map(String::from).collect::<Vec<_>>()
    };
    let mut all = lines(&["list"]);
    assert!(all.len() >= 3, "{all:?}");
    let mut union = Vec::new();
    for i in 1..=3 {
        let part = lines(&["list", "--shard", &format!("{i}/3")]);
        assert!(!part.is_empty(), "shard {i}/3 of {} tests", all.len());
        union.extend(part);
    }
    all.sort();
    union.sort();
    assert_eq!(union, all);
    // More shards than tests: an empty shard lists nothing and is not an error.
    let (code, out, err) = aviary_plain(&["list", "--shard", "999/999"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("shard 999/999 has no tests"), "{err}");
}

#[test]
fn an_empty_shard_runs_nothing_and_writes_empty_reports() {
    let reports = tempfile::tempdir().unwrap();
    let (code, _, err) = aviary_plain(&[
        "run",
        "suites/provisioning.yaml",
        "--filter",
        "*slot*",
        "--shard",
        "2/2",
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shard 2/2 has no tests"), "{err}");
    let run = reports.path().join("latest");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["tests"], serde_json::json!([]));
    assert_eq!(summary["run"]["shard"], "2/2");
    assert_eq!(summary["finished"], true);
    xmllint(&run.join("junit.xml"));
}

fn xmllint(p: &Path) {
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(repo().join("fixtures/schemas/jenkins-junit-10.xsd"))
        .arg(p)
        .output()
        .expect("xmllint (libxml2-utils)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(p).unwrap_or_default()
    );
}

/// A run folder as `aviary run` leaves it: summary.json and junit.xml.
fn fixture_run(root: &Path, id: &str, shard: Option<&str>, accel: &str, tests: &[&str]) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let tests: Vec<serde_json::Value> = tests
        .iter()
        .map(|t| {
            serde_json::json!({
                "suite": "provisioning", "name": t,
                "outcome": if t.starts_with("fail") {
                    serde_json::json!({"status": "failed", "message": "expected A", "detail": "saw B"})
                } else {
                    serde_json::json!({"status": "passed"})
                },
                "duration": 12.5, "artifacts": dir.join("provisioning").join(t),
                "machines": [{"name": "node", "image": "stable", "version": "1.0", "sha256": "ab",
                              "boots": [{"qemu_to_ssh_banner_s": 3.0, "qemu_to_login_s": 4.0}],
                              "first_command_s": 5.0, "first_command_at_ms": 1764000000000u64, "ssh": null}],
                "log": "ok"
            })
        })
        .collect();
    let doc = serde_json::json!({
        "aviary": "0.1.0",
        "run": {
            "run_id": id, "started": "2026-11-25T00:00:00Z", "dir": dir, "seed": 1,
            "accel": {"accel": accel, "reason": "r", "kvm_probe": null, "tcg_probe": null,
                      "timeout_scale": 1.0, "host_key": "h"},
            "images": [{"name": "stable", "channel": "stable", "version": "1.0",
                        "kernel_release": "6.1", "kernel_version": "#1", "disk": "/x.qcow2",
                        "sha256": "ab", "vmlinuz": null, "fw_cfg_name": "opt/x", "payload": null,
                        "payload_sha256": null, "payload_size": null}],
            "suites": ["provisioning"], "shard": shard, "retries": 0
        },
        "finished": true, "interrupted": null,
        "counts": {"passed": 0, "failed": 0, "errors": 0},
        "tests": tests,
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("junit.xml"), "<testsuites/>\n").unwrap();
    dir
}

fn merge(runs: &[&Path], out: &Path) -> (i32, String) {
    let mut args = vec!["report".to_string(), "merge".to_string()];
    args.extend(runs.iter().map(|p| p.display().to_string()));
    args.extend(["--out".to_string(), out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = aviary_plain(&args);
    (code, err)
}

#[test]
fn report_merge_joins_shards() {
    let d = tempfile::tempdir().unwrap();
    let a = fixture_run(d.path(), "a", Some("1/2"), "tcg", &["t1", "fails"]);
    let b = fixture_run(d.path(), "b", Some("2/2"), "tcg", &["t2"]);
    let out = d.path().join("merged");
    let (code, err) = merge(&[&a, &b], &out);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("merged 2 run(s), 3 test(s)"), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let names: Vec<&str> = s["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t1", "fails", "t2"]);
    assert_eq!(s["counts"]["failed"], 1);
    assert_eq!(s["counts"]["flaky"], 0);
    assert_eq!(s["run"]["merged_from"][1]["shard"], "2/2");
    assert_eq!(s["run"]["shard"], serde_json::Value::Null);
    assert_eq!(s["tests"][0]["flaky"], false);
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    xmllint(&out.join("junit.xml"));
}

#[test]
fn report_merge_refuses_what_cannot_be_one_run() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("merged");
    let a = fixture_run(d.path(), "a", Some("1/2"), "tcg", &["t1"]);
    let b = fixture_run(d.path(), "b", Some("2/2"), "tcg", &["t1"]);
    let (code, err) = merge(&[&a, &b], &out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "test `provisioning::t1` is in both {} and {} (shards 1/2 and 2/2)",
            a.display(),
            b.display()
        )),
        "{err}"
    );
    let k = fixture_run(d.path(), "k", None, "kvm", &["t2"]);
    let (code, err) = merge(&[&a, &k], &out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("runs disagree on `run.accel.accel`: `tcg` in"),
        "{err}"
    );
    assert!(err.contains("`kvm` in"), "{err}");
    let missing = d.path().join("nope");
    let (code, err) = merge(&[&a, &missing], &out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}: cannot read",
            missing.join("summary.json").display()
        )),
        "{err}"
    );
    let bad = d.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("summary.json"), "{\n  \"run\": 3\n}\n").unwrap();
    let (code, err) = merge(&[&bad], &out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{}:2:", bad.join("summary.json").display())),
        "{err}"
    );
    assert!(!out.exists(), "nothing written when merging fails");
}

#[test]
fn qualify_lists_what_the_policy_requires_and_how_each_test_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(["qualify", "beta", "--list"])
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("aviary qualify: beta 1001.0.0 -> stable ("),
        "{err}"
    );
    // A suite that tests a release alone boots the candidate on every machine; an update test
    // runs as written, into the candidate.
    assert!(
        err.contains("  provisioning::core-user-key-logs-in  boots beta (boot)"),
        "{err}"
    );
    assert!(
        err.contains("  upgrade-rollback::stable-to-beta  as written: boots stable, updates to beta (boot-or-update)"),
        "{err}"
    );
    assert!(
        err.contains("  upgrade-rollback::stable-to-beta-corrupted-payload-refused  as written: boots stable, updates to beta (offer)"),
        "{err}"
    );
    assert!(!err.contains("upgrade-rollback::stable-to-alpha "), "{err}");
}

#[test]
fn qualify_refuses_a_channel_the_policy_does_not_promote() {
    let (code, err) = aviary(&["qualify", "stable"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "has no rules for stable -> any channel; it has: alpha -> beta, beta -> stable"
        ),
        "{err}"
    );
    let (code, err) = aviary(&["qualify", "gamma"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gamma"), "{err}");
}
