//! The four readers on arbitrary and broken input: none panics, and every rejection begins
//! with `FILE:LINE:COLUMN: `. Each test runs 256 cases (`PROPTEST_CASES` to change).

use super::mutate::{arbitrary_text, broken, located};
use crate::gate::policy;
use crate::images::manifest::Manifest;
use crate::report::read;
use crate::suite::{self, LoadContext, LoadErrors};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// The repository's root, where suites/ and images/ are.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SUITES: &[&str] = &[
    include_str!("../../../suites/canary.yaml"),
    include_str!("../../../suites/cluster.yaml"),
    include_str!("../../../suites/containers.yaml"),
    include_str!("../../../suites/kubernetes-networking.yaml"),
    include_str!("../../../suites/provisioning.yaml"),
    include_str!("../../../suites/upgrade-rollback.yaml"),
];
const CHANNELS: &str = include_str!("../../../images/channels.yaml");
const PROMOTION: &str = include_str!("../../../images/promotion.yaml");
/// A policy with every key, known issues included (the repository's has none).
const FULL_POLICY: &str = "\
transitions:
  - from: beta
    to: stable
    required_suites: [provisioning]
    required_tests: [upgrade-rollback::stable-to-beta]
    min_runs: 2
    min_soak: 7d
    flake_budget: 1
    expiry_warning: 3d
    known_issues:
      - tests: \"containers::*\"
        message: \"OOM\"
        tracker: https://tracker.example/aviary/12
        reason: the kernel's OOM message changed
        expires: 2027-01-31
";

/// The channels of the repository's images/channels.yaml (parsed once).
fn channels() -> &'static [String] {
    static CHANNELS_NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        Manifest::parse(Path::new("channels.yaml"), CHANNELS)
            .expect("images/channels.yaml is valid")
            .channel_names()
    });
    &CHANNELS_NAMES
}

/// In suites/, so that `from_host` files resolve as they do for the real suites.
fn suite_path() -> PathBuf {
    repo().join("suites/fuzzed.yaml")
}

/// A summary.json as the summary reporter writes it: a rerun, a machine with boots, a shard,
/// an image, the scheduler's budget.
fn summary_json() -> String {
    use crate::report::read::tests::{info, test};
    use crate::runner::result::{MachineReport, Outcome, Rerun};
    let mut i = info("r1");
    i.shard = Some("1/2".parse().unwrap());
    i.retries = 1;
    i.schedule = Some(crate::runner::schedule::Budget {
        mode: crate::runner::schedule::Mode::Auto,
        max_tests: 2,
        vcpus: 4,
        memory_mib: 4096,
        host_cores: 2,
    });
    i.images = vec![crate::images::ResolvedImage {
        name: "beta".into(),
        channel: Some("beta".into()),
        version: "1001.0.0".into(),
        kernel_release: "6.1.0-53-cloud-amd64".into(),
        kernel_version: "6.1.187-1".into(),
        disk: "/cache/beta.qcow2".into(),
        sha256: "ab".repeat(32),
        vmlinuz: None,
        fw_cfg_name: "opt/com.coreos/config".into(),
        profile: Default::default(),
        payload: None,
        payload_sha256: None,
        payload_size: None,
    }];
    let mut failed = test(
        "fails",
        Outcome::Failed {
            message: "expected slot B".into(),
            detail: "slot A".into(),
            cause: None,
        },
    );
    failed.machines = vec![MachineReport {
        name: "node".into(),
        image: "beta".into(),
        version: "1001.0.0".into(),
        sha256: "ab".repeat(32),
        boots: vec![crate::machine::BootRecord {
            qemu_to_ssh_banner_s: 3.5,
            qemu_to_login_s: 4.25,
            from_snapshot: true,
            phases: None,
        }],
        first_command_s: Some(4.5),
        first_command_at_ms: Some(1_796_169_600_000),
        ssh: Some("ssh -p 2222 core@127.0.0.1".into()),
    }];
    let mut flaky = test("flaky", Outcome::Passed);
    flaky.flaky = true;
    flaky.reruns = vec![Rerun {
        outcome: Outcome::Error {
            message: "m".into(),
            detail: "d".into(),
            cause: None,
        },
        duration: std::time::Duration::from_millis(500),
        artifacts: "/tmp/r/s/flaky".into(),
    }];
    let doc = crate::report::summary::document(
        &i,
        &[failed, flaky],
        &crate::report::summary::End {
            finished: true,
            interrupted: Some("SIGINT"),
            stopped: Some("--fail-fast: s::f failed; 0 test(s) not started"),
        },
    );
    serde_json::to_string_pretty(&doc).unwrap()
}

/// Every error of a suite or policy is located, and so is each `error:` line of the whole.
fn all_located(errs: &LoadErrors, path: &Path) -> Result<(), TestCaseError> {
    prop_assert!(!errs.0.is_empty(), "an Err with no error in it");
    for e in &errs.0 {
        located(&e.to_string(), "", path)?;
    }
    for line in errs.to_string().lines() {
        if line.starts_with("error:") {
            located(line, "error: ", path)?;
        }
    }
    Ok(())
}

fn check_suite(text: &str) -> Result<(), TestCaseError> {
    let path = suite_path();
    let ctx = LoadContext {
        channels: channels().to_vec(),
    };
    if let Err(errs) = suite::load_str(&path, text, &ctx) {
        all_located(&errs, &path)?;
    }
    Ok(())
}

fn check_manifest(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("images/channels.yaml");
    if let Err(e) = Manifest::parse(path, text) {
        located(&e.to_string(), "", path)?;
    }
    Ok(())
}

fn check_policy(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("images/promotion.yaml");
    if let Err(errs) = policy::load_str(path, text, channels()) {
        all_located(&errs, path)?;
    }
    Ok(())
}

fn check_report(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("reports/r1/summary.json");
    if let Err(e) = read::parse(path, text) {
        located(&e.to_string(), "", path)?;
    }
    Ok(())
}

#[test]
fn the_seeds_are_valid() {
    let ctx = LoadContext {
        channels: channels().to_vec(),
    };
    for s in SUITES {
        suite::load_str(&suite_path(), s, &ctx).unwrap();
    }
    policy::load_str(Path::new("p.yaml"), PROMOTION, channels()).unwrap();
    policy::load_str(Path::new("p.yaml"), FULL_POLICY, channels()).unwrap();
    read::parse(Path::new("summary.json"), &summary_json()).unwrap();
}

proptest! {
    #[test]
    fn suite_loader_on_arbitrary_text(text in arbitrary_text()) {
        check_suite(&text)?;
    }

    #[test]
    fn suite_loader_on_broken_suites(text in broken(SUITES)) {
        check_suite(&text)?;
    }

    #[test]
    fn manifest_on_arbitrary_text(text in arbitrary_text()) {
        check_manifest(&text)?;
    }

    #[test]
    fn manifest_on_broken_channels_yaml(text in broken(&[CHANNELS])) {
        check_manifest(&text)?;
    }

    #[test]
    fn policy_on_arbitrary_text(text in arbitrary_text()) {
        check_policy(&text)?;
    }

    #[test]
    fn policy_on_broken_promotion_yaml(text in broken(&[PROMOTION, FULL_POLICY])) {
        check_policy(&text)?;
    }

    #[test]
    fn report_reader_on_arbitrary_text(text in arbitrary_text()) {
        check_report(&text)?;
    }

    #[test]
    fn report_reader_on_broken_summary_json(text in broken(&[&summary_json()])) {
        check_report(&text)?;
    }
}
