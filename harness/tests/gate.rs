//! `aviary gate` as a pipeline calls it: exit 0 promote (and --promote rewrites the manifest and
//! appends promotions.log), 1 hold, 2 bad input; verdict.json and each run's report.html.
//! Run folders are written here as `aviary run` writes them; no VM boots.

use aviary::images::ResolvedImage;
use aviary::machine::accel::{Accel, AccelDecision};
use aviary::runner::result::{MachineReport, Outcome, RunInfo, TestResult};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DIGEST: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A workspace of its own: manifest, policy, one suite file.
fn workspace() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("images")).unwrap();
    std::fs::create_dir_all(d.path().join("suites")).unwrap();
    std::fs::write(
        d.path().join("images/channels.yaml"),
        format!("# releases\nchannels:\n  beta:\n    version: \"1001.0.0\"\n    kernel_package: linux-image-6.1.0-53-cloud-amd64\n    disk: {{ sha256: {DIGEST}, size: 1 }}\n  stable:\n    version: \"1000.0.0\"\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n"),
    )
    .unwrap();
    std::fs::write(
        d.path().join("images/promotion.yaml"),
        "transitions:\n  - from: beta\n    to: stable\n    required_suites: [provisioning]\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("suites/provisioning.yaml"),
        "suite: provisioning\ntests:\n  - name: users\n    machines: { node: { image: stable } }\n    steps:\n      - run: { on: node, cmd: \"true\" }\n",
    )
    .unwrap();
    d
}

fn run_folder(ws: &Path, run_id: &str, outcome: Outcome) -> PathBuf {
    let dir = ws.join("reports").join(run_id);
    std::fs::create_dir_all(dir.join("provisioning/users/node")).unwrap();
    std::fs::write(dir.join("provisioning/users/node/console.log"), "boot\n").unwrap();
    let info = RunInfo {
        evidence: aviary::runner::result::EVIDENCE_FORMAT,
        run_id: run_id.into(),
        started: "2026-12-02T10:00:00Z".into(),
        dir: dir.clone(),
        seed: 1,
        accel: AccelDecision {
            accel: Accel::Tcg,
            reason: "KVM probe hung".into(),
            kvm_probe: None,
            tcg_probe: None,
            timeout_scale: 1.4,
            host_key: "h".into(),
        },
        images: vec![ResolvedImage {
            name: "beta".into(),
            channel: Some("beta".into()),
            version: "1001.0.0".into(),
            kernel_release: "6.1.0-53-cloud-amd64".into(),
            kernel_version: "6.1.187-1".into(),
            disk: "/cache/disk.qcow2".into(),
            sha256: DIGEST.into(),
            vmlinuz: None,
            fw_cfg_name: "opt/com.coreos/config".into(),
            profile: Default::default(),
            payload: None,
            payload_sha256: None,
            payload_size: None,
        }],
        suites: vec!["provisioning".into()],
        shard: None,
        retries: 0,
        schedule: None,
        merged_from: vec![],
    };
    let t = TestResult {
        suite: "provisioning".into(),
        name: "users".into(),
        outcome,
        duration: Duration::from_secs(3),
        artifacts: dir.join("provisioning/users"),
        machines: vec![MachineReport {
            name: "node".into(),
            image: "beta".into(),
            version: "1001.0.0".into(),
            sha256: DIGEST.into(),
            boots: vec![],
            first_command_s: None,
            first_command_at_ms: None,
            ssh: None,
        }],
        log: String::new(),
        reruns: vec![],
        flaky: false,
        updates: vec![],
    };
    let summary =
        serde_json::json!({"run": info, "finished": true, "interrupted": null, "tests": [t]});
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    let xml = aviary::report::junit::render(&info, &[t]).unwrap();
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
    dir
}

fn gate(ws: &Path, extra: &[&str], runs: &[&Path]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .current_dir(ws)
        .args([
            "gate",
            "--from",
            "beta",
            "--to",
            "stable",
            "--release",
            "1001.0.0",
        ])
        .args(extra)
        .args(runs)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_passing_release_is_promoted_into_the_next_channel() {
    let ws = workspace();
    let run = run_folder(ws.path(), "r1", Outcome::Passed);
    let before = std::fs::read_to_string(ws.path().join("images/channels.yaml")).unwrap();
    let (code, out, err) = gate(ws.path(), &["--promote"], &[&run]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("verdict: PROMOTE 1001.0.0 from beta to stable"),
        "{out}"
    );
    let after = std::fs::read_to_string(ws.path().join("images/channels.yaml")).unwrap();
    assert_ne!(before, after);
    let m =
        aviary::images::manifest::Manifest::load(&ws.path().join("images/channels.yaml")).unwrap();
    assert_eq!(m.channels["stable"].version, "1001.0.0");
    assert_eq!(m.channels["stable"].disk, m.channels["beta"].disk);
    assert_eq!(m.channels["stable"].built_as.as_deref(), Some("beta"));
    assert!(after.starts_with("# releases\n"), "{after}");
    let log = std::fs::read_to_string(ws.path().join("images/promotions.log")).unwrap();
    let verdict = std::fs::read(ws.path().join("verdict.json")).unwrap();
    let sha = aviary::images::cache::sha256_bytes(&verdict);
    assert!(
        log.ends_with(&format!(
            "release=1001.0.0 digest=sha256:{DIGEST} from=beta to=stable verdict=sha256:{sha}\n"
        )),
        "{log}"
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("PROMOTE"), "the run's page shows the verdict");
}

#[test]
fn a_failing_release_is_held_and_the_failure_named() {
    let ws = workspace();
    let run = run_folder(
        ws.path(),
        "r1",
        Outcome::Failed {
            message: "step 1 (run, suites/provisioning.yaml:6:9): exit 1".into(),
            detail: "x".into(),
            cause: None,
        },
    );
    let before = std::fs::read_to_string(ws.path().join("images/channels.yaml")).unwrap();
    let (code, out, err) = gate(
        ws.path(),
        &["--promote", "--verdict", "out/v.json"],
        &[&run],
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("FAIL    no-failures     provisioning::users failed in run r1: step 1"),
        "{out}"
    );
    assert!(out.contains("not promoted: the verdict is hold"), "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("images/channels.yaml")).unwrap(),
        before
    );
    assert!(!ws.path().join("images/promotions.log").exists());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join("out/v.json")).unwrap())
            .unwrap();
    assert_eq!(v["verdict"], "hold");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("HOLD"));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let ws = workspace();
    let run = run_folder(ws.path(), "r1", Outcome::Passed);
    let (code, _, err) = gate(ws.path(), &[], &[&ws.path().join("reports/missing")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("reports/missing/summary.json: cannot read"),
        "{err}"
    );
    std::fs::write(
        ws.path().join("images/promotion.yaml"),
        "transitions:\n  - from: beta\n    to: stabel\n",
    )
    .unwrap();
    let (code, _, err) = gate(ws.path(), &[], &[&run]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("promotion.yaml:3:9: transitions[0].to: unknown channel `stabel`"),
        "{err}"
    );
    let (code, _, err) = gate(ws.path(), &["--now", "yesterday"], &[&run]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--now: `yesterday` is not a date"), "{err}");
}
