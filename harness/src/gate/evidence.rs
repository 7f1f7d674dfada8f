//! Reading what runs showed for a release: each run folder's summary.json, cross-checked
//! against its junit.xml. Reports that contradict each other or the release are bad input.

use super::evaluate::{RunEvidence, TestEvidence, TestStatus};
use crate::commands::BadInput;
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

fn field<'a>(
    v: &'a serde_json::Value,
    path: &str,
    file: &Path,
) -> Result<&'a serde_json::Value, BadInput> {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur
            .get(k)
            .ok_or_else(|| bad(format!("{}: field `{path}` is missing", file.display())))?;
    }
    Ok(cur)
}

fn string(v: &serde_json::Value, path: &str, file: &Path) -> Result<String, BadInput> {
    field(v, path, file)?
        .as_str()
        .map(String::from)
        .ok_or_else(|| {
            bad(format!(
                "{}: field `{path}` is not a string",
                file.display()
            ))
        })
}

/// Reads one run folder and checks it tested `version` with `digest`.
pub fn read_run(arg: &Path, version: &str, digest: &str) -> Result<RunEvidence, BadInput> {
    let dir = run_dir(arg);
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(format!(
            "{}: cannot read ({e}); a REPORT is a run folder that `aviary run` wrote (reports/<run-id>/)",
            path.display()
        ))
    })?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{}:{}:{}: not valid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let run_id = string(&doc, "run.run_id", &path)?;
    let started = string(&doc, "run.started", &path)?;
    let images = field(&doc, "run.images", &path)?
        .as_array()
        .ok_or_else(|| {
            bad(format!(
                "{}: field `run.images` is not a list",
                path.display()
            ))
        })?;
    let mut tested = false;
    for img in images {
        let v = string(img, "version", &path)?;
        let sha = string(img, "sha256", &path)?;
        let name = string(img, "name", &path)?;
        if v == version {
            if sha != digest {
                return Err(bad(format!(
                    "{}: run {run_id} tested {version} as image `{name}` with sha256 {sha}, but channels.yaml records {digest} for that release: these reports are of another build",
                    path.display()
                )));
            }
            tested = true;
        }
    }
    if !tested {
        let seen: Vec<String> = images
            .iter()
            .filter_map(|i| {
                Some(format!(
                    "{} {}",
                    i.get("name")?.as_str()?,
                    i.get("version")?.as_str()?
                ))
            })
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
    let finished = field(&doc, "finished", &path)?.as_bool().unwrap_or(false);
    let interrupted = doc
        .get("interrupted")
        .and_then(|v| v.as_str())
        .map(String::from);
    let list = field(&doc, "tests", &path)?
        .as_array()
        .ok_or_else(|| bad(format!("{}: field `tests` is not a list", path.display())))?;
    let mut tests = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let at = |f: &str| format!("tests[{i}].{f}");
        let status = match string(t, "outcome.status", &path)?.as_str() {
            "passed" => TestStatus::Passed,
            "failed" => TestStatus::Failed,
            "error" => TestStatus::Error,
            other => {
                return Err(bad(format!(
                    "{}: {}: `{other}` is not an outcome (passed, failed, error)",
                    path.display(),
                    at("outcome.status")
                )))
            }
        };
        tests.push(TestEvidence {
            suite: string(t, "suite", &path)?,
            name: string(t, "name", &path)?,
            status,
            message: t
                .pointer("/outcome/message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
            flaky: t.get("flaky").and_then(|f| f.as_bool()).unwrap_or(false),
        });
    }
    cross_check(&dir.join("junit.xml"), &tests)?;
    Ok(RunEvidence {
        dir,
        run_id,
        started,
        finished,
        interrupted,
        tests,
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
            junit.insert(format!("{}::{}", s.name.as_str(), c.name.as_str()), status);
        }
    }
    let sibling = path.with_file_name("summary.json");
    for t in tests {
        let want = match t.status {
            TestStatus::Passed => "passed",
            TestStatus::Failed => "failed",
            TestStatus::Error => "error",
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
