//! A test's steps as they happen: the step events the runner sends while a test runs, their
//! text (`render`, the one place it is written), and the reporter that appends them to the
//! attempt's `steps.log` live, so that a run killed in the middle still says how far each
//! test got.

use super::{Event, Reporter};
use std::io::Write;
use std::path::Path;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    Passed,
    /// The candidate failed it.
    Failed,
    /// The harness failed it.
    Error,
}

/// One thing a running test did.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEvent {
    Started {
        /// 1-based, counting the setup's steps first.
        index: usize,
        verb: &'static str,
        /// `FILE:LINE` of the step in its suite.
        loc: String,
        setup: bool,
    },
    Finished {
        index: usize,
        end: StepEnd,
        secs: f64,
    },
    /// A line of what happened: a command and its output, a machine up, a note.
    Note(String),
}

/// The event's lines in steps.log, each ending in a newline.
pub fn render(ev: &StepEvent) -> String {
    match ev {
        StepEvent::Started {
            index,
            verb,
            loc,
            setup,
        } => format!(
            "--- {}step {index} ({verb} at {loc})\n",
            if *setup { "setup " } else { "" }
        ),
        StepEvent::Finished { secs, .. } => format!("    ({secs:.1}s)\n"),
        StepEvent::Note(line) => format!("{line}\n"),
    }
}

/// Appends every step event to `steps.log` in the attempt's folder, as it arrives.
#[derive(Default)]
pub struct StepsLogReporter;

impl StepsLogReporter {
    pub fn new() -> StepsLogReporter {
        StepsLogReporter
    }
}

fn append(dir: &Path, text: &str) -> anyhow::Result<()> {
    let path = dir.join("steps.log");
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

impl Reporter for StepsLogReporter {
    fn on_event(&mut self, ev: &Event) -> anyhow::Result<()> {
        match ev {
            Event::Step { dir, step, .. } => append(dir, &render(step)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::TestId;

    #[test]
    fn the_log_is_written_as_the_steps_happen() {
        let d = tempfile::tempdir().unwrap();
        let mut r = StepsLogReporter::new();
        let step = |step| Event::Step {
            test: TestId::new("s", "t"),
            dir: d.path().to_path_buf(),
            at_ms: 0,
            step,
        };
        let log = || std::fs::read_to_string(d.path().join("steps.log")).unwrap();
        r.on_event(&step(StepEvent::Note("node up: SSH banner 20.1s".into())))
            .unwrap();
        r.on_event(&step(StepEvent::Started {
            index: 2,
            verb: "run",
            loc: "s.yaml:9".into(),
            setup: true,
        }))
        .unwrap();
        assert_eq!(
            log(),
            "node up: SSH banner 20.1s\n--- setup step 2 (run at s.yaml:9)\n"
        );
        r.on_event(&step(StepEvent::Finished {
            index: 2,
            end: StepEnd::Failed,
            secs: 1.26,
        }))
        .unwrap();
        assert!(
            log().ends_with("(run at s.yaml:9)\n    (1.3s)\n"),
            "{}",
            log()
        );
    }
}
