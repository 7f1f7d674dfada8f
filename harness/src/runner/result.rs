//! What a run produces: per-test outcomes and the facts every report carries.

use crate::images::ResolvedImage;
use crate::machine::accel::AccelDecision;
use crate::machine::BootRecord;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// The candidate misbehaved: an assertion, a check, or a guest that did not boot.
    Failed {
        message: String,
        detail: String,
    },
    /// The harness could not do its job (host-side failure, interruption): not a verdict.
    Error {
        message: String,
        detail: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "PASS",
            Outcome::Failed { .. } => "FAIL",
            Outcome::Error { .. } => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub suite: String,
    pub name: String,
    pub outcome: Outcome,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub artifacts: PathBuf,
    pub machines: Vec<MachineReport>,
    /// The step log: what ran and what came back.
    pub log: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Facts about the whole run, carried into every report.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub started: String,
    pub dir: PathBuf,
    pub seed: u64,
    pub accel: AccelDecision,
    pub images: Vec<ResolvedImage>,
    pub suites: Vec<String>,
}
