//! Reading a run folder back: its summary.json, and that junit.xml is beside it. Shared by
//! `aviary report merge` and the promotion gate; knows nothing of the command line.

use crate::runner::result::{RunInfo, TestResult};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A run as its summary.json tells it. Keys the reader does not know (`aviary`, `counts`,
/// anything newer) are ignored; `counts` is derived from `tests`.
#[derive(Debug, Clone, Deserialize)]
pub struct RunReport {
    /// The folder it was read from.
    #[serde(skip)]
    pub dir: PathBuf,
    pub run: RunInfo,
    pub finished: bool,
    pub interrupted: Option<String>,
    /// Why the run ended before its last test; absent in runs that did not (and in older ones).
    #[serde(default)]
    pub stopped: Option<String>,
    pub tests: Vec<TestResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a summary.json aviary can read: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: missing; a run folder has junit.xml beside summary.json", path.display())]
    NoJunit { path: PathBuf },
}

/// Reads `dir/summary.json` and checks that `dir/junit.xml` exists.
pub fn read_run(dir: &Path) -> Result<RunReport, ReadError> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ReadError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let mut report = parse(&path, &text)?;
    let junit = dir.join("junit.xml");
    if !junit.is_file() {
        return Err(ReadError::NoJunit { path: junit });
    }
    report.dir = dir.to_path_buf();
    Ok(report)
}

/// Parses summary.json text; errors carry `path:line:column`.
pub fn parse(path: &Path, text: &str) -> Result<RunReport, ReadError> {
    serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; the location goes in front instead.
        let message = match full.rsplit_once(" at line ") {
            Some((m, _)) => m.to_string(),
            None => full,
        };
        ReadError::Malformed {
            path: path.to_path_buf(),
            line: e.line().max(1),
            // serde_json says column 0 for the end of a file that ends with a newline (or is
            // empty): that is the start of the last line.
            column: e.column().max(1),
            message,
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::machine::accel::{Accel, AccelDecision};
    use crate::runner::result::Outcome;
    use std::time::Duration;

    pub fn info(run_id: &str) -> RunInfo {
        RunInfo {
            evidence: crate::runner::result::EVIDENCE_FORMAT,
            run_id: run_id.into(),
            started: "2026-11-25T00:00:00Z".into(),
            dir: format!("/tmp/{run_id}").into(),
            seed: 7,
            accel: AccelDecision {
                accel: Accel::Tcg,
                reason: "no /dev/kvm".into(),
                kvm_probe: None,
                tcg_probe: None,
                timeout_scale: 1.5,
                host_key: "h".into(),
            },
            images: vec![],
            suites: vec!["s".into()],
            shard: None,
            retries: 0,
            schedule: None,
            merged_from: vec![],
        }
    }

    pub fn test(name: &str, outcome: Outcome) -> TestResult {
        TestResult {
            suite: "s".into(),
            name: name.into(),
            outcome,
            duration: Duration::from_millis(1_234),
            artifacts: format!("/tmp/r/s/{name}").into(),
            machines: vec![],
            log: "log".into(),
            reruns: vec![],
            flaky: false,
            updates: vec![],
        }
    }

    #[test]
    fn reads_back_what_the_summary_reporter_writes() {
        let d = tempfile::tempdir().unwrap();
        let mut i = info("r1");
        i.shard = Some("1/2".parse().unwrap());
        i.retries = 1;
        let mut flaky = test("flaky", Outcome::Passed);
        flaky.flaky = true;
        flaky.reruns = vec![crate::runner::result::Rerun {
            outcome: Outcome::Failed {
                message: "m".into(),
                detail: "d".into(),
                cause: None,
            },
            duration: Duration::from_millis(500),
            artifacts: "/tmp/r/s/flaky".into(),
        }];
        let tests = vec![test("a", Outcome::Passed), flaky];
        crate::report::summary::write(
            &d.path().join("summary.json"),
            &i,
            &tests,
            &crate::report::summary::End {
                finished: true,
                ..Default::default()
            },
        )
        .unwrap();
        std::fs::write(d.path().join("junit.xml"), "<testsuites/>").unwrap();
        let r = read_run(d.path()).unwrap();
        assert_eq!(r.dir, d.path());
        assert_eq!(r.run.shard, i.shard);
        assert_eq!(r.run.retries, 1);
        assert_eq!(r.run.accel, i.accel);
        assert!(r.finished);
        assert_eq!(r.tests.len(), 2);
        assert_eq!(r.tests[0].duration, Duration::from_millis(1_234));
        assert!(r.tests[1].flaky);
        assert_eq!(r.tests[1].reruns, tests[1].reruns);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(doc["counts"]["flaky"], 1);
        assert_eq!(doc["counts"]["passed"], 2);
        assert_eq!(doc["run"]["shard"], "1/2");
        assert_eq!(doc["tests"][1]["flaky"], true);
        assert_eq!(doc["tests"][1]["reruns"][0]["outcome"]["status"], "failed");
        assert_eq!(doc["tests"][1]["reruns"][0]["duration"], 0.5);
    }

    #[test]
    fn errors_name_the_file_and_the_place() {
        let d = tempfile::tempdir().unwrap();
        let e = read_run(d.path()).unwrap_err().to_string();
        assert!(e.contains("summary.json: cannot read"), "{e}");
        let p = d.path().join("summary.json");
        std::fs::write(&p, "{\n  \"run\": {,\n}").unwrap();
        let e = read_run(d.path()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:11: ", p.display())), "{e}");
        assert!(!e.contains(" at line "), "{e}");
        crate::report::summary::write(
            &p,
            &info("r"),
            &[],
            &crate::report::summary::End {
                finished: true,
                ..Default::default()
            },
        )
        .unwrap();
        let e = read_run(d.path()).unwrap_err().to_string();
        assert!(e.contains("junit.xml: missing"), "{e}");
    }
}
