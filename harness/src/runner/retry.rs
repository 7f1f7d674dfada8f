//! `--retries N`: which attempts are run again, where their artifacts go, and how the
//! attempts of one test fold into its one result.
//!
//! Policy: an attempt that did not pass — Failed (the candidate misbehaved) or Error (the harness
//! could not do its job, e.g. QEMU or the update server did not start) — is run again, each time
//! on fresh machines, until one passes or N more attempts were made. Errors are retried too
//! because a host-side hiccup says nothing about the candidate and a fresh attempt may still get
//! a verdict; the rerun keeps its kind, so reports tell `flakyError` from `flakyFailure`.
//! Interruption (SIGINT/SIGTERM) is never retried: the runner stops scheduling and reports the
//! running and pending tests as errors, together with the attempts they already made.

use super::job::Job;
use super::result::{Outcome, Rerun, TestResult};
use std::path::PathBuf;

/// Whether an attempt (0 = the first run) that ended with `outcome` gets another one.
pub fn should_retry(outcome: &Outcome, attempt: u32, retries: u32) -> bool {
    !matches!(outcome, Outcome::Passed | Outcome::Skipped { .. }) && attempt < retries
}

/// Folds the earlier attempts (oldest first, none passed) and the last one into the test's
/// result: the last attempt's outcome, duration, machines and log, the earlier ones as reruns,
/// and `flaky` when the last attempt passed after earlier ones did not.
pub fn fold(earlier: Vec<TestResult>, last: TestResult) -> TestResult {
    let mut reruns: Vec<Rerun> = earlier
        .into_iter()
        .flat_map(|r| {
            // An earlier attempt's own reruns (none in practice) come first.
            let own = r.reruns;
            own.into_iter().chain(std::iter::once(Rerun {
                outcome: r.outcome,
                duration: r.duration,
                artifacts: r.artifacts,
            }))
        })
        .collect();
    reruns.retain(|r| r.outcome != Outcome::Passed);
    let flaky = last.outcome == Outcome::Passed && !reruns.is_empty();
    TestResult {
        reruns,
        flaky,
        ..last
    }
}

/// Attempt `attempt` (1 = the first retry) gets its own folder, `<test dir>/retry_<attempt>/`
/// (an underscore, which machine names cannot contain, so it never meets a machine's folder).
pub fn attempt_dir(first: &Job, attempt: u32) -> PathBuf {
    first.dir.join(format!("retry_{attempt}"))
}

/// The job for a retry: its own artifacts folder, with each machine's validated Ignition config
/// copied there as the first attempt had it.
pub fn attempt_job(first: &Job, attempt: u32) -> std::io::Result<Job> {
    let mut job = first.clone();
    job.attempt = attempt;
    job.dir = attempt_dir(first, attempt);
    crate::private::dir(&job.dir)?;
    for (machine, path) in job.ignition.iter_mut() {
        let mdir = job.dir.join(machine);
        crate::private::dir(&mdir)?;
        let to = mdir.join("config.ign");
        crate::private::copy(path, &to)?;
        *path = to;
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn attempt(outcome: Outcome, secs: u64, dir: &str) -> TestResult {
        TestResult {
            suite: "s".into(),
            name: "t".into(),
            outcome,
            duration: Duration::from_secs(secs),
            artifacts: dir.into(),
            machines: vec![],
            log: format!("log of {dir}"),
            reruns: vec![],
            flaky: false,
            updates: vec![],
        }
    }

    fn failed(m: &str) -> Outcome {
        Outcome::Failed {
            message: m.into(),
            detail: "d".into(),
            cause: None,
        }
    }

    fn error(m: &str) -> Outcome {
        Outcome::Error {
            message: m.into(),
            detail: "d".into(),
            cause: None,
        }
    }

    #[test]
    fn retries_what_did_not_pass_while_attempts_remain() {
        assert!(
            !should_retry(&failed("x"), 0, 0),
            "--retries 0 never retries"
        );
        assert!(should_retry(&failed("x"), 0, 2));
        assert!(should_retry(&error("qemu did not start"), 1, 2));
        assert!(
            !should_retry(&failed("x"), 2, 2),
            "the last attempt is final"
        );
        assert!(!should_retry(&Outcome::Passed, 0, 2));
    }

    #[test]
    fn a_first_pass_is_not_flaky() {
        let r = fold(vec![], attempt(Outcome::Passed, 3, "a"));
        assert!(!r.flaky);
        assert!(r.reruns.is_empty());
    }

    #[test]
    fn a_pass_after_failures_is_flaky_with_the_failures_as_reruns() {
        let r = fold(
            vec![
                attempt(failed("one"), 10, "a"),
                attempt(error("two"), 11, "a/retry_1"),
            ],
            attempt(Outcome::Passed, 12, "a/retry_2"),
        );
        assert!(r.flaky);
        assert_eq!(r.outcome, Outcome::Passed);
        assert_eq!(r.duration, Duration::from_secs(12), "the last attempt's");
        assert_eq!(r.artifacts, PathBuf::from("a/retry_2"));
        assert_eq!(r.log, "log of a/retry_2");
        assert_eq!(
            r.reruns,
            vec![
                Rerun {
                    outcome: failed("one"),
                    duration: Duration::from_secs(10),
                    artifacts: "a".into()
                },
                Rerun {
                    outcome: error("two"),
                    duration: Duration::from_secs(11),
                    artifacts: "a/retry_1".into()
                },
            ]
        );
    }

    #[test]
    fn failing_every_attempt_is_a_failure_with_reruns() {
        let r = fold(
            vec![attempt(failed("one"), 1, "a")],
            attempt(failed("two"), 2, "a/retry_1"),
        );
        assert!(!r.flaky);
        assert_eq!(r.outcome, failed("two"));
        assert_eq!(r.reruns.len(), 1);
        assert_eq!(r.reruns[0].outcome, failed("one"));
    }

    fn a_test() -> crate::suite::Test {
        let text = "suite: suite\ntests:\n  - name: test\n    machines: { node: { image: stable } }\n    steps:\n      - reboot: node\n";
        let ctx = crate::suite::LoadContext {
            channels: vec!["stable".into()],
        };
        let s = crate::suite::load_str(std::path::Path::new("s.yaml"), text, &ctx).unwrap();
        s.tests.into_iter().next().unwrap()
    }

    #[test]
    fn a_retry_gets_its_own_folder_with_the_ignition_configs() {
        let d = tempfile::tempdir().unwrap();
        let first_dir = d.path().join("suite/test");
        std::fs::create_dir_all(first_dir.join("node")).unwrap();
        let ign = first_dir.join("node/config.ign");
        std::fs::write(&ign, "{\"ignition\":{}}").unwrap();
        let first = Job {
            test: a_test(),
            dir: first_dir.clone(),
            images: Default::default(),
            ignition: [("node".to_string(), ign)].into(),
            releases: Default::default(),
            attempt: 0,
            excerpt: String::new(),
            skip: None,
            seeds: Default::default(),
        };
        let j = attempt_job(&first, 2).unwrap();
        assert_eq!(j.attempt, 2);
        assert_eq!(j.dir, first_dir.join("retry_2"));
        let copied = &j.ignition["node"];
        assert_eq!(copied, &first_dir.join("retry_2/node/config.ign"));
        assert_eq!(
            std::fs::read_to_string(copied).unwrap(),
            "{\"ignition\":{}}"
        );
    }
}
