//! summary.json: the run's facts and every test's outcome, for machines to read.

use super::{Event, Reporter};
use crate::runner::result::{RunInfo, RunStats, TestResult};
use crate::runner::RunEnd;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What the run's events said so far: its facts, the finished tests and how it ended. The
/// summary and HTML reporters each keep one and render it.
#[derive(Debug, Default)]
pub struct RunRecord {
    pub info: Option<RunInfo>,
    pub results: Vec<TestResult>,
    pub interrupted: Option<String>,
    pub stopped: Option<String>,
    pub finished: bool,
}

impl RunRecord {
    /// Takes in an event; true when the record changed.
    pub fn apply(&mut self, ev: &Event) -> bool {
        match ev {
            Event::RunStarted { info, .. } => self.info = Some(info.clone()),
            Event::TestFinished { result } => self.results.push(result.clone()),
            Event::RunFinished { end } => {
                (self.interrupted, self.stopped) = match end {
                    RunEnd::Interrupted(why) => (Some(why.clone()), None),
                    RunEnd::Stopped(s) => (None, Some(s.to_string())),
                    RunEnd::Completed => (None, None),
                };
                self.finished = true;
            }
            Event::TestStarted { .. } | Event::TestRetrying { .. } | Event::Step { .. } => {
                return false
            }
        }
        true
    }

    fn end(&self) -> End<'_> {
        End {
            finished: self.finished,
            interrupted: self.interrupted.as_deref(),
            stopped: self.stopped.as_deref(),
        }
    }

    /// The summary.json document, once the run has started.
    pub fn document(&self) -> Option<serde_json::Value> {
        Some(document(self.info.as_ref()?, &self.results, &self.end()))
    }
}

pub struct SummaryReporter {
    path: PathBuf,
    record: RunRecord,
}

impl SummaryReporter {
    pub fn new(path: PathBuf) -> Self {
        SummaryReporter {
            path,
            record: RunRecord::default(),
        }
    }
}

/// How a run ended, as summary.json records it.
#[derive(Debug, Clone, Copy, Default)]
pub struct End<'a> {
    /// The run wrote its last event (else the reports were written mid-run).
    pub finished: bool,
    /// The signal that interrupted it.
    pub interrupted: Option<&'a str>,
    /// Why it ended before its last test (`runner::stop`).
    pub stopped: Option<&'a str>,
}

/// The summary.json document. Top-level keys: `aviary` (version), `run`, `finished`,
/// `interrupted`, `stopped` (only when the run stopped early), `counts` (`passed` includes
/// `flaky`), `tests`.
pub fn document(info: &RunInfo, results: &[TestResult], end: &End) -> serde_json::Value {
    let mut doc = json!({
        "aviary": env!("CARGO_PKG_VERSION"),
        "run": info,
        "finished": end.finished,
        "interrupted": end.interrupted,
        "counts": RunStats::of(results),
        "tests": results,
    });
    if let Some(why) = end.stopped {
        doc["stopped"] = json!(why);
    }
    doc
}

/// Writes summary.json atomically (a temporary file renamed over it).
pub fn write(path: &Path, info: &RunInfo, results: &[TestResult], end: &End) -> Result<()> {
    let doc = document(info, results, end);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl Reporter for SummaryReporter {
    fn on_event(&mut self, ev: &Event) -> Result<()> {
        if !self.record.apply(ev) {
            return Ok(());
        }
        let Some(info) = &self.record.info else {
            return Ok(());
        };
        write(&self.path, info, &self.record.results, &self.record.end())
    }
}
