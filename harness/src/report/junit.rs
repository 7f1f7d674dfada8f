//! JUnit XML with quick-junit: one testsuite per suite, rewritten after every test so an
//! interrupted run still leaves a valid file.

use super::{Event, Reporter};
use crate::runner::result::{Outcome, Rerun, RunInfo, TestResult};
use anyhow::{Context, Result};
use quick_junit::{
    FlakyOrRerun, NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};
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
        std::fs::write(&tmp, xml).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
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
            Event::TestStarted { .. } | Event::TestRetrying { .. } | Event::Step { .. } => Ok(()),
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
        ts.add_property(Property::new(
            "accelerator.reason",
            info.accel.reason.clone(),
        ));
        ts.add_property(Property::new(
            "timeout_scale",
            format!("{:.2}", info.accel.timeout_scale),
        ));
        if let Some(shard) = info.shard {
            ts.add_property(Property::new("shard", shard.to_string()));
        }
        ts.add_property(Property::new("retries", info.retries.to_string()));
        if let Some(b) = &info.schedule {
            ts.add_property(Property::new("schedule", b.describe()));
        }
        if !info.merged_from.is_empty() {
            let runs: Vec<&str> = info.merged_from.iter().map(|r| r.run_id.as_str()).collect();
            ts.add_property(Property::new("merged_from", runs.join(" ")));
        }
        for img in &info.images {
            let p = format!("image.{}", img.name);
            ts.add_property(Property::new(format!("{p}.version"), img.version.clone()));
            ts.add_property(Property::new(
                format!("{p}.channel"),
                img.channel.clone().unwrap_or_default(),
            ));
            ts.add_property(Property::new(
                format!("{p}.digest"),
                format!("sha256:{}", img.sha256),
            ));
            ts.add_property(Property::new(
                format!("{p}.kernel"),
                img.kernel_release.clone(),
            ));
        }
        let mut time = std::time::Duration::ZERO;
        for r in results.iter().filter(|r| r.suite == suite) {
            time += r.duration;
            let mut status = match &r.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Skipped { message } => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(message.clone());
                    s
                }
                Outcome::Failed {
                    message,
                    detail,
                    cause,
                }
                | Outcome::Error {
                    message,
                    detail,
                    cause,
                } => {
                    let kind = if matches!(r.outcome, Outcome::Failed { .. }) {
                        NonSuccessKind::Failure
                    } else {
                        NonSuccessKind::Error
                    };
                    let mut s = TestCaseStatus::non_success(kind);
                    s.set_message(message.clone());
                    // The failure's cause (`boot:kernel`, `exit-status`, …) when known.
                    s.set_type(match cause {
                        Some(c) => c.to_string(),
                        None if kind == NonSuccessKind::Failure => "failure".into(),
                        None => "error".into(),
                    });
                    s.set_description(format!("{detail}\n\nartifacts: {}", r.artifacts.display()));
                    s
                }
            };
            // A success with reruns is written as <flakyFailure>/<flakyError>; a failure or
            // error with reruns as <rerunFailure>/<rerunError>.
            status.set_rerun_kind(FlakyOrRerun::Rerun);
            status.add_reruns(r.reruns.iter().enumerate().map(|(k, x)| rerun(k, x)));
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
    Ok(drop_root_skipped(&report.to_string()?))
}

/// One earlier attempt. Jenkins' junit-10.xsd requires `type` on rerun elements and allows no
/// `time`, so the attempt's time goes into the text with its artifacts folder.
fn rerun(k: usize, r: &Rerun) -> TestRerun {
    let (kind, ty, message, detail): (_, _, &str, &str) = match &r.outcome {
        Outcome::Failed {
            message, detail, ..
        } => (NonSuccessKind::Failure, "failure", message, detail),
        Outcome::Error {
            message, detail, ..
        } => (NonSuccessKind::Error, "error", message, detail),
        // Never recorded (a passing or skipped attempt is not retried).
        Outcome::Passed | Outcome::Skipped { .. } => {
            (NonSuccessKind::Failure, "passed", "passed", "")
        }
    };
    let mut t = TestRerun::new(kind);
    t.set_type(ty);
    t.set_message(message);
    t.set_description(format!(
        "attempt {} of this test, {:.1}s\n{detail}\n\nartifacts: {}",
        k + 1,
        r.duration.as_secs_f64(),
        r.artifacts.display()
    ));
    t
}

/// quick-junit always writes `skipped` on `<testsuites>`, which the Jenkins schema (junit-10.xsd)
/// does not allow there; it stays on each `<testsuite>`, where it is allowed.
fn drop_root_skipped(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml.to_string();
    };
    let end = start + xml[start..].find('>').unwrap_or(0);
    let tag = &xml[start..end];
    let re = regex::Regex::new(r#" skipped="\d+""#).expect("static regex");
    format!("{}{}{}", &xml[..start], re.replace(tag, ""), &xml[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::accel::{Accel, AccelDecision};
    use crate::runner::result::MachineReport;
    use std::path::Path;
    use std::time::Duration;

    fn info() -> RunInfo {
        RunInfo {
            evidence: crate::runner::result::EVIDENCE_FORMAT,
            run_id: "r1".into(),
            started: "2026-11-25T00:00:00Z".into(),
            dir: "/tmp/r1".into(),
            seed: 7,
            accel: AccelDecision {
                accel: Accel::Tcg,
                reason: "KVM probe hung".into(),
                kvm_probe: None,
                tcg_probe: None,
                timeout_scale: 1.0,
                host_key: "h".into(),
            },
            images: vec![],
            suites: vec!["provisioning".into(), "empty".into()],
            shard: Some("2/3".parse().unwrap()),
            retries: 2,
            schedule: None,
            merged_from: vec![],
        }
    }

    fn result(name: &str, outcome: Outcome) -> TestResult {
        TestResult {
            suite: "provisioning".into(),
            name: name.into(),
            outcome,
            duration: Duration::from_millis(12_345),
            artifacts: "/tmp/r1/provisioning/x".into(),
            machines: vec![MachineReport {
                name: "node".into(),
                image: "stable".into(),
                version: "1000.0.0".into(),
                sha256: "0".repeat(64),
                boots: vec![],
                first_command_s: Some(9.5),
                first_command_at_ms: None,
                ssh: None,
            }],
            log: "console said \u{1b}[0;31mFAILED\u{1b}[0m \u{7} <&> done".into(),
            reruns: vec![],
            flaky: false,
            updates: vec![],
        }
    }

    fn rerun(outcome: Outcome, dir: &str) -> Rerun {
        Rerun {
            outcome,
            duration: Duration::from_millis(4_200),
            artifacts: dir.into(),
        }
    }

    /// The XSD every junit.xml must satisfy; CI also has ../shared/schemas beside the checkout.
    pub fn schema() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schemas/jenkins-junit-10.xsd")
    }

    #[test]
    fn validates_against_the_jenkins_xsd_even_with_escape_codes() {
        let results = vec![
            result("passes", Outcome::Passed),
            result(
                "skips",
                Outcome::Skipped {
                    message:
                        "profile flatcar: update: no update_engine here (step at line 9 on node)"
                            .into(),
                },
            ),
            result(
                "fails",
                Outcome::Failed {
                    message: "expected `canary-1`, seen `\u{1b}[1mnode\u{1b}[0m`".into(),
                    detail: "stdout:\n\u{0}\u{1b}]0;title\u{7}".into(),
                    cause: None,
                },
            ),
            result(
                "errs",
                Outcome::Error {
                    message: "interrupted by SIGINT".into(),
                    detail: "interrupted".into(),
                    cause: None,
                },
            ),
            TestResult {
                flaky: true,
                reruns: vec![
                    rerun(
                        Outcome::Failed {
                            message: "expected \u{1b}[1m<slot B>\u{1b}[0m".into(),
                            detail: "seen A & \u{0}".into(),
                            cause: None,
                        },
                        "/tmp/r1/provisioning/flaky",
                    ),
                    rerun(
                        Outcome::Error {
                            message: "QEMU did not start".into(),
                            detail: "exit 1".into(),
                            cause: None,
                        },
                        "/tmp/r1/provisioning/flaky/retry_1",
                    ),
                ],
                ..result("flaky", Outcome::Passed)
            },
            TestResult {
                reruns: vec![rerun(
                    Outcome::Failed {
                        message: "first try".into(),
                        detail: "d".into(),
                        cause: None,
                    },
                    "/tmp/r1/provisioning/always",
                )],
                ..result(
                    "always-fails",
                    Outcome::Failed {
                        message: "second try".into(),
                        detail: "d".into(),
                        cause: None,
                    },
                )
            },
        ];
        let xml = render(&info(), &results).unwrap();
        let flaky_failure =
            regex::Regex::new(r#"<flakyFailure message="expected [^"]*" type="failure">"#).unwrap();
        assert!(flaky_failure.is_match(&xml), "{xml}");
        assert!(
            xml.contains("<flakyError message=\"QEMU did not start\" type=\"error\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<rerunFailure message=\"first try\" type=\"failure\">"),
            "{xml}"
        );
        assert!(
            xml.contains("artifacts: /tmp/r1/provisioning/flaky/retry_1"),
            "{xml}"
        );
        assert!(xml.contains("name=\"shard\" value=\"2/3\""), "{xml}");
        assert!(xml.contains("name=\"retries\" value=\"2\""), "{xml}");
        // The flaky test counts as a success; the one that failed every attempt as a failure.
        assert!(
            xml.contains("tests=\"6\" failures=\"2\" errors=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("<failure message="), "{xml}");
        // A test its profile skips is a JUnit skip with the reason.
        assert!(
            xml.contains("<skipped message=\"profile flatcar: update: no update_engine here"),
            "{xml}"
        );
        assert!(
            xml.contains("<error message=\"interrupted by SIGINT\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"accelerator\" value=\"tcg\""), "{xml}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("junit.xml");
        std::fs::write(&p, &xml).unwrap();
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(schema())
            .arg(&p)
            .output()
            .expect("xmllint is required (Debian package libxml2-utils)");
        assert!(
            out.status.success(),
            "{}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
