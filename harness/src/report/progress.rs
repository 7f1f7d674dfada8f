//! Terminal progress: a bar while tests run, one line per finished test (nextest style):
//! `PASS`, `FAIL`, `ERROR`, `FLAKY 2/3` (passed on attempt 2 of at most 3), and a `TRY 2/3`
//! line with the failed attempt's time when a retry starts.

use super::steps_log::StepEvent;
use super::{Event, Reporter};
use crate::runner::result::{Outcome, RunStats};
use crate::runner::RunEnd;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct ProgressReporter {
    bar: ProgressBar,
    /// The running tests, each with the step it is at.
    running: Vec<(String, Option<String>)>,
    /// Attempts a test gets at most: 1 + `--retries`.
    attempts: u32,
    /// The final results so far, for the closing line.
    stats: RunStats,
    /// The run's junit.xml, which the closing line names.
    junit: std::path::PathBuf,
}

impl ProgressReporter {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos}/{len} {wide_msg}")
                .expect("static template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        ProgressReporter {
            bar,
            running: Vec::new(),
            attempts: 1,
            stats: RunStats::default(),
            junit: std::path::PathBuf::new(),
        }
    }

    /// Prints above the bar, or plainly when stderr is no terminal (CI logs).
    fn line(&self, text: String) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    fn refresh(&self) {
        let now: Vec<String> = self
            .running
            .iter()
            .map(|(id, step)| match step {
                Some(s) => format!("{id} {s}"),
                None => id.clone(),
            })
            .collect();
        self.bar.set_message(now.join(", "));
    }
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for ProgressReporter {
    fn on_event(&mut self, ev: &Event) -> anyhow::Result<()> {
        match ev {
            Event::RunStarted { info, total } => {
                self.bar.set_length(*total as u64);
                self.attempts = info.retries + 1;
                self.junit = info.dir.join("junit.xml");
                let schedule = info
                    .schedule
                    .map(|b| format!(", {}", b.describe()))
                    .unwrap_or_default();
                self.line(format!(
                    "aviary: run {} — {} test(s), accelerator {} ({}; deadlines ×{:.2}){schedule}, reports in {}",
                    info.run_id,
                    total,
                    info.accel.accel,
                    info.accel.reason,
                    info.accel.timeout_scale,
                    info.dir.display()
                ));
            }
            Event::TestStarted { suite, name } => {
                self.running
                    .push((crate::suite::TestId::new(suite, name).into(), None));
                self.refresh();
            }
            Event::TestFinished { result } => {
                self.stats.add(result);
                let id: String = result.id().into();
                self.running.retain(|(r, _)| *r != id);
                self.bar.inc(1);
                self.refresh();
                let label = if result.flaky {
                    format!("FLAKY {}/{}", result.reruns.len() + 1, self.attempts)
                } else {
                    result.outcome.label().to_string()
                };
                let mut line = format!("{label:>7} [{:>7.1}s] {id}", result.duration.as_secs_f64());
                if let Outcome::Skipped { message } = &result.outcome {
                    line.push_str(&format!("\n          {message}"));
                }
                if let Outcome::Failed { message, .. } | Outcome::Error { message, .. } =
                    &result.outcome
                {
                    line.push_str(&format!(
                        "\n          {message}\n          logs: {}",
                        result.artifacts.display()
                    ));
                }
                if !result.reruns.is_empty() && !result.flaky {
                    line.push_str(&format!(
                        "\n          (all {} attempts failed)",
                        result.reruns.len() + 1
                    ));
                }
                self.line(line);
            }
            Event::TestRetrying { failed, attempt } => {
                let id = failed.id();
                let mut line = format!(
                    "{:>7} [{:>7.1}s] {id}",
                    format!("TRY {}/{}", attempt + 1, self.attempts),
                    failed.duration.as_secs_f64()
                );
                if let Outcome::Failed { message, .. } | Outcome::Error { message, .. } =
                    &failed.outcome
                {
                    line.push_str(&format!(
                        "\n          attempt {} {}: {message}\n          logs: {}",
                        attempt,
                        failed.outcome.label(),
                        failed.artifacts.display()
                    ));
                }
                self.line(line);
            }
            Event::Step {
                test,
                step: StepEvent::Started { index, verb, .. },
                ..
            } => {
                if let Some(r) = self.running.iter_mut().find(|(r, _)| r == test.as_str()) {
                    r.1 = Some(format!("(step {index}: {verb})"));
                    self.refresh();
                }
            }
            Event::Step { .. } => {}
            Event::RunFinished { end } => {
                match end {
                    RunEnd::Interrupted(why) => self.line(format!("aviary: interrupted ({why})")),
                    RunEnd::Stopped(s) => self.line(format!("aviary: stopped early: {s}")),
                    RunEnd::Completed => {}
                }
                self.line(format!("aviary: {} — {}", self.stats, self.junit.display()));
                self.bar.finish_and_clear();
            }
        }
        Ok(())
    }
}
