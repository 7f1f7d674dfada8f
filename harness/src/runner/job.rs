//! A test ready to run, as the plan made it: its images resolved, its Ignition configs written
//! and validated, the releases its updates offer, and which attempt this is.

use crate::suite::{Test, TestId};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A test ready to run: its images resolved and Ignition configs written and validated.
#[derive(Debug, Clone)]
pub struct Job {
    pub test: Test,
    pub dir: PathBuf,
    /// Machine name → resolved image.
    pub images: BTreeMap<String, crate::images::ResolvedImage>,
    /// Machine name → validated Ignition config (machines provisioned by Ignition).
    pub ignition: BTreeMap<String, PathBuf>,
    /// Machine name → NoCloud seed disk (machines provisioned by cloud-init).
    pub seeds: BTreeMap<String, PathBuf>,
    /// Channel → release that `update` steps offer.
    pub releases: BTreeMap<String, crate::images::ResolvedImage>,
    /// 0 for the first run, k for the k-th retry (`--retries`).
    pub attempt: u32,
    /// The test's own lines of its suite file, for its repro bundle.
    pub excerpt: String,
    /// Why the test cannot run here: a step has no meaning for a machine's OS profile
    /// (`Plan::build`); it is reported skipped with this, no machine started.
    pub skip: Option<String>,
}

impl Job {
    pub fn id(&self) -> TestId {
        self.test.id()
    }
}
