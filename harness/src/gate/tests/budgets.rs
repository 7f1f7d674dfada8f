//! The gate's regression budgets: their rule, the policy's budgets and the baseline.

use super::*;

#[test]
fn budgets_compare_the_candidate_with_the_release_it_would_replace() {
    use super::budget::{Phase, Sample};
    let sample = |sha: &str, v: f64| Sample {
        digest: sha.repeat(64),
        phase: Phase::BootToSsh,
        value: v,
    };
    let mut boots = test("budget::boot-1-beta", TestStatus::Passed);
    boots.samples = vec![
        sample("b", 62.0),
        sample("b", 61.0),
        sample("a", 48.0),
        sample("a", 50.0),
    ];
    let policy = "    budgets:\n      boot_to_ssh: { ratio: 1.25, seconds: 10 }\n";
    let v = verdict(policy, &[run("r1", vec![boots.clone()])]);
    assert_eq!(v.verdict, Decision::Hold, "{}", v.render());
    let fails = having(&v, "budgets", Status::Fail);
    assert_eq!(fails.len(), 1);
    assert!(
        fails[0].starts_with("boot_to_ssh grew past its budget: boot_to_ssh: beta 1001.0.0 61.5 s (median of 2: 62.0, 61.0) against stable 1000.0.0 49.0 s (48.0, 50.0): +26 %, +12.5 s; budget +25 % and +10 s"),
        "{}",
        fails[0]
    );
    boots.samples = vec![sample("b", 55.0), sample("a", 49.0)];
    let v = verdict(policy, &[run("r1", vec![boots])]);
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    assert_eq!(having(&v, "budgets", Status::Pass).len(), 1);
    // No budgets, no rule.
    let v = verdict("", &[good_run("r1")]);
    assert!(v.reasons.iter().all(|r| r.rule != "budgets"));
}

#[test]
fn a_budget_left_unmeasured_by_an_early_stop_is_a_warning_only_beside_a_hold() {
    use super::budget::{Phase, Sample};
    let sample = |sha: &str, v: f64| Sample {
        digest: sha.repeat(64),
        phase: Phase::BootToSsh,
        value: v,
    };
    let policy = "    budgets:\n      boot_to_ssh: { ratio: 1.25, seconds: 10 }\n      update_write: { ratio: 1.5 }\n";
    let stopped = |samples: Vec<Sample>| {
        let mut boots = test("budget::boot-1-beta", TestStatus::Passed);
        boots.samples = samples;
        let mut r = run("budget-run", vec![boots]);
        r.stopped = Some("boot_to_ssh is past its budget whatever the tests left measure".into());
        r
    };
    // The boot budget's hold stopped the run before any update: one FAIL, one WARN.
    let slow = vec![
        sample("b", 62.0),
        sample("b", 61.0),
        sample("a", 48.0),
        sample("a", 50.0),
    ];
    let v = verdict(policy, &[stopped(slow)]);
    assert_eq!(v.verdict, Decision::Hold, "{}", v.render());
    assert_eq!(
        having(&v, "budgets", Status::Fail).len(),
        1,
        "{}",
        v.render()
    );
    let warn = having(&v, "budgets", Status::Warn);
    assert_eq!(warn.len(), 1, "{}", v.render());
    assert!(
        warn[0].starts_with("update_write: no measurement to compare")
            && warn[0].ends_with("; a run stopped early: boot_to_ssh is past its budget whatever the tests left measure"),
        "{}",
        warn[0]
    );
    // A stop that leaves a budget unmeasured while nothing else holds: still a FAIL.
    let fine = vec![sample("b", 50.0), sample("a", 49.0)];
    let v = verdict(policy, &[stopped(fine)]);
    assert_eq!(v.verdict, Decision::Hold, "{}", v.render());
    let fail = having(&v, "budgets", Status::Fail);
    assert_eq!(fail.len(), 1, "{}", v.render());
    assert!(
        fail[0].starts_with("update_write: no measurement"),
        "{}",
        fail[0]
    );
}

#[test]
fn a_malformed_budget_names_its_place_and_what_was_expected() {
    let channels = ["alpha", "beta", "stable"].map(String::from);
    let load = |b: &str| {
        policy::load_str(
            Path::new("promotion.yaml"),
            &format!("transitions:\n  - from: beta\n    to: stable\n    budgets:\n{b}"),
            &channels,
        )
        .unwrap_err()
        .to_string()
    };
    let e = load("      boot: { ratio: 1.25 }\n");
    assert!(e.contains("promotion.yaml:5:13: transitions[0].budgets.boot: unknown phase `boot`; expected one of bootloader, initramfs, userspace_to_sshd, boot_to_ssh"), "{e}");
    let e = load("      boot_to_ssh: { ratio: 0.8 }\n");
    assert!(
        e.contains("transitions[0].budgets.boot_to_ssh.ratio: `0.8` is not a ratio of at least 1"),
        "{e}"
    );
    let e = load("      boot_to_ssh: {}\n");
    assert!(e.contains("a budget needs `ratio`, or `seconds`"), "{e}");
    let e = load("      memory: { seconds: 3 }\n");
    assert!(
        e.contains(
            "transitions[0].budgets.memory.seconds: phase `memory` is measured in MiB; give `mib`"
        ),
        "{e}"
    );
    let e = load("      update_write: { ratio: 1.5, percent: 3 }\n");
    assert!(
        e.contains("unknown field `percent`, expected one of `ratio`, `seconds`, `mib`")
            || e.contains("unknown field `percent`"),
        "{e}"
    );
}

#[test]
fn the_baseline_digest_comes_from_the_manifest_or_else_the_runs() {
    let (a, c, d) = ("a".repeat(64), "c".repeat(64), "d".repeat(64));
    let mut r = run("r1", vec![]);
    r.images = vec![
        ("1000.0.0".into(), a.clone()),
        ("1001.0.0".into(), "b".repeat(64)),
    ];
    let want = |sha: &str| Some(("1000.0.0".to_string(), sha.to_string()));
    assert_eq!(baseline("1000.0.0", None, &[r.clone()]), want(&a));
    assert_eq!(baseline("1000.0.0", Some(&c), &[r.clone()]), want(&c));
    let mut other = run("r2", vec![]);
    other.images = vec![("1000.0.0".into(), d)];
    assert_eq!(
        baseline("1000.0.0", None, &[r, other]),
        None,
        "two builds of one version: no baseline to compare with"
    );
}
