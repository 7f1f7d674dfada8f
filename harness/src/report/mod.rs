//! Reporters subscribe to run events: terminal progress, JUnit, JSON summary, HTML page, and
//! each test's steps.log.

pub mod html;
pub mod html_file;
pub mod junit;
pub mod merge;
pub mod progress;
pub mod read;
pub mod steps_log;
pub mod summary;
pub mod text;

use crate::runner::result::{RunInfo, TestResult};

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        info: RunInfo,
        total: usize,
    },
    TestStarted {
        suite: String,
        name: String,
    },
    /// An attempt that did not pass; attempt `attempt` (1 = the first retry) starts now.
    TestRetrying {
        failed: TestResult,
        attempt: u32,
    },
    TestFinished {
        result: TestResult,
    },
    /// Something a running test did (its steps.log, live).
    Step {
        test: crate::suite::TestId,
        /// The attempt's folder.
        dir: std::path::PathBuf,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u128,
        step: steps_log::StepEvent,
    },
    /// The run is over: how it ended (completed, stopped early by a rule, or interrupted).
    RunFinished {
        end: crate::runner::RunEnd,
    },
}

pub trait Reporter: Send {
    fn on_event(&mut self, ev: &Event) -> anyhow::Result<()>;
}

/// Sends each event to every reporter; the first failing sink's error is returned.
pub struct FanOut(pub Vec<Box<dyn Reporter>>);

impl FanOut {
    pub fn emit(&mut self, ev: &Event) -> anyhow::Result<()> {
        let mut first = None;
        for r in &mut self.0 {
            if let Err(e) = r.on_event(ev) {
                tracing::error!("reporter failed: {e:#}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
