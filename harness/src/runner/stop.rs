//! When a run ends before its last test: `--fail-fast` after the first failure, or a caller's
//! rule, such as the budget run of `aviary qualify` once a budget's hold is certain (no result
//! still to come could change the verdict, so waiting for them only delays it).

use super::result::{Outcome, TestResult};
use std::sync::Arc;

/// Given every final result so far, the reason to stop now, or None to go on.
pub type Rule = Arc<dyn Fn(&[TestResult]) -> Option<String> + Send + Sync>;

#[derive(Clone)]
pub struct Stop {
    pub when: Rule,
    /// Cancel the tests still running when the run stops (their results can no longer change
    /// anything), rather than let them finish. Cancelled tests, like the ones never started,
    /// are not in the reports; the run's summary says how many and why.
    pub cancel_running: bool,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("cancel_running", &self.cancel_running)
            .finish_non_exhaustive()
    }
}

impl Stop {
    /// `--fail-fast`: start no test after the first that failed; the running ones finish.
    pub fn fail_fast() -> Stop {
        Stop {
            when: Arc::new(|results: &[TestResult]| {
                results
                    .iter()
                    .find(|r| matches!(r.outcome, Outcome::Failed { .. }))
                    .map(|r| format!("--fail-fast: {} failed", r.id()))
            }),
            cancel_running: false,
        }
    }

    pub fn check(&self, results: &[TestResult]) -> Option<String> {
        (self.when)(results)
    }
}

/// How a run that stopped early ended: why, and what it left out of the reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stopped {
    pub reason: String,
    /// Tests never started.
    pub not_run: usize,
    /// Tests cancelled while running (`Stop::cancel_running`).
    pub cancelled: Vec<String>,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {} test(s) not started", self.reason, self.not_run)?;
        if !self.cancelled.is_empty() {
            write!(
                f,
                ", {} cancelled while running ({})",
                self.cancelled.len(),
                self.cancelled.join(", ")
            )?;
        }
        f.write_str("; they are not in the reports")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::read::tests::test as result;

    #[test]
    fn fail_fast_stops_on_a_failure_not_on_an_error_or_a_pass() {
        let stop = Stop::fail_fast();
        let pass = result("a", Outcome::Passed);
        let error = result(
            "b",
            Outcome::Error {
                message: "qemu gone".into(),
                detail: String::new(),
                cause: None,
            },
        );
        assert_eq!(stop.check(&[pass.clone(), error.clone()]), None);
        let failed = result(
            "c",
            Outcome::Failed {
                message: "exit 1".into(),
                detail: String::new(),
                cause: None,
            },
        );
        assert_eq!(
            stop.check(&[pass, failed, error]).as_deref(),
            Some("--fail-fast: s::c failed")
        );
        assert!(!stop.cancel_running);
    }

    #[test]
    fn a_stop_says_what_it_left_out() {
        let s = Stopped {
            reason: "boot_to_ssh: hold certain".into(),
            not_run: 2,
            cancelled: vec!["budget::boot-3-beta".into()],
        };
        assert_eq!(
            s.to_string(),
            "boot_to_ssh: hold certain; 2 test(s) not started, 1 cancelled while running (budget::boot-3-beta); they are not in the reports"
        );
    }
}
