//! What a run produces: per-test outcomes and the facts every report carries. Everything here
//! is written to summary.json and read back from it (`report::read`), so it derives both.

use crate::failure::{Blame, Cause, Failure};
use crate::images::ResolvedImage;
use crate::machine::accel::AccelDecision;
use crate::machine::BootRecord;
use crate::shard::Shard;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// The candidate misbehaved: an assertion, a check, or a guest that did not boot.
    Failed {
        message: String,
        detail: String,
        /// What went wrong (`failure::Cause`); absent in reports written before it was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
    },
    /// The harness could not do its job (host-side failure, interruption): not a verdict.
    Error {
        message: String,
        detail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
    },
    /// Not run: a step has no meaning for a machine's OS stack, as its profile says (the
    /// message names the profile, the step and why). Never a pass.
    Skipped {
        message: String,
    },
}

/// The one place a failure becomes a test's result: the candidate's fault fails the test,
/// the harness's errs it.
impl From<Failure> for Outcome {
    fn from(f: Failure) -> Outcome {
        let (message, detail, cause) = (f.message, f.detail, Some(f.cause));
        match f.blame {
            Blame::Candidate => Outcome::Failed {
                message,
                detail,
                cause,
            },
            Blame::Harness => Outcome::Error {
                message,
                detail,
                cause,
            },
        }
    }
}

impl Outcome {
    /// The one-line message of a test that did not pass; empty for a pass.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Passed => "",
            Outcome::Failed { message, .. }
            | Outcome::Error { message, .. }
            | Outcome::Skipped { message } => message,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "PASS",
            Outcome::Failed { .. } => "FAIL",
            Outcome::Error { .. } => "ERROR",
            Outcome::Skipped { .. } => "SKIP",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineReport {
    pub name: String,
    pub image: String,
    pub version: String,
    pub sha256: String,
    pub boots: Vec<BootRecord>,
    /// From QEMU's start to the first command's answer over SSH.
    pub first_command_s: Option<f64>,
    /// Wall-clock time (Unix epoch, ms) the first command was answered: for the benchmark.
    pub first_command_at_ms: Option<u128>,
    pub ssh: Option<String>,
}

/// How an `update` step ended for the release it offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOutcome {
    /// The agent wrote the release into the inactive slot and asked for a reboot.
    Installed,
    /// The agent refused the payload (as the step expected, or not).
    Refused,
    /// The power was cut while the slot was written (`cut_power: true`).
    PowerCut,
    /// The agent failed for another reason.
    Failed,
}

/// One `update` step: which release it offered a machine, and what became of it. The gate
/// counts a test toward a release it updated into only from these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub machine: String,
    /// The channel the step named (`to:`).
    pub channel: String,
    pub version: String,
    /// The release's disk digest (what a machine booting it would be recorded with).
    pub sha256: String,
    pub payload_sha256: String,
    pub outcome: UpdateOutcome,
    /// Made once by the shared setup this test started from (`setup:`), not by the test itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_setup: bool,
    /// The agent's download (with its digest check) and slot write, as it reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub suite: String,
    pub name: String,
    /// The outcome of the last attempt.
    pub outcome: Outcome,
    /// Of the last attempt; each rerun carries its own.
    #[serde(with = "secs")]
    pub duration: Duration,
    pub artifacts: PathBuf,
    pub machines: Vec<MachineReport>,
    /// The step log: what ran and what came back.
    pub log: String,
    /// Earlier attempts that did not pass (`--retries`), oldest first.
    #[serde(default)]
    pub reruns: Vec<Rerun>,
    /// Passed after at least one failed attempt.
    #[serde(default)]
    pub flaky: bool,
    /// Every `update` step of the last attempt (and of the setup it started from), in order.
    #[serde(default)]
    pub updates: Vec<UpdateRecord>,
}

impl TestResult {
    pub fn id(&self) -> crate::suite::TestId {
        crate::suite::TestId::new(&self.suite, &self.name)
    }
}

/// A run's results counted once, for summary.json's `counts`, the closing line and the exit
/// code. `passed` includes the flaky ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub flaky: usize,
    pub skipped: usize,
}

impl RunStats {
    pub fn of(results: &[TestResult]) -> RunStats {
        let mut s = RunStats::default();
        for r in results {
            s.add(r);
        }
        s
    }

    /// Counts one final result.
    pub fn add(&mut self, r: &TestResult) {
        match r.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Error { .. } => self.errors += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
        }
        self.flaky += usize::from(r.flaky);
    }
}

impl std::fmt::Display for RunStats {
    /// `3 passed (1 flaky), 1 failed, 0 errors`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed", self.passed)?;
        if self.flaky > 0 {
            write!(f, " ({} flaky)", self.flaky)?;
        }
        write!(f, ", {} failed, {} errors", self.failed, self.errors)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// One earlier attempt of a retried test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rerun {
    /// Failed or Error (a passing attempt is never retried).
    pub outcome: Outcome,
    #[serde(with = "secs")]
    pub duration: Duration,
    pub artifacts: PathBuf,
}

/// Durations as seconds (f64, millisecond precision) in reports.
pub mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)
    }
}

/// What summary.json records of each test's evidence: 2 since the machines' images and every
/// `update` step's release are recorded per test (the gate binds evidence to a release with
/// them); 0 (absent) in reports of older versions, which the gate refuses.
pub const EVIDENCE_FORMAT: u32 = 2;

/// Facts about the whole run, carried into every report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// `EVIDENCE_FORMAT` of the Aviary that wrote the run; 0 when absent.
    #[serde(default)]
    pub evidence: u32,
    pub run_id: String,
    pub started: String,
    pub dir: PathBuf,
    pub seed: u64,
    pub accel: AccelDecision,
    pub images: Vec<ResolvedImage>,
    pub suites: Vec<String>,
    /// `--shard i/n`, written as "i/n"; null for the whole plan.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// `--retries N`: how many times a test that did not pass was run again at most.
    #[serde(default)]
    pub retries: u32,
    /// For a run made by `aviary report merge`: the runs it was made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<SourceRun>,
    /// The scheduler's limits (`-j`); absent in reports of older runs and merged runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<super::schedule::Budget>,
}

/// A run that a merged run was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRun {
    pub run_id: String,
    pub dir: PathBuf,
    pub shard: Option<Shard>,
    pub seed: u64,
}
