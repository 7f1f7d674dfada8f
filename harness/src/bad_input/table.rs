//! README.md, "Bad input: what was tried and what you see": one test per row, each asserting
//! the whole message its row shows. Change a message here, change its row there.

use crate::gate::policy;
use crate::images::manifest::Manifest;
use crate::report::read;
use crate::suite::{self, LoadContext};
use std::path::Path;

fn channels() -> Vec<String> {
    ["alpha", "beta", "stable"].map(String::from).to_vec()
}

fn suite(text: &str) -> String {
    let ctx = LoadContext {
        channels: channels(),
    };
    suite::load_str(Path::new("suites/t.yaml"), text, &ctx)
        .expect_err("the suite should be rejected")
        .to_string()
}

fn manifest(text: &str) -> String {
    Manifest::parse(Path::new("images/channels.yaml"), text)
        .expect_err("the manifest should be rejected")
        .to_string()
}

fn policy(text: &str) -> String {
    policy::load_str(Path::new("images/promotion.yaml"), text, &channels())
        .expect_err("the policy should be rejected")
        .to_string()
}

fn report(text: &str) -> String {
    read::parse(Path::new("r1/summary.json"), text)
        .expect_err("the summary should be rejected")
        .to_string()
}

/// A suite of one test `t`, its lines after `- name: t` given.
fn one_test(body: &str) -> String {
    format!("suite: s\ntests:\n  - name: t\n{body}")
}

const MACHINES: &str = "    machines: { node: { image: stable } }\n";
const STEPS: &str = "    steps:\n      - reboot: node\n";

// Suite files (suite::load_str).

#[test]
fn bad_input_table_suite_unknown_key() {
    assert_eq!(
        suite(&one_test(&format!("{MACHINES}    stepz: []\n"))),
        "error: suites/t.yaml:5:5: unknown field `stepz`, expected one of name, description, machines, timeout, checks, boot, setup, steps\n  hint: see docs/suite-language.md for the keys each level takes"
    );
}

#[test]
fn bad_input_table_suite_wrong_type() {
    assert_eq!(
        suite(&one_test(&format!(
            "    machines: {{ node: {{ memory: lots }} }}\n{STEPS}"
        ))),
        "error: suites/t.yaml:4:33: expected a whole number from 0 to 4294967295"
    );
}

#[test]
fn bad_input_table_suite_missing_field() {
    assert_eq!(
        suite(&one_test(MACHINES)),
        "error: suites/t.yaml:4:5: missing field `steps`"
    );
}

#[test]
fn bad_input_table_suite_yaml_syntax_error() {
    assert_eq!(
        suite(&one_test("    machines: { node: {}\n")),
        "error: suites/t.yaml:4:15: unclosed bracket '{'"
    );
}

#[test]
fn bad_input_table_suite_tab_indentation() {
    assert_eq!(
        suite(&one_test(&format!("{MACHINES}\tsteps:\n      - reboot: node\n"))),
        "error: suites/t.yaml:5:2: tabs disallowed within this context (block indentation)\n  hint: indent with spaces; YAML does not allow tabs there"
    );
}

#[test]
fn bad_input_table_suite_duplicate_test_name() {
    let text = format!(
        "{}  - name: t\n{MACHINES}{STEPS}",
        one_test(&format!("{MACHINES}{STEPS}"))
    );
    assert_eq!(
        suite(&text),
        "error: suites/t.yaml:7:11: tests[1].name: duplicate test name `t` (first at suites/t.yaml:3:11)"
    );
}

#[test]
fn bad_input_table_suite_unknown_image_channel() {
    assert_eq!(
        suite(&one_test(&format!(
            "    machines: {{ node: {{ image: gamma }} }}\n{STEPS}"
        ))),
        "error: suites/t.yaml:4:32: tests[0].machines.node.image: unknown image `gamma`; known channels: alpha, beta, stable\n  hint: an image is a channel from images/channels.yaml or a path to a .qcow2 file"
    );
}

#[test]
fn bad_input_table_suite_invalid_duration() {
    assert_eq!(
        suite(&one_test(&format!("{MACHINES}    timeout: 5 minutes\n{STEPS}"))),
        "error: suites/t.yaml:5:14: tests[0].timeout: `5 minutes` is not a duration: unknown unit `minutes` (ms, s, m, h or d); expected e.g. 30s, 5m or 1h30m"
    );
}

#[test]
fn bad_input_table_suite_undeclared_machine() {
    assert_eq!(
        suite(&one_test(&format!("{MACHINES}    steps:\n      - reboot: nodes\n"))),
        "error: suites/t.yaml:6:17: tests[0].steps[0].reboot: machine `nodes` is not declared by this test (declared: node)\n  hint: declare it under the test's `machines:`"
    );
}

#[test]
fn bad_input_table_suite_invalid_regex() {
    assert_eq!(
        suite(&one_test(&format!(
            "{MACHINES}    steps:\n      - run: {{ on: node, cmd: ls, stdout: \"(\" }}\n"
        ))),
        "error: suites/t.yaml:6:43: tests[0].steps[0].run.stdout: invalid regular expression: unclosed group"
    );
}

#[test]
fn bad_input_table_suite_two_keys_in_one_step() {
    assert_eq!(
        suite(&one_test(&format!("{MACHINES}    steps:\n      - {{ reboot: node, run: x }}\n"))),
        "error: suites/t.yaml:6:25: expected end of mapping after enum variant value\n  hint: a step is one key: run, wait_for, reboot, copy, expect, update or fault"
    );
}

// images/channels.yaml (Manifest::parse).

const RELEASE: &str = "channels:\n  stable:\n    version: 1000.0.0\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n";

#[test]
fn bad_input_table_manifest_unknown_key() {
    assert_eq!(
        manifest(&RELEASE.replace("version:", "verzion:")),
        "images/channels.yaml:3:5: unknown field `verzion`, expected one of version, kernel_package, profile, variant, built_as, entered, kernel_release, kernel_version, recipe, disk, payload"
    );
}

/// A workspace with `images/channels.yaml` of `text` and the shipped profiles; the error of
/// opening it, its folder written as `…`.
fn workspace(text: &str, profile: Option<(&str, &str)>) -> String {
    let d = tempfile::tempdir().unwrap();
    let profiles = d.path().join("images/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/profiles");
    for f in ["aviary-rauc.yaml", "flatcar.yaml"] {
        std::fs::copy(shipped.join(f), profiles.join(f)).unwrap();
    }
    if let Some((name, body)) = profile {
        std::fs::write(profiles.join(format!("{name}.yaml")), body).unwrap();
    }
    std::fs::write(d.path().join("images/channels.yaml"), text).unwrap();
    let ws = crate::images::Workspace::at(d.path().to_path_buf());
    let e = crate::images::Images::open(ws)
        .err()
        .expect("the workspace should be rejected");
    format!("{e:#}").replace(&d.path().display().to_string(), "…")
}

#[test]
fn bad_input_table_manifest_unknown_profile() {
    assert_eq!(
        workspace(&format!("{RELEASE}    profile: fedora-coreos\n"), None),
        "…/images/channels.yaml:5:14: channel `stable`: no profile `fedora-coreos` (known: aviary-rauc, flatcar; a profile is a file …/images/profiles/NAME.yaml)"
    );
}

#[test]
fn bad_input_table_profile_incomplete() {
    let shipped = include_str!("../../../images/profiles/aviary-rauc.yaml");
    let body = shipped.replace("update: aviary-agent\n", "");
    assert_eq!(
        workspace(&format!("{RELEASE}    profile: mine\n"), Some(("mine", &body))),
        "…/images/channels.yaml:5:14: channel `stable`: …/images/profiles/mine.yaml:14:1: missing field `update`"
    );
}

#[test]
fn bad_input_table_manifest_bad_version() {
    assert_eq!(
        manifest(&RELEASE.replace("1000.0.0", "\"1000\"")),
        "images/channels.yaml:3:14: channel `stable`: version `1000` is not MAJOR.MINOR.PATCH"
    );
}

#[test]
fn bad_input_table_manifest_bad_digest() {
    assert_eq!(
        manifest(&format!("{RELEASE}    disk: {{ sha256: abc, size: 1 }}\n")),
        "images/channels.yaml:5:11: channel `stable`: disk.sha256 is not a sha256 hex digest"
    );
}

// images/promotion.yaml (gate::policy::load_str).

const TRANSITION: &str = "transitions:\n  - from: beta\n    to: stable\n";

#[test]
fn bad_input_table_policy_unknown_field() {
    assert_eq!(
        policy(&format!("{TRANSITION}    flake_budjet: 1\n")),
        "error: images/promotion.yaml:4:5: unknown field `flake_budjet`, expected one of from, to, required_suites, required_tests, min_runs, min_soak, flake_budget, expiry_warning, known_issues, evidence, budgets\n  hint: images/promotion.yaml documents the keys a transition takes"
    );
}

#[test]
fn bad_input_table_policy_unknown_channel() {
    assert_eq!(
        policy(&TRANSITION.replace("stable", "gamma")),
        "error: images/promotion.yaml:3:9: transitions[0].to: unknown channel `gamma`; channels.yaml has: alpha, beta, stable"
    );
}

#[test]
fn bad_input_table_policy_expiry_not_a_date() {
    assert_eq!(
        policy(&format!("{TRANSITION}    known_issues:\n      - {{ tests: \"a::*\", tracker: \"https://t/1\", reason: r, expires: 2027-02-30 }}\n")),
        "error: images/promotion.yaml:5:70: transitions[0].known_issues[0].expires: `2027-02-30` is not a calendar date"
    );
}

#[test]
fn bad_input_table_policy_unknown_evidence_mode() {
    assert_eq!(
        policy(&format!("{TRANSITION}    evidence:\n      suites: {{ canary: updated }}\n")),
        "error: images/promotion.yaml:5:25: transitions[0].evidence.suites.canary: unknown evidence mode `updated`; expected one of auto, boot, update, boot-or-update, offer"
    );
}

#[test]
fn bad_input_table_policy_unknown_budget_phase() {
    assert_eq!(
        policy(&format!("{TRANSITION}    budgets:\n      boot: {{ ratio: 1.25 }}\n")),
        "error: images/promotion.yaml:5:13: transitions[0].budgets.boot: unknown phase `boot`; expected one of bootloader, initramfs, userspace_to_sshd, boot_to_ssh, boot_to_login, first_command, multi_user, memory, update_download, update_write"
    );
}

#[test]
fn bad_input_table_policy_malformed_budget() {
    assert_eq!(
        policy(&format!("{TRANSITION}    budgets:\n      boot_to_ssh: {{ ratio: 0.8 }}\n")),
        "error: images/promotion.yaml:5:29: transitions[0].budgets.boot_to_ssh.ratio: `0.8` is not a ratio of at least 1 (1.25 allows 25 % more)"
    );
}

// summary.json (report::read::parse).

/// A summary.json with one test; `duration` is its duration, as written.
fn summary(duration: &str) -> String {
    format!(
        r#"{{"run": {{"run_id": "r1", "started": "2026-11-25T00:00:00Z", "dir": "/r", "seed": 7,
  "accel": {{"accel": "tcg", "reason": "no /dev/kvm", "kvm_probe": null, "tcg_probe": null,
            "timeout_scale": 1.0, "host_key": "h"}},
  "images": [], "suites": ["s"]}},
 "finished": true, "interrupted": null,
 "tests": [{{"suite": "s", "name": "t", "outcome": {{"status": "passed"}}, "duration": {duration},
            "artifacts": "/r/s/t", "machines": [], "log": ""}}]}}
"#
    )
}

#[test]
fn bad_input_table_report_truncated() {
    let s = summary("1.5");
    read::parse(Path::new("s.json"), &s).unwrap();
    assert_eq!(
        report(&s[..s.find("\"images\"").unwrap()]),
        "r1/summary.json:4:2: not a summary.json aviary can read: EOF while parsing a value"
    );
}

#[test]
fn bad_input_table_report_wrong_type() {
    assert_eq!(
        report(&summary("\"1.5s\"")),
        "r1/summary.json:6:90: not a summary.json aviary can read: invalid type: string \"1.5s\", expected f64"
    );
}

#[test]
fn bad_input_table_report_negative_duration() {
    assert_eq!(
        report(&summary("-1.5")),
        "r1/summary.json:6:88: not a summary.json aviary can read: cannot convert float seconds to Duration: value is negative"
    );
}

#[test]
fn bad_input_table_report_without_evidence() {
    // A summary.json as Aviary wrote it before `run.evidence`: it parses, and the gate refuses it.
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("r1");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("summary.json"), summary("1.5")).unwrap();
    std::fs::write(run.join("junit.xml"), "<testsuites/>").unwrap();
    let e = crate::gate::evidence::read_run(&run, "1001.0.0", &"b".repeat(64))
        .unwrap_err()
        .to_string();
    let shown = e.replace(&d.path().display().to_string(), "…");
    assert_eq!(
        shown,
        "error: …/r1/summary.json: run r1 was written by an older Aviary: its tests do not record which releases they booted and updated into (`run.evidence` is 0, this gate needs 2), so the gate cannot tell which of them exercised 1001.0.0\n  hint: run the suites again with this Aviary (`aviary qualify`, or `aviary run`)"
    );
}
