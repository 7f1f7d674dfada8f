//! summary.json: the run's facts and every test's outcome, for machines to read.

use super::{Event, Reporter};
use crate::runner::result::{Outcome, RunInfo, TestResult};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

pub struct SummaryReporter {
    path: PathBuf,
    info: Option<RunInfo>,
    results: Vec<TestResult>,
    interrupted: Option<String>,
    finished: bool,
}

impl SummaryReporter {
    pub fn new(path: PathBuf) -> Self {
        SummaryReporter {
            path,
            info: None,
            results: Vec::new(),
            interrupted: None,
            finished: false,
        }
    }

    fn write(&self) -> Result<()> {
        let Some(info) = &self.info else {
            return Ok(());
        };
        write(
            &self.path,
            info,
            &self.results,
            self.finished,
            self.interrupted.as_deref(),
        )
    }
}

/// The summary.json document. Top-level keys: `aviary` (version), `run`, `finished`,
/// `interrupted`, `counts` (`passed` includes `flaky`), `tests`.
pub fn document(
    info: &RunInfo,
    results: &[TestResult],
    finished: bool,
    interrupted: Option<&str>,
) -> serde_json::Value {
    let count = |f: fn(&TestResult) -> bool| results.iter().filter(|r| f(r)).count();
    json!({
        "aviary": env!("CARGO_PKG_VERSION"),
        "run": info,
        "finished": finished,
        "interrupted": interrupted,
        "counts": {
            "passed": count(|r| matches!(r.outcome, Outcome::Passed)),
            "failed": count(|r| matches!(r.outcome, Outcome::Failed { .. })),
            "errors": count(|r| matches!(r.outcome, Outcome::Error { .. })),
            "flaky": count(|r| r.flaky),
        },
        "tests": results,
    })
}

/// Writes summary.json atomically (a temporary file renamed over it).
pub fn write(
    path: &Path,
    info: &RunInfo,
    results: &[TestResult],
    finished: bool,
    interrupted: Option<&str>,
) -> Result<()> {
    let doc = document(info, results, finished, interrupted);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl Reporter for SummaryReporter {
    fn on_event(&mut self, ev: &Event) -> Result<()> {
        match ev {
            Event::RunStarted { info, .. } => self.info = Some(info.clone()),
            Event::TestFinished { result } => self.results.push(result.clone()),
            Event::RunFinished { interrupted } => {
                self.interrupted = interrupted.clone();
                self.finished = true;
            }
            Event::TestStarted { .. } | Event::TestRetrying { .. } => return Ok(()),
        }
        self.write()
    }
}
