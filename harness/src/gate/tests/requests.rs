//! The gate on run folders and files: old summaries, required globs against the suites.

use super::*;

#[test]
fn an_evidence_policy_with_an_unknown_mode_names_its_place() {
    let text = "transitions:\n  - from: beta\n    to: stable\n    evidence:\n      default: boot\n      suites: { upgrade-rollback: updated }\n      tests: { \"x\": boot }\n";
    let channels = ["alpha", "beta", "stable"].map(String::from);
    let e = policy::load_str(Path::new("promotion.yaml"), text, &channels)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("promotion.yaml:6:35: transitions[0].evidence.suites.upgrade-rollback: unknown evidence mode `updated`; expected one of auto, boot, update, boot-or-update, offer"),
        "{e}"
    );
    assert!(
        e.contains(
            "transitions[0].evidence.tests.x: `x` is not a glob over SUITE::TEST (it has no `::`)"
        ),
        "{e}"
    );
    let e = policy::load_str(
        Path::new("promotion.yaml"),
        "transitions:\n  - from: beta\n    to: stable\n    evidence: { defaults: boot }\n",
        &channels,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("promotion.yaml:4:17: unknown field `defaults`, expected one of"),
        "{e}"
    );
}

#[test]
fn a_run_without_per_test_evidence_is_refused_naming_it() {
    let f = Fixture::new();
    let d = f.report("old", DIGEST, "passed", "passed");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
    doc["run"].as_object_mut().unwrap().remove("evidence");
    std::fs::write(d.join("summary.json"), doc.to_string()).unwrap();
    let e = f.bad_input(&f.request(vec![d]));
    assert!(
        e.contains("old/summary.json: run old was written by an older Aviary: its tests do not record which releases they booted and updated into"),
        "{e}"
    );
}

#[test]
fn a_required_glob_must_match_a_declared_test() {
    let f = Fixture::new();
    let ok = f.report("r1", DIGEST, "passed", "passed");
    std::fs::create_dir_all(f.path("suites")).unwrap();
    std::fs::write(
        f.path("suites/provisioning.yaml"),
        "suite: provisioning\ntests:\n  - name: users\n    machines: { node: { image: stable } }\n    steps:\n      - run: { on: node, cmd: \"true\" }\n",
    )
    .unwrap();
    std::fs::write(
        f.path("promotion.yaml"),
        "transitions:\n  - from: beta\n    to: stable\n    required_tests: [\"provisioning::use*\"]\n",
    )
    .unwrap();
    let v = evaluate_request(&f.request(vec![ok.clone()])).unwrap();
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    std::fs::write(
        f.path("promotion.yaml"),
        "transitions:\n  - from: beta\n    to: stable\n    required_tests: [\"provisioning::file*\"]\n",
    )
    .unwrap();
    let e = f.bad_input(&f.request(vec![ok]));
    assert!(
        e.contains("requires test provisioning::file*, but suite `provisioning` declares no test matching `file*`"),
        "{e}"
    );
}
