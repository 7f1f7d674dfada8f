//! Reading what runs showed for a release: each run folder's summary.json, cross-checked
//! against its junit.xml. Reports that contradict each other or the release are bad input.

use super::evaluate::{RunEvidence, TestEvidence, TestStatus};
use super::exercise::{Booted, Exercise};
use crate::error::BadInput;
use crate::runner::result::Outcome;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The run folder a REPORT argument names: the folder itself, or the folder of its
/// summary.json or junit.xml.
fn run_dir(arg: &Path) -> PathBuf {
    if arg.is_file() {
        arg.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        arg.to_path_buf()
    }
}

fn bad(msg: String) -> BadInput {
    BadInput(format!("error: {msg}"))
}

/// Reads one run folder and checks it tested `version` with `digest`.
pub fn read_run(arg: &Path, version: &str, digest: &str) -> Result<RunEvidence, BadInput> {
    let dir = run_dir(arg);
    let report = crate::report::read::read_run(&dir).map_err(|e| {
        bad(format!(
            "{e}\n  hint: a REPORT is a run folder that `aviary run` wrote (reports/<run-id>/)"
        ))
    })?;
    let path = dir.join("summary.json");
    let run_id = report.run.run_id.clone();
    if report.run.evidence < crate::runner::result::EVIDENCE_FORMAT {
        return Err(bad(format!(
            "{}: run {run_id} was written by an older Aviary: its tests do not record which releases they booted and updated into (`run.evidence` is {}, this gate needs {}), so the gate cannot tell which of them exercised {version}\n  hint: run the suites again with this Aviary (`aviary qualify`, or `aviary run`)",
            path.display(),
            report.run.evidence,
            crate::runner::result::EVIDENCE_FORMAT
        )));
    }
    let mut tested = false;
    for img in &report.run.images {
        if img.version == version {
            if img.sha256 != digest {
                return Err(bad(format!(
                    "{}: run {run_id} tested {version} as image `{}` with sha256 {}, but channels.yaml records {digest} for that release: these reports are of another build",
                    path.display(),
                    img.name,
                    img.sha256
                )));
            }
            tested = true;
        }
    }
    if !tested {
        let seen: Vec<String> = report
            .run
            .images
            .iter()
            .map(|i| format!("{} {}", i.name, i.version))
            .collect();
        return Err(bad(format!(
            "{}: run {run_id} did not test release {version} (it booted: {})",
            path.display(),
            if seen.is_empty() {
                "nothing".to_string()
            } else {
                seen.join(", ")
            }
        )));
    }
    let tests: Vec<TestEvidence> = report
        .tests
        .iter()
        .map(|t| {
            let (status, message) = match &t.outcome {
                Outcome::Passed => (TestStatus::Passed, String::new()),
                Outcome::Failed { message, .. } => (TestStatus::Failed, message.clone()),
                Outcome::Error { message, .. } => (TestStatus::Error, message.clone()),
                Outcome::Skipped { message } => (TestStatus::Skipped, message.clone()),
            };
            TestEvidence {
                suite: t.suite.clone(),
                name: t.name.clone(),
                status,
                message,
                flaky: t.flaky,
                exercise: Exercise {
                    booted: t
                        .machines
                        .iter()
                        .map(|m| Booted {
                            machine: m.name.clone(),
                            image: m.image.clone(),
                            version: m.version.clone(),
                            sha256: m.sha256.clone(),
                        })
                        .collect(),
                    updates: t.updates.clone(),
                },
                samples: if t.suite == super::budget::SUITE {
                    super::budget::samples(&t.machines, &t.updates)
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    cross_check(&dir.join("junit.xml"), &tests)?;
    Ok(RunEvidence {
        dir,
        run_id,
        started: report.run.started.clone(),
        finished: report.finished,
        interrupted: report.interrupted.clone(),
        stopped: report.stopped.clone(),
        tests,
        images: report
            .run
            .images
            .iter()
            .map(|i| (i.version.clone(), i.sha256.clone()))
            .collect(),
    })
}

/// junit.xml and summary.json of one run must tell the same story.
fn cross_check(path: &Path, tests: &[TestEvidence]) -> Result<(), BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("{}: cannot read ({e})", path.display())))?;
    let report = quick_junit::Report::deserialize_from_str(&text)
        .map_err(|e| bad(format!("{}: not a JUnit report: {e}", path.display())))?;
    let mut junit: BTreeMap<String, &'static str> = BTreeMap::new();
    for s in &report.test_suites {
        for c in &s.test_cases {
            let status = match &c.status {
                quick_junit::TestCaseStatus::Success { .. } => "passed",
                quick_junit::TestCaseStatus::NonSuccess { kind, .. } => match kind {
                    quick_junit::NonSuccessKind::Failure => "failed",
                    quick_junit::NonSuccessKind::Error => "error",
                },
                quick_junit::TestCaseStatus::Skipped { .. } => "skipped",
            };
            let id = crate::suite::TestId::new(s.name.as_str(), c.name.as_str());
            junit.insert(id.into(), status);
        }
    }
    let sibling = path.with_file_name("summary.json");
    for t in tests {
        let want = match t.status {
            TestStatus::Passed => "passed",
            TestStatus::Failed => "failed",
            TestStatus::Error => "error",
            TestStatus::Skipped => "skipped",
        };
        match junit.remove(&t.id()) {
            Some(seen) if seen == want => {}
            Some(seen) => {
                return Err(bad(format!(
                    "{} says {} {seen}, but {} says {want}: contradictory reports",
                    path.display(),
                    t.id(),
                    sibling.display()
                )))
            }
            None => {
                return Err(bad(format!(
                    "{} has no test case {} that {} reports: contradictory reports",
                    path.display(),
                    t.id(),
                    sibling.display()
                )))
            }
        }
    }
    if let Some((id, _)) = junit.into_iter().next() {
        return Err(bad(format!(
            "{} reports {id}, which {} does not: contradictory reports",
            path.display(),
            sibling.display()
        )));
    }
    Ok(())
}

/// Reads every REPORT; the same folder twice counts once, two folders claiming one run id
/// contradict each other.
pub fn read_runs(
    args: &[PathBuf],
    version: &str,
    digest: &str,
) -> Result<Vec<RunEvidence>, BadInput> {
    let mut runs: Vec<RunEvidence> = Vec::new();
    for a in args {
        let r = read_run(a, version, digest)?;
        let same = |x: &Path, y: &Path| match (x.canonicalize(), y.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => x == y,
        };
        if let Some(prev) = runs.iter().find(|p| p.run_id == r.run_id) {
            if same(&prev.dir, &r.dir) {
                continue;
            }
            return Err(bad(format!(
                "run {} appears twice, in {} and in {}: contradictory reports (give each run once; `aviary report merge` joins shards)",
                r.run_id,
                prev.dir.display(),
                r.dir.display()
            )));
        }
        runs.push(r);
    }
    Ok(runs)
}
