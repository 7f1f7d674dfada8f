//! JUnit XML with quick-junit: one testsuite per suite, rewritten after every test so an
//! interrupted run still leaves a valid file.

use super::{Event, Reporter};
use crate::runner::result::{Outcome, RunInfo, TestResult};
use anyhow::Result;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::path::PathBuf;

pub struct JunitReporter {
    path: PathBuf,
    info: Option<RunInfo>,
    results: Vec<TestResult>,
}

impl JunitReporter {
    pub fn new(path: PathBuf) -> Self {
        JunitReporter {
            path,
            info: None,
            results: Vec::new(),
        }
    }

    fn write(&self) -> Result<()> {
        let Some(info) = &self.info else {
            return Ok(());
        };
        let xml = render(info, &self.results)?;
        let tmp = self.path.with_extension("xml.tmp");
        std::fs::write(&tmp, xml)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

impl Reporter for JunitReporter {
    fn on_event(&mut self, ev: &Event) -> Result<()> {
        match ev {
            Event::RunStarted { info, .. } => {
                self.info = Some(info.clone());
                self.write()
            }
            Event::TestFinished { result } => {
                self.results.push(result.clone());
                self.write()
            }
            Event::RunFinished { .. } => self.write(),
            Event::TestStarted { .. } => Ok(()),
        }
    }
}

/// Renders the whole report.
pub fn render(info: &RunInfo, results: &[TestResult]) -> Result<String> {
    let mut report = Report::new(format!("aviary-{}", info.run_id));
    let mut suites: Vec<String> = info.suites.clone();
    for r in results {
        if !suites.contains(&r.suite) {
            suites.push(r.suite.clone());
        }
    }
    let mut total = std::time::Duration::ZERO;
    for suite in suites {
        let mut ts = TestSuite::new(suite.clone());
        ts.add_property(Property::new("run_id", info.run_id.clone()));
        ts.add_property(Property::new("seed", info.seed.to_string()));
        ts.add_property(Property::new("accelerator", info.accel.accel.to_string()));
        ts.add_property(Property::new("accelerator.reason", info.accel.reason.clone()));
        ts.add_property(Property::new(
            "timeout_scale",
            format!("{:.2}", info.accel.timeout_scale),
        ));
        for img in &info.images {
            let p = format!("image.{}", img.name);
            ts.add_property(Property::new(format!("{p}.version"), img.version.clone()));
            ts.add_property(Property::new(
                format!("{p}.channel"),
                img.channel.clone().unwrap_or_default(),
            ));
            ts.add_property(Property::new(format!("{p}.digest"), format!("sha256:{}", img.sha256)));
            ts.add_property(Property::new(format!("{p}.kernel"), img.kernel_release.clone()));
        }
        let mut time = std::time::Duration::ZERO;
        for r in results.iter().filter(|r| r.suite == suite) {
            time += r.duration;
            let status = match &r.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed { message, detail } | Outcome::Error { message, detail } => {
                    let kind = if matches!(r.outcome, Outcome::Failed { .. }) {
                        NonSuccessKind::Failure
                    } else {
                        NonSuccessKind::Error
                    };
                    let mut s = TestCaseStatus::non_success(kind);
                    s.set_message(message.clone());
                    s.set_type(if kind == NonSuccessKind::Failure {
                        "failure"
                    } else {
                        "error"
                    });
                    s.set_description(format!(
                        "{detail}\n\nartifacts: {}",
                        r.artifacts.display()
                    ));
                    s
                }
            };
            let mut tc = TestCase::new(r.name.clone(), status);
            tc.set_classname(format!("{}.{}", "aviary", r.suite));
            tc.set_time(r.duration);
            tc.set_system_out(r.log.clone());
            ts.add_test_case(tc);
        }
        ts.set_time(time);
        total += time;
        report.add_test_suite(ts);
    }
    report.set_time(total);
    Ok(report.to_string()?)
}
