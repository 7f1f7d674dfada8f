//! summary.json: the run's facts and every test's outcome, for machines to read.

use super::{Event, Reporter};
use crate::runner::result::{Outcome, RunInfo, TestResult};
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;

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
        let count = |f: fn(&Outcome) -> bool| self.results.iter().filter(|r| f(&r.outcome)).count();
        let doc = json!({
            "aviary": env!("CARGO_PKG_VERSION"),
            "run": self.info,
            "finished": self.finished,
            "interrupted": self.interrupted,
            "counts": {
                "passed": count(|o| matches!(o, Outcome::Passed)),
                "failed": count(|o| matches!(o, Outcome::Failed { .. })),
                "errors": count(|o| matches!(o, Outcome::Error { .. })),
            },
            "tests": self.results,
        });
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&doc)?)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
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
            Event::TestStarted { .. } => return Ok(()),
        }
        self.write()
    }
}
