//! Gate tests: every policy rule, known issues waived / expired / nearly expired, and reports
//! that are malformed or contradict each other or the release.

use super::evaluate::{evaluate, Release, RunEvidence, TestEvidence, TestStatus};
use super::exercise::{Booted, Exercise};
use super::policy;
use super::verdict::{Decision, Status, Verdict};
use super::*;
use crate::runner::result::{UpdateOutcome, UpdateRecord};
use std::path::Path;

const DAY: i64 = 86_400;

fn now() -> i64 {
    crate::clock::parse_timestamp("2026-12-02T12:00:00Z").unwrap()
}

fn transition(extra: &str) -> policy::Transition {
    let text = format!("transitions:\n  - from: beta\n    to: stable\n{extra}");
    let channels = ["alpha", "beta", "stable"].map(String::from);
    policy::load_str(Path::new("promotion.yaml"), &text, &channels)
        .unwrap_or_else(|e| panic!("{e}"))
        .transitions
        .remove(0)
}

/// A result of a test whose one machine booted the release under judgement (digest b…b).
fn test(id: &str, status: TestStatus) -> TestEvidence {
    on(id, status, "beta", "1001.0.0", "b")
}

/// A result of a test whose one machine booted image `image` (digest `sha` × 64).
fn on(id: &str, status: TestStatus, image: &str, version: &str, sha: &str) -> TestEvidence {
    let (suite, name) = id.split_once("::").unwrap();
    TestEvidence {
        suite: suite.into(),
        name: name.into(),
        status,
        message: match status {
            TestStatus::Passed => String::new(),
            _ => format!("step 2 (run, {suite}.yaml:9:9): exit 1, expected 0 in {name}"),
        },
        flaky: false,
        exercise: Exercise {
            booted: vec![Booted {
                machine: "node".into(),
                image: image.into(),
                version: version.into(),
                sha256: sha.repeat(64),
            }],
            updates: vec![],
        },
        samples: vec![],
    }
}

fn run(id: &str, tests: Vec<TestEvidence>) -> RunEvidence {
    RunEvidence {
        dir: format!("/reports/{id}").into(),
        run_id: id.into(),
        started: "2026-12-02T10:00:00Z".into(),
        finished: true,
        interrupted: None,
        stopped: None,
        tests,
        images: vec![],
    }
}

fn release(entered: Option<i64>) -> Release {
    Release {
        version: "1001.0.0".into(),
        digest: "b".repeat(64),
        entered,
        baseline: Some(("1000.0.0".into(), "a".repeat(64))),
    }
}

fn catalog() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        "provisioning".to_string(),
        vec!["users".to_string(), "files".to_string()],
    )])
}

fn verdict(extra: &str, runs: &[RunEvidence]) -> Verdict {
    evaluate(&transition(extra), &release(None), runs, &catalog(), now())
}

/// The reasons of one rule with one status.
fn having<'a>(v: &'a Verdict, rule: &str, status: Status) -> Vec<&'a str> {
    v.reasons
        .iter()
        .filter(|r| r.rule == rule && r.status == status)
        .map(|r| r.message.as_str())
        .collect()
}

fn good_run(id: &str) -> RunEvidence {
    run(
        id,
        vec![
            test("provisioning::users", TestStatus::Passed),
            test("provisioning::files", TestStatus::Passed),
            test("upgrade::stable-to-beta", TestStatus::Passed),
        ],
    )
}

#[test]
fn a_clean_run_that_meets_every_rule_promotes() {
    let v = verdict(
        "    required_suites: [provisioning]\n    required_tests: [upgrade::stable-to-beta]\n",
        &[good_run("r1")],
    );
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    assert!(
        v.reasons.iter().all(|r| r.status == Status::Pass),
        "{}",
        v.render()
    );
    for rule in [
        "runs-complete",
        "no-failures",
        "required-suites",
        "required-tests",
        "min-runs",
        "min-soak",
        "flake-budget",
    ] {
        assert_eq!(
            having(&v, rule, Status::Pass).len(),
            1,
            "{rule}: {}",
            v.render()
        );
    }
    assert!(v
        .render()
        .contains("verdict: PROMOTE 1001.0.0 from beta to stable"));
}

#[test]
fn any_failure_or_error_holds_and_is_named() {
    let mut r = good_run("r1");
    r.tests[0].status = TestStatus::Failed;
    r.tests[0].message = "expected `canary-1`, seen `node`".into();
    r.tests.push(test("containers::oom", TestStatus::Error));
    let v = verdict("", &[r]);
    assert_eq!(v.verdict, Decision::Hold);
    let f = having(&v, "no-failures", Status::Fail);
    assert_eq!(f.len(), 2, "{}", v.render());
    assert!(
        f[0].contains("provisioning::users failed in run r1: expected `canary-1`, seen `node`"),
        "{}",
        f[0]
    );
    assert!(
        f[1].contains("containers::oom errored in run r1"),
        "{}",
        f[1]
    );
    let text = v.render();
    assert!(
        text.contains("verdict: HOLD 1001.0.0 in beta (2 reason(s) above marked FAIL)"),
        "{text}"
    );
    assert!(
        text.find("FAIL").unwrap() < text.find("PASS").unwrap(),
        "failures come first: {text}"
    );
}

#[test]
fn a_required_suite_needs_every_declared_test_to_pass() {
    let mut r = good_run("r1");
    r.tests.remove(1);
    let v = verdict("    required_suites: [provisioning, containers]\n", &[r]);
    assert_eq!(v.verdict, Decision::Hold);
    let f = having(&v, "required-suites", Status::Fail);
    assert_eq!(
        f,
        [
            "required suite `provisioning`: 1 of its 2 test(s) never passed (1 never ran: provisioning::files)",
            "required suite `containers` is in no report",
        ],
        "{}",
        v.render()
    );
}

#[test]
fn a_required_test_must_be_reported_and_pass() {
    let mut r = good_run("r1");
    r.tests[2].status = TestStatus::Failed;
    let v = verdict(
        "    required_tests: [upgrade::stable-to-beta, upgrade::beta-to-alpha]\n",
        &[r],
    );
    assert_eq!(
        having(&v, "required-tests", Status::Fail),
        [
            "required test upgrade::stable-to-beta never passed",
            "required test upgrade::beta-to-alpha is in no report"
        ]
    );
}

#[test]
fn min_runs_counts_passing_runs_per_required_test_so_shards_do_not_inflate_it() {
    let extra = "    required_suites: [provisioning]\n    min_runs: 2\n";
    // Two shards of one run each hold half the suite: still one run per test.
    let a = run(
        "shard-1",
        vec![test("provisioning::users", TestStatus::Passed)],
    );
    let b = run(
        "shard-2",
        vec![test("provisioning::files", TestStatus::Passed)],
    );
    let v = verdict(extra, &[a.clone(), b.clone()]);
    assert_eq!(
        having(&v, "min-runs", Status::Fail),
        ["2 required test(s) passed in fewer than 2 run(s) (fewest: 1)"]
    );
    let v = verdict(extra, &[good_run("r1"), good_run("r2")]);
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    // Without required tests, runs are counted.
    let v = verdict("    min_runs: 3\n", &[good_run("r1"), good_run("r2")]);
    assert_eq!(
        having(&v, "min-runs", Status::Fail),
        ["2 run(s); the policy asks for 3"]
    );
}

#[test]
fn soak_time_counts_from_when_the_release_entered_its_channel() {
    let t = transition("    min_soak: 7d\n");
    let runs = [good_run("r1")];
    let v = evaluate(
        &t,
        &release(Some(now() - 3 * DAY)),
        &runs,
        &catalog(),
        now(),
    );
    assert_eq!(v.verdict, Decision::Hold);
    assert_eq!(
        having(&v, "min-soak", Status::Fail),
        ["beta 1001.0.0 entered beta at 2026-11-29T12:00:00Z: soaked 3d of 7d"]
    );
    let v = evaluate(
        &t,
        &release(Some(now() - 8 * DAY)),
        &runs,
        &catalog(),
        now(),
    );
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    let v = evaluate(&t, &release(None), &runs, &catalog(), now());
    assert!(having(&v, "min-soak", Status::Fail)[0].contains("records no `entered` time"));
}

#[test]
fn flaky_tests_count_against_the_budget() {
    let mut r = good_run("r1");
    r.tests[0].flaky = true;
    r.tests[1].flaky = true;
    let v = verdict("    flake_budget: 2\n", std::slice::from_ref(&r));
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    assert_eq!(
        having(&v, "flake-budget", Status::Pass),
        ["2 flaky test(s), budget 2: provisioning::users (run r1), provisioning::files (run r1)"]
    );
    let v = verdict("    flake_budget: 1\n", &[r]);
    assert_eq!(v.verdict, Decision::Hold);
    assert_eq!(having(&v, "flake-budget", Status::Fail).len(), 1);
    // The default budget is zero.
    let mut r = good_run("r2");
    r.tests[0].flaky = true;
    assert_eq!(verdict("", &[r]).verdict, Decision::Hold);
}

fn known_issue(expires: &str) -> String {
    format!(
        "    known_issues:\n      - tests: \"provisioning::*\"\n        message: \"seen `node`\"\n        tracker: https://tracker.example/aviary/7\n        reason: hostname race in the initrd\n        expires: {expires}\n"
    )
}

fn failing_users() -> RunEvidence {
    let mut r = good_run("r1");
    r.tests[0].status = TestStatus::Failed;
    r.tests[0].message = "expected `canary-1`, seen `node`".into();
    r
}

#[test]
fn a_known_issue_waives_a_matching_failure_until_it_expires() {
    let v = verdict(&known_issue("2027-03-01"), &[failing_users()]);
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    let w = having(&v, "no-failures", Status::Waived);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("waived until 2027-03-01 by known issue https://tracker.example/aviary/7 (hostname race in the initrd)"), "{}", w[0]);
    assert!(v
        .reasons
        .iter()
        .any(|r| r.tracker.as_deref() == Some("https://tracker.example/aviary/7")));
    // A failure the entry does not describe is not waived.
    let mut r = failing_users();
    r.tests[0].message = "timed out".into();
    assert_eq!(
        verdict(&known_issue("2027-03-01"), &[r]).verdict,
        Decision::Hold
    );
}

#[test]
fn an_expired_known_issue_fails_the_gate_and_waives_nothing() {
    let v = verdict(&known_issue("2026-12-01"), &[failing_users()]);
    assert_eq!(v.verdict, Decision::Hold);
    assert_eq!(
        having(&v, "no-failures", Status::Fail).len(),
        1,
        "{}",
        v.render()
    );
    let e = having(&v, "known-issues", Status::Fail);
    assert!(
        e[0].starts_with(
            "known issue https://tracker.example/aviary/7 (provisioning::*) expired on 2026-12-01"
        ),
        "{}",
        e[0]
    );
    // Expired even with nothing failing: the list must be kept up to date.
    assert_eq!(
        verdict(&known_issue("2026-12-01"), &[good_run("r1")]).verdict,
        Decision::Hold
    );
    // The expiry date is a whole day: on that day it still waives.
    let v = verdict(&known_issue("2026-12-02"), &[failing_users()]);
    assert_eq!(
        having(&v, "no-failures", Status::Waived).len(),
        1,
        "{}",
        v.render()
    );
}

#[test]
fn a_known_issue_close_to_expiry_warns_but_does_not_hold() {
    let v = verdict(&known_issue("2026-12-05"), &[good_run("r1")]);
    assert_eq!(v.verdict, Decision::Promote);
    assert_eq!(
        having(&v, "known-issues", Status::Warn),
        ["known issue https://tracker.example/aviary/7 (provisioning::*) expires on 2026-12-05 (in 4 day(s))"]
    );
    let v = verdict(
        &format!("{}    expiry_warning: 2d\n", known_issue("2026-12-05")),
        &[good_run("r1")],
    );
    assert!(
        having(&v, "known-issues", Status::Warn).is_empty(),
        "{}",
        v.render()
    );
}

#[test]
fn an_interrupted_or_unfinished_run_holds() {
    let mut a = good_run("r1");
    a.interrupted = Some("SIGINT".into());
    let mut b = good_run("r2");
    b.finished = false;
    let v = verdict("", &[a, b]);
    assert_eq!(
        having(&v, "runs-complete", Status::Fail),
        [
            "run r1 (/reports/r1) was interrupted (SIGINT)",
            "run r2 (/reports/r2) did not finish (its reports were written mid-run)"
        ]
    );
}

// --- whole requests over files: reports, manifest, policy ----------------------------------

struct Fixture {
    dir: tempfile::TempDir,
}

const DIGEST: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("channels.yaml"),
            format!("channels:\n  beta:\n    version: 1001.0.0\n    kernel_package: linux-image-6.1.0-53-cloud-amd64\n    disk: {{ sha256: {DIGEST}, size: 1 }}\n  stable:\n    version: 1000.0.0\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("promotion.yaml"),
            "transitions:\n  - from: beta\n    to: stable\n    required_tests: [provisioning::users]\n",
        )
        .unwrap();
        Fixture { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A run folder as `aviary run` writes it: summary.json and junit.xml, whose test
    /// `provisioning::users` ends as `users` in the one and as `junit_users` in the other.
    fn report(&self, run_id: &str, digest: &str, users: &str, junit_users: &str) -> PathBuf {
        use crate::runner::result::Outcome;
        let d = self.path(run_id);
        std::fs::create_dir_all(&d).unwrap();
        let outcome = |s: &str| match s {
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed {
                message: "it broke".into(),
                detail: "x".into(),
                cause: None,
            },
            _ => Outcome::Error {
                message: "it broke".into(),
                detail: "x".into(),
                cause: None,
            },
        };
        let mut info = crate::report::read::tests::info(run_id);
        info.images = vec![crate::images::ResolvedImage {
            name: "beta".into(),
            channel: Some("beta".into()),
            version: "1001.0.0".into(),
            kernel_release: "6.1.0-53-cloud-amd64".into(),
            kernel_version: "6.1.187-1".into(),
            disk: "/cache/beta/disk.qcow2".into(),
            sha256: digest.into(),
            vmlinuz: None,
            fw_cfg_name: "opt/com.coreos/config".into(),
            profile: Default::default(),
            payload: None,
            payload_sha256: None,
            payload_size: None,
        }];
        let mut t = crate::report::read::tests::test("users", outcome(users));
        t.suite = "provisioning".into();
        t.machines = vec![crate::runner::result::MachineReport {
            name: "node".into(),
            image: "beta".into(),
            version: "1001.0.0".into(),
            sha256: digest.into(),
            boots: vec![],
            first_command_s: None,
            first_command_at_ms: None,
            ssh: None,
        }];
        let summary = serde_json::json!({
            "aviary": "0.1.0", "run": info, "finished": true, "interrupted": null, "tests": [t],
        });
        std::fs::write(d.join("summary.json"), summary.to_string()).unwrap();
        t.outcome = outcome(junit_users);
        let xml = crate::report::junit::render(&info, &[t]).unwrap();
        std::fs::write(d.join("junit.xml"), xml).unwrap();
        d
    }

    fn request(&self, reports: Vec<PathBuf>) -> GateRequest {
        GateRequest {
            policy: self.path("promotion.yaml"),
            manifest: self.path("channels.yaml"),
            suites_dir: self.path("suites"),
            from: "beta".into(),
            to: "stable".into(),
            release: "1001.0.0".into(),
            reports,
            now: now(),
        }
    }

    fn bad_input(&self, req: &GateRequest) -> String {
        let e = evaluate_request(req).unwrap_err();
        assert!(
            e.downcast_ref::<BadInput>().is_some(),
            "not bad input: {e:#}"
        );
        e.to_string()
    }
}

#[test]
fn reads_run_folders_and_decides() {
    let f = Fixture::new();
    let ok = f.report("r1", DIGEST, "passed", "passed");
    let v = evaluate_request(&f.request(vec![ok.clone(), ok.join("summary.json")])).unwrap();
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    assert_eq!(v.runs.len(), 1, "the same folder twice counts once");
    let bad = f.report("r2", DIGEST, "failed", "failed");
    let v = evaluate_request(&f.request(vec![ok, bad])).unwrap();
    assert_eq!(v.verdict, Decision::Hold);
    let out = f.path("v/verdict.json");
    let sha = v.write(&out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(sha, crate::images::cache::sha256_bytes(text.as_bytes()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["verdict"], "hold");
    assert_eq!(json["release"], "1001.0.0");
    assert!(json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["status"] == "fail"
            && r["rule"] == "no-failures"
            && r["tests"][0] == "provisioning::users"));
}

#[test]
fn contradictory_or_malformed_reports_are_bad_input() {
    let f = Fixture::new();
    // junit.xml and summary.json disagree.
    let d = f.report("r1", DIGEST, "passed", "failed");
    let e = f.bad_input(&f.request(vec![d]));
    assert!(
        e.contains("junit.xml says provisioning::users failed, but")
            && e.contains("summary.json says passed: contradictory reports"),
        "{e}"
    );
    // Reports of another build of the release.
    let d = f.report("r2", &"c".repeat(64), "passed", "passed");
    let e = f.bad_input(&f.request(vec![d]));
    assert!(
        e.contains("run r2 tested 1001.0.0 as image `beta` with sha256 cccc"),
        "{e}"
    );
    assert!(e.contains("these reports are of another build"), "{e}");
    // Two folders claiming one run.
    let a = f.report("r3", DIGEST, "passed", "passed");
    let b = f.path("copy-of-r3");
    std::fs::create_dir_all(&b).unwrap();
    for n in ["summary.json", "junit.xml"] {
        std::fs::copy(a.join(n), b.join(n)).unwrap();
    }
    let e = f.bad_input(&f.request(vec![a.clone(), b]));
    assert!(e.contains("run r3 appears twice"), "{e}");
    // Malformed JSON names file, line and column.
    std::fs::write(a.join("summary.json"), "{\n  \"run\": [\n").unwrap();
    let e = f.bad_input(&f.request(vec![a.clone()]));
    assert!(
        e.contains("summary.json:3:0: not valid JSON") || e.contains("summary.json:3:"),
        "{e}"
    );
    // A missing field is named.
    std::fs::write(
        a.join("summary.json"),
        r#"{"run": {"started": "x", "images": []}}"#,
    )
    .unwrap();
    let e = f.bad_input(&f.request(vec![a.clone()]));
    assert!(
        e.contains("summary.json:1:38: not a summary.json aviary can read: missing field `run_id`"),
        "{e}"
    );
    // Not a run folder at all.
    let e = f.bad_input(&f.request(vec![f.path("nowhere")]));
    assert!(
        e.contains("nowhere/summary.json: cannot read") && e.contains("a REPORT is a run folder"),
        "{e}"
    );
    // A run of another release.
    let d = f.report("r4", DIGEST, "passed", "passed");
    let s = std::fs::read_to_string(d.join("summary.json"))
        .unwrap()
        .replace("1001.0.0", "1000.0.0");
    std::fs::write(d.join("summary.json"), s).unwrap();
    let e = f.bad_input(&f.request(vec![d]));
    assert!(
        e.contains("did not test release 1001.0.0 (it booted: beta 1000.0.0)"),
        "{e}"
    );
    // A junit.xml that is not JUnit.
    let d = f.report("r5", DIGEST, "passed", "passed");
    std::fs::write(d.join("junit.xml"), "<html>").unwrap();
    let e = f.bad_input(&f.request(vec![d]));
    assert!(e.contains("junit.xml: not a JUnit report"), "{e}");
}

#[test]
fn a_request_that_contradicts_the_manifest_or_policy_is_bad_input() {
    let f = Fixture::new();
    let ok = f.report("r1", DIGEST, "passed", "passed");
    let mut req = f.request(vec![ok.clone()]);
    req.release = "1002.0.0".into();
    let e = f.bad_input(&req);
    assert!(
        e.contains("--release 1002.0.0") && e.contains("records beta 1001.0.0"),
        "{e}"
    );
    let mut req = f.request(vec![ok.clone()]);
    req.from = "stable".into();
    req.to = "beta".into();
    let e = f.bad_input(&req);
    assert!(
        e.contains("has no rules for stable -> beta; it has: beta -> stable"),
        "{e}"
    );
    // A required test its suite does not declare.
    std::fs::create_dir_all(f.path("suites")).unwrap();
    std::fs::write(
        f.path("suites/provisioning.yaml"),
        "suite: provisioning\ntests:\n  - name: files\n    machines: { node: { image: stable } }\n    steps:\n      - run: { on: node, cmd: \"true\" }\n",
    )
    .unwrap();
    let e = f.bad_input(&f.request(vec![ok.clone()]));
    assert!(
        e.contains(
            "requires test provisioning::users, but suite `provisioning` declares no test `users`"
        ),
        "{e}"
    );
    // A broken policy file names its place.
    std::fs::write(
        f.path("promotion.yaml"),
        "transitions:\n  - from: beta\n    to: stable\n    flake_budget: lots\n",
    )
    .unwrap();
    let e = f.bad_input(&f.request(vec![ok]));
    assert!(e.contains("promotion.yaml:4:19"), "{e}");
}

// --- evidence bound to the release -----------------------------------------------------------

fn update(channel: &str, sha: &str, outcome: UpdateOutcome) -> UpdateRecord {
    UpdateRecord {
        machine: "node".into(),
        channel: channel.into(),
        version: "1001.0.0".into(),
        sha256: sha.repeat(64),
        payload_sha256: "p".repeat(64),
        outcome,
        in_setup: true,
        download_s: Some(15.0),
        write_s: Some(11.0),
    }
}

/// The same passing run promotes when the required test booted the candidate, and holds when
/// it booted another release while other tests of that run booted the candidate.
#[test]
fn a_pass_counts_only_for_the_release_it_exercised() {
    let policy = "    required_suites: [provisioning]\n";
    let on_beta = run(
        "r1",
        vec![
            test("provisioning::users", TestStatus::Passed),
            test("provisioning::files", TestStatus::Passed),
        ],
    );
    let v = verdict(policy, &[on_beta]);
    assert_eq!(v.verdict, Decision::Promote, "{}", v.render());
    assert_eq!(
        having(&v, "evidence", Status::Pass),
        ["2 of 2 required test(s) passed exercising beta 1001.0.0; none passed only on other releases"]
    );
    let mixed = run(
        "r1",
        vec![
            test("provisioning::users", TestStatus::Passed),
            on(
                "provisioning::files",
                TestStatus::Passed,
                "stable",
                "1000.0.0",
                "a",
            ),
        ],
    );
    let v = verdict(policy, &[mixed]);
    assert_eq!(v.verdict, Decision::Hold, "{}", v.render());
    assert_eq!(
        having(&v, "evidence", Status::Fail),
        ["provisioning::files passed only without exercising beta 1001.0.0 (sha256 bbbbbbbbbbbb): in run r1: booted stable 1000.0.0 (aaaaaaaaaaaa); the policy counts it with a machine booting beta 1001.0.0 (evidence: boot)"]
    );
    assert_eq!(
        having(&v, "required-suites", Status::Fail),
        ["required suite `provisioning`: 1 of its 2 test(s) never passed (1 passed only without exercising the release (see evidence))"]
    );
    assert!(v.render().contains("verdict: HOLD"), "{}", v.render());
}

#[test]
fn an_update_test_counts_when_it_installed_the_release_unless_the_policy_says_otherwise() {
    let mut into_beta = on(
        "upgrade::stable-to-beta",
        TestStatus::Passed,
        "stable",
        "1000.0.0",
        "a",
    );
    into_beta.exercise.updates = vec![update("beta", "b", UpdateOutcome::Installed)];
    let mut refused = on(
        "upgrade::beta-refused",
        TestStatus::Passed,
        "stable",
        "1000.0.0",
        "a",
    );
    refused.exercise.updates = vec![update("beta", "b", UpdateOutcome::Refused)];
    let mut into_alpha = into_beta.clone();
    into_alpha.name = "stable-to-alpha".into();
    into_alpha.exercise.updates = vec![update("alpha", "c", UpdateOutcome::Installed)];
    let runs = [run("r1", vec![into_beta, refused, into_alpha])];
    let required = "    required_tests: [\"upgrade::*\"]\n";
    let catalog = BTreeMap::from([(
        "upgrade".to_string(),
        ["stable-to-beta", "beta-refused", "stable-to-alpha"]
            .map(String::from)
            .to_vec(),
    )]);
    let judge = |extra: &str| {
        let mut t = transition(&format!("{required}{extra}"));
        t.required_tests = expand_required(&t, &catalog).unwrap();
        evaluate(&t, &release(None), &runs, &catalog, now())
    };
    // By default an update test needs an installed update into the release.
    let v = judge("");
    let fails = having(&v, "evidence", Status::Fail);
    assert_eq!(fails.len(), 2, "{}", v.render());
    assert!(
        fails[0].starts_with("upgrade::beta-refused passed only without exercising beta 1001.0.0"),
        "{}",
        fails[0]
    );
    assert!(
        fails[0].contains("offered updates to beta 1001.0.0 (bbbbbbbbbbbb, refused)"),
        "{}",
        fails[0]
    );
    assert!(
        fails[0].ends_with(
            "the policy counts it with an update step installing beta 1001.0.0 (evidence: update)"
        ),
        "{}",
        fails[0]
    );
    assert!(
        fails[1].starts_with("upgrade::stable-to-alpha passed only"),
        "{}",
        fails[1]
    );
    assert_eq!(
        having(&v, "required-tests", Status::Pass),
        ["required test upgrade::stable-to-beta passed"]
    );
    // A refused payload counts with `offer`; a test about another release never does.
    let v = judge("    evidence:\n      tests: { \"upgrade::*-refused\": offer }\n");
    let fails = having(&v, "evidence", Status::Fail);
    assert_eq!(fails.len(), 1, "{}", v.render());
    assert!(
        fails[0].starts_with("upgrade::stable-to-alpha"),
        "{}",
        fails[0]
    );
    // `boot` for the whole suite: no test booted beta.
    let v = judge("    evidence:\n      suites: { upgrade: boot }\n");
    assert_eq!(
        having(&v, "evidence", Status::Fail).len(),
        3,
        "{}",
        v.render()
    );
}

mod budgets;
mod requests;
