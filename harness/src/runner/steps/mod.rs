//! Executing one step against the test's machines: `run_step` hands each verb to its handler,
//! one file per verb (`run.rs`, `wait_for.rs`, …); `common.rs` holds what they share, and
//! `slots.rs` what the A/B verbs (update, fault, expect) read of the guest's slots.

mod common;
mod copy;
mod expect;
mod fault;
mod reboot;
mod run;
mod slots;
mod update;
mod wait_for;

use super::job::Job;
use super::lookup::Values;
use super::trail::Trail;
use super::Shared;
use crate::failure::{Blame, Failure};
use crate::images::manifest::Manifest;
use crate::images::ResolvedImage;
use crate::machine::Machine;
use crate::report::steps_log::StepEnd;
use crate::suite::{Step, StepKind};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub use expect::parse_os_release;
pub use slots::{booted_slot, Booted};

pub struct StepEnv<'a> {
    pub machines: &'a mut BTreeMap<String, Box<dyn Machine>>,
    pub images: &'a BTreeMap<String, ResolvedImage>,
    /// Releases that `update` steps may offer, by channel.
    pub releases: &'a BTreeMap<String, ResolvedImage>,
    /// One update server per machine that takes updates.
    pub servers: &'a BTreeMap<String, crate::update_server::UpdateServer>,
    pub manifest: &'a Manifest,
    pub test_dir: &'a Path,
    pub run_timeout: Duration,
    pub wait_timeout: Duration,
    pub log: &'a mut super::trail::Log,
    /// Every `update` step's offer and what became of it, for the reports (the gate's evidence).
    pub updates: &'a mut Vec<super::result::UpdateRecord>,
}

impl<'a> StepEnv<'a> {
    /// What `{{ … }}` placeholders expand to in a step on machine `on` (see `common::fill`).
    fn values(&self, on: &str) -> Values<'a> {
        Values {
            image: self.images.get(on).expect("validated machine"),
            manifest: self.manifest,
        }
    }
}

/// Runs one step: one line per verb.
pub async fn run_step(step: &Step, env: &mut StepEnv<'_>) -> Result<(), Failure> {
    let on = step.on.as_str();
    match &step.kind {
        StepKind::Run(x) => run::handle(env, on, x).await,
        StepKind::WaitFor(x) => wait_for::handle(env, on, x).await,
        StepKind::Reboot => reboot::handle(env, on).await,
        StepKind::Copy(x) => copy::handle(env, on, x).await,
        StepKind::Expect(x) => expect::handle(env, on, x).await,
        StepKind::Update(x) => update::handle(env, on, x).await,
        StepKind::Fault(x) => fault::handle(env, on, *x).await,
    }
}

/// Runs the job's steps `range` (0-based; the setup's come first) on `machines`, with artifacts
/// in `dir`, each logged with its number, verb and place; stops at the first that fails.
pub async fn run_steps(
    job: &Job,
    range: std::ops::Range<usize>,
    machines: &mut BTreeMap<String, Box<dyn Machine>>,
    servers: &BTreeMap<String, crate::update_server::UpdateServer>,
    shared: &Shared,
    dir: &std::path::Path,
    trail: &mut Trail,
) -> Result<(), Failure> {
    let test = &job.test;
    let mut env = StepEnv {
        machines,
        images: &job.images,
        releases: &job.releases,
        servers,
        manifest: &shared.manifest,
        test_dir: dir,
        run_timeout: shared.scaled(Duration::from_secs(60)),
        wait_timeout: shared.scaled(Duration::from_secs(120)),
        log: &mut trail.log,
        updates: &mut trail.updates,
    };
    let env = &mut env;
    for (i, step) in test
        .steps
        .iter()
        .enumerate()
        .take(range.end)
        .skip(range.start)
    {
        let t = Instant::now();
        env.log.started(
            i + 1,
            step.kind.verb(),
            step.loc.to_string(),
            i < test.setup,
        );
        let r = run_step(step, env).await;
        let end = match &r {
            Ok(()) => StepEnd::Passed,
            Err(f) if f.blame == Blame::Candidate => StepEnd::Failed,
            Err(_) => StepEnd::Error,
        };
        env.log.finished(i + 1, end, t.elapsed().as_secs_f64());
        r.map_err(|f| {
            f.at(&format!(
                "step {} ({}, {})",
                i + 1,
                step.kind.verb(),
                step.loc
            ))
        })?;
    }
    Ok(())
}
