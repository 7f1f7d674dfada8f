//! The gate's rules, as a pure function of the policy, the release and what the reports say.

use super::exercise::Exercise;
use super::policy::Transition;
use super::verdict::{Decision, Reason, RunRef, Status, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The release asking to move: the `from` channel's entry in channels.yaml.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub digest: String,
    /// When it entered its channel (seconds), if recorded.
    pub entered: Option<i64>,
    /// The release it would replace (the `to` channel's): its version and disk digest, when
    /// built; what the budgets compare with.
    pub baseline: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    Passed,
    Failed,
    Error,
    /// Not run: its OS profile gives a step no meaning (never a pass, never a failure).
    Skipped,
}

/// One test's result in one run, as its reports say.
#[derive(Debug, Clone)]
pub struct TestEvidence {
    pub suite: String,
    pub name: String,
    pub status: TestStatus,
    pub message: String,
    /// Passed after failing on a retry.
    pub flaky: bool,
    /// The images its machines booted and its update steps (of the last attempt).
    pub exercise: Exercise,
    /// Its measurements, when it is a test of the budget suite.
    pub samples: Vec<super::budget::Sample>,
}

impl TestEvidence {
    pub fn id(&self) -> String {
        crate::suite::TestId::new(&self.suite, &self.name).into()
    }
}

/// One run (or one shard of a run), already checked against the release.
#[derive(Debug, Clone)]
pub struct RunEvidence {
    pub dir: PathBuf,
    pub run_id: String,
    pub started: String,
    pub finished: bool,
    pub interrupted: Option<String>,
    /// Why the run ended before its last test (`runner::stop`), when it did.
    pub stopped: Option<String>,
    pub tests: Vec<TestEvidence>,
    /// Every image the run resolved: (version, disk sha256).
    pub images: Vec<(String, String)>,
}

/// Applies every rule of `t`. `catalog` lists each suite's declared tests (from the suite
/// files), so a required suite is only satisfied by all of its tests.
pub fn evaluate(
    t: &Transition,
    release: &Release,
    runs: &[RunEvidence],
    catalog: &BTreeMap<String, Vec<String>>,
    now: i64,
) -> Verdict {
    let mut reasons = Vec::new();
    runs_complete(runs, &mut reasons);
    failures(t, runs, now, &mut reasons);
    let passed = passes(t, release, runs);
    let required = required_suites(t, runs, &passed, catalog, &mut reasons);
    required_tests(t, runs, &passed, &mut reasons);
    let mut all_required = required.clone();
    all_required.extend(t.required_tests.iter().cloned());
    bound_to_release(t, release, runs, &passed, &all_required, &mut reasons);
    min_runs(t, runs, &passed, &required, &mut reasons);
    soak(t, release, now, &mut reasons);
    budgets(t, release, runs, &mut reasons);
    flakes(t, runs, &mut reasons);
    known_issue_dates(t, now, &mut reasons);
    let decision = if reasons.iter().any(|r| r.status == Status::Fail) {
        Decision::Hold
    } else {
        Decision::Promote
    };
    Verdict {
        verdict: decision,
        release: release.version.clone(),
        from: t.from.clone(),
        to: t.to.clone(),
        digest: release.digest.clone(),
        evaluated_at: crate::clock::rfc3339(now),
        runs: runs
            .iter()
            .map(|r| RunRef {
                run_id: r.run_id.clone(),
                dir: r.dir.clone(),
                started: r.started.clone(),
                tests: r.tests.len(),
            })
            .collect(),
        reasons,
    }
}

fn reason(rule: &str, status: Status, message: String, tests: Vec<String>) -> Reason {
    Reason {
        rule: rule.to_string(),
        status,
        message,
        tests,
        tracker: None,
    }
}

fn runs_complete(runs: &[RunEvidence], out: &mut Vec<Reason>) {
    let mut bad = false;
    for r in runs {
        let why = match (&r.interrupted, r.finished) {
            (Some(sig), _) => format!("was interrupted ({sig})"),
            (None, false) => "did not finish (its reports were written mid-run)".to_string(),
            (None, true) => continue,
        };
        bad = true;
        out.push(reason(
            "runs-complete",
            Status::Fail,
            format!("run {} ({}) {why}", r.run_id, r.dir.display()),
            Vec::new(),
        ));
    }
    if !bad {
        out.push(reason(
            "runs-complete",
            Status::Pass,
            format!("{} run(s), every one finished", runs.len()),
            Vec::new(),
        ));
    }
}

fn failures(t: &Transition, runs: &[RunEvidence], now: i64, out: &mut Vec<Reason>) {
    let mut results = 0;
    let mut failed = 0;
    for r in runs {
        for e in &r.tests {
            results += 1;
            if matches!(e.status, TestStatus::Passed | TestStatus::Skipped) {
                continue;
            }
            failed += 1;
            let what = if e.status == TestStatus::Failed {
                "failed"
            } else {
                "errored"
            };
            let id = e.id();
            let waiver = t
                .known_issues
                .iter()
                .find(|k| k.matches(&id, &e.message) && now < k.expires_at);
            let mut rs = match waiver {
                Some(k) => reason(
                    "no-failures",
                    Status::Waived,
                    format!(
                        "{id} {what} in run {}: {} — waived until {} by known issue {} ({})",
                        r.run_id, e.message, k.expires, k.tracker, k.reason
                    ),
                    vec![id.clone()],
                ),
                None => reason(
                    "no-failures",
                    Status::Fail,
                    format!("{id} {what} in run {}: {}", r.run_id, e.message),
                    vec![id.clone()],
                ),
            };
            rs.tracker = waiver.map(|k| k.tracker.clone());
            out.push(rs);
        }
    }
    if failed == 0 {
        out.push(reason(
            "no-failures",
            Status::Pass,
            format!("no test failed ({results} results)"),
            Vec::new(),
        ));
    }
}

/// Ids of tests that passed exercising the release as the policy asks, and the runs they
/// passed in.
fn passes(
    t: &Transition,
    release: &Release,
    runs: &[RunEvidence],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in runs {
        for e in r.tests.iter().filter(|e| counts(t, release, e)) {
            m.entry(e.id()).or_default().insert(r.run_id.clone());
        }
    }
    m
}

/// The tests of `ids` that a run skipped, each with its reason (`id: profile …: why`).
fn skipped_of(runs: &[RunEvidence], ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = runs
        .iter()
        .flat_map(|r| r.tests.iter())
        .filter(|e| e.status == TestStatus::Skipped && ids.contains(&e.id()))
        .map(|e| format!("{}: {}", e.id(), e.message))
        .collect();
    out.dedup();
    out
}

/// Whether test `id` passed in any run, whatever it ran on.
fn passed_at_all(runs: &[RunEvidence], id: &str) -> bool {
    runs.iter()
        .flat_map(|r| r.tests.iter())
        .any(|e| e.id() == id && e.status == TestStatus::Passed)
}

/// A passing result that exercised the release the way the policy asks for its test.
fn counts(t: &Transition, release: &Release, e: &TestEvidence) -> bool {
    e.status == TestStatus::Passed
        && e.exercise
            .satisfies(t.evidence.mode_for(&e.suite, &e.name), &release.digest)
}

/// Holds the release for every required test that passed, but only on other releases (or
/// without the update the policy asks for), naming the test and what it ran on.
fn bound_to_release(
    t: &Transition,
    release: &Release,
    runs: &[RunEvidence],
    passed: &BTreeMap<String, BTreeSet<String>>,
    required: &BTreeSet<String>,
    out: &mut Vec<Reason>,
) {
    let what = format!("{} {}", t.from, release.version);
    let mut elsewhere = 0;
    for id in required.iter().filter(|id| !passed.contains_key(*id)) {
        let seen: Vec<(&RunEvidence, &TestEvidence)> = runs
            .iter()
            .flat_map(|r| r.tests.iter().map(move |e| (r, e)))
            .filter(|(_, e)| &e.id() == id && e.status == TestStatus::Passed)
            .collect();
        let Some((_, first)) = seen.first() else {
            continue;
        };
        elsewhere += 1;
        let mode = t
            .evidence
            .mode_for(&first.suite, &first.name)
            .resolve(&first.exercise);
        let ran: Vec<String> = seen
            .iter()
            .map(|(r, e)| format!("in run {}: {}", r.run_id, e.exercise.describe()))
            .collect();
        out.push(reason(
            "evidence",
            Status::Fail,
            format!(
                "{id} passed only without exercising {what} (sha256 {}): {}; the policy counts it with {} (evidence: {mode})",
                super::exercise::short(&release.digest),
                ran.join("; "),
                mode.needs(&what)
            ),
            vec![id.clone()],
        ));
    }
    if elsewhere == 0 {
        let bound = required
            .iter()
            .filter(|id| passed.contains_key(*id))
            .count();
        out.push(reason(
            "evidence",
            Status::Pass,
            format!(
                "{bound} of {} required test(s) passed exercising {what}; none passed only on other releases",
                required.len()
            ),
            Vec::new(),
        ));
    }
}

/// Checks each required suite; returns the test ids they require.
fn required_suites(
    t: &Transition,
    runs: &[RunEvidence],
    passed: &BTreeMap<String, BTreeSet<String>>,
    catalog: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<Reason>,
) -> BTreeSet<String> {
    let mut required = BTreeSet::new();
    for suite in &t.required_suites {
        let reported: BTreeSet<String> = runs
            .iter()
            .flat_map(|r| r.tests.iter())
            .filter(|e| &e.suite == suite)
            .map(TestEvidence::id)
            .collect();
        let declared: BTreeSet<String> = catalog
            .get(suite)
            .map(|v| v.iter().map(|n| format!("{suite}::{n}")).collect())
            .unwrap_or_else(|| reported.clone());
        required.extend(declared.iter().cloned());
        let missing: Vec<String> = declared
            .iter()
            .filter(|id| !passed.contains_key(*id))
            .cloned()
            .collect();
        let never_run: Vec<&String> = missing
            .iter()
            .filter(|id| !reported.contains(*id))
            .collect();
        let elsewhere = missing.iter().filter(|id| passed_at_all(runs, id)).count();
        let skipped = skipped_of(runs, &missing);
        if declared.is_empty() {
            out.push(reason(
                "required-suites",
                Status::Fail,
                format!("required suite `{suite}` is in no report"),
                Vec::new(),
            ));
        } else if missing.is_empty() {
            out.push(reason(
                "required-suites",
                Status::Pass,
                format!(
                    "required suite `{suite}`: all {} test(s) passed",
                    declared.len()
                ),
                Vec::new(),
            ));
        } else {
            let mut notes = Vec::new();
            if elsewhere > 0 {
                notes.push(format!(
                    "{elsewhere} passed only without exercising the release (see evidence)"
                ));
            }
            if !skipped.is_empty() {
                notes.push(format!(
                    "{} skipped by their OS profile: {}",
                    skipped.len(),
                    skipped.join("; ")
                ));
            }
            if !never_run.is_empty() {
                notes.push(format!(
                    "{} never ran: {}",
                    never_run.len(),
                    never_run
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let detail = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            };
            out.push(reason(
                "required-suites",
                Status::Fail,
                format!(
                    "required suite `{suite}`: {} of its {} test(s) never passed{detail}",
                    missing.len(),
                    declared.len()
                ),
                missing,
            ));
        }
    }
    required
}

fn required_tests(
    t: &Transition,
    runs: &[RunEvidence],
    passed: &BTreeMap<String, BTreeSet<String>>,
    out: &mut Vec<Reason>,
) {
    for id in &t.required_tests {
        let seen = runs
            .iter()
            .flat_map(|r| r.tests.iter())
            .any(|e| &e.id() == id);
        let (status, message) = match (passed.contains_key(id), seen) {
            (true, _) => (Status::Pass, format!("required test {id} passed")),
            (false, true) if passed_at_all(runs, id) => (
                Status::Fail,
                format!(
                    "required test {id} passed only without exercising the release (see evidence)"
                ),
            ),
            (false, true) => (Status::Fail, format!("required test {id} never passed")),
            (false, false) => (Status::Fail, format!("required test {id} is in no report")),
        };
        out.push(reason("required-tests", status, message, vec![id.clone()]));
    }
}

fn min_runs(
    t: &Transition,
    runs: &[RunEvidence],
    passed: &BTreeMap<String, BTreeSet<String>>,
    suite_tests: &BTreeSet<String>,
    out: &mut Vec<Reason>,
) {
    let mut required: BTreeSet<String> = suite_tests.clone();
    required.extend(t.required_tests.iter().cloned());
    let n = t.min_runs as usize;
    if required.is_empty() {
        let ids: BTreeSet<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        let status = if ids.len() >= n {
            Status::Pass
        } else {
            Status::Fail
        };
        out.push(reason(
            "min-runs",
            status,
            format!("{} run(s); the policy asks for {n}", ids.len()),
            Vec::new(),
        ));
        return;
    }
    let short: Vec<String> = required
        .iter()
        .filter(|id| passed.get(*id).map_or(0, BTreeSet::len) < n)
        .cloned()
        .collect();
    if short.is_empty() {
        out.push(reason(
            "min-runs",
            Status::Pass,
            format!(
                "each of the {} required test(s) passed in at least {n} run(s)",
                required.len()
            ),
            Vec::new(),
        ));
    } else {
        let fewest = short
            .iter()
            .map(|id| passed.get(id).map_or(0, BTreeSet::len))
            .min()
            .unwrap_or(0);
        out.push(reason(
            "min-runs",
            Status::Fail,
            format!(
                "{} required test(s) passed in fewer than {n} run(s) (fewest: {fewest})",
                short.len()
            ),
            short,
        ));
    }
}

fn budgets(t: &Transition, release: &Release, runs: &[RunEvidence], out: &mut Vec<Reason>) {
    use super::budget::Side;
    if t.budgets.is_empty() {
        return;
    }
    let samples: Vec<super::budget::Sample> = runs
        .iter()
        .flat_map(|r| r.tests.iter())
        .flat_map(|e| e.samples.iter().cloned())
        .collect();
    let candidate = Side {
        label: format!("{} {}", t.from, release.version),
        digest: release.digest.clone(),
    };
    let baseline = release.baseline.as_ref().map(|(v, d)| Side {
        label: format!("{} {v}", t.to),
        digest: d.clone(),
    });
    let held_elsewhere = out.iter().any(|r| r.status == Status::Fail);
    let stop = runs.iter().find_map(|r| {
        r.stopped.as_deref().map(|why| super::budget::EarlyStop {
            why,
            held_elsewhere,
        })
    });
    out.extend(super::budget::evaluate(
        &t.budgets,
        &samples,
        &candidate,
        baseline.as_ref(),
        stop,
    ));
}

fn soak(t: &Transition, release: &Release, now: i64, out: &mut Vec<Reason>) {
    use crate::suite::duration::format;
    let need = t.min_soak;
    let (status, message) = match release.entered {
        _ if need.is_zero() => (Status::Pass, "no soak time required".to_string()),
        None => (
            Status::Fail,
            format!(
                "the policy asks for {} in {} but channels.yaml records no `entered` time for {} {}",
                format(need),
                t.from,
                t.from,
                release.version
            ),
        ),
        Some(at) => {
            let soaked = std::time::Duration::from_secs((now - at).max(0) as u64);
            let status = if soaked >= need {
                Status::Pass
            } else {
                Status::Fail
            };
            let soaked_text = format(soaked.max(std::time::Duration::from_secs(1)));
            (
                status,
                format!(
                    "{} {} entered {} at {}: soaked {soaked_text} of {}",
                    t.from,
                    release.version,
                    t.from,
                    crate::clock::rfc3339(at),
                    format(need)
                ),
            )
        }
    };
    out.push(reason("min-soak", status, message, Vec::new()));
}

fn flakes(t: &Transition, runs: &[RunEvidence], out: &mut Vec<Reason>) {
    let flaky: Vec<String> = runs
        .iter()
        .flat_map(|r| r.tests.iter().map(move |e| (r, e)))
        .filter(|(_, e)| e.flaky && e.status == TestStatus::Passed)
        .map(|(r, e)| format!("{} (run {})", e.id(), r.run_id))
        .collect();
    let budget = t.flake_budget as usize;
    let status = if flaky.len() <= budget {
        Status::Pass
    } else {
        Status::Fail
    };
    let list = if flaky.is_empty() {
        String::new()
    } else {
        format!(": {}", flaky.join(", "))
    };
    out.push(reason(
        "flake-budget",
        status,
        format!("{} flaky test(s), budget {budget}{list}", flaky.len()),
        flaky,
    ));
}

fn known_issue_dates(t: &Transition, now: i64, out: &mut Vec<Reason>) {
    for k in &t.known_issues {
        let left = k.expires_at - now;
        let (status, message) = if left <= 0 {
            (
                Status::Fail,
                format!(
                    "known issue {} ({}) expired on {}: fix it, or review and extend the entry at {}",
                    k.tracker, k.tests, k.expires, k.loc
                ),
            )
        } else if left <= t.expiry_warning.as_secs() as i64 {
            let days = (left + 86_399) / 86_400;
            (
                Status::Warn,
                format!(
                    "known issue {} ({}) expires on {} (in {days} day(s))",
                    k.tracker, k.tests, k.expires
                ),
            )
        } else {
            continue;
        };
        let mut r = reason("known-issues", status, message, Vec::new());
        r.tracker = Some(k.tracker.clone());
        out.push(r);
    }
}
