//! The runner owns time: it schedules jobs, scales deadlines to the accelerator, handles
//! SIGINT/SIGTERM, and emits events; it never formats output.

pub mod lookup;
pub mod repro;
pub mod result;
pub mod retry;
pub mod schedule;
pub mod snapshot;
pub mod steps;
pub mod template;
pub mod test;

use crate::images::manifest::Manifest;
use crate::machine::Machine;
use crate::report::{Event, FanOut};
use result::{Outcome, RunInfo, TestResult};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test::Job;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

/// What every test of a run shares.
pub struct Shared {
    pub info: RunInfo,
    pub manifest: Manifest,
    pub key: PathBuf,
    pub sock_dir: PathBuf,
    pub keep_on_failure: bool,
    /// Keep every test's machines up, passed or not (`aviary reproduce --keep`, `aviary spawn`).
    pub keep_all: bool,
    /// How many tests run at once (`-j`).
    pub budget: schedule::Budget,
    /// The manifest the run's channels come from (recorded in repro bundles).
    pub manifest_path: PathBuf,
    /// Machines left up by --keep-on-failure, shut down when the user interrupts.
    pub kept: Mutex<Vec<Machine>>,
    /// Boot-once snapshots of this run; None with `--cold`.
    pub snapshots: Option<snapshot::Cache>,
    /// Start no test after the first that failed (`--fail-fast`): the running ones finish,
    /// the others are not run and not reported.
    pub fail_fast: bool,
}

impl Shared {
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.info.accel.timeout_scale.max(1.0))
    }

    /// Boot deadline: generous under TCG, where a first boot with Ignition takes 20–50 s, and
    /// stretched by contention (`Budget::contention`): `vcpus` guest CPUs of one test (or the
    /// scheduler's whole vCPU budget) on fewer host cores boot proportionally slower (3 two-CPU nodes on 2 cores took 142–190 s
    /// to SSH here, against ~20 s for one alone), which the accelerator probe, timed on an idle
    /// host, does not see.
    pub fn boot_timeout(&self, vcpus: u32) -> Duration {
        let base = match self.info.accel.accel {
            crate::machine::accel::Accel::Kvm => 90,
            crate::machine::accel::Accel::Tcg => 240,
        };
        self.scaled(Duration::from_secs(base))
            .mul_f64(self.budget.contention(vcpus))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    Interrupted,
    /// `--fail-fast` stopped starting tests after a failure; `not_run` were never started.
    FailedFast {
        not_run: usize,
    },
}

/// `schedule::work` of a test: its steps, updates, reboots and machines that boot cold.
fn work(t: &crate::suite::Test) -> u32 {
    use crate::suite::StepKind;
    let count = |f: fn(&StepKind) -> bool| t.steps.iter().filter(|s| f(&s.kind)).count() as u32;
    let cold = if t.boot == crate::suite::BootMode::Cold {
        t.machines.len() as u32
    } else {
        0
    };
    schedule::work(
        t.steps.len() as u32,
        count(|k| matches!(k, StepKind::Update { .. })),
        count(|k| matches!(k, StepKind::Reboot)),
        cold,
    )
}

/// A test being run: its first job, when its current attempt started, and the attempts it already made.
struct Running {
    first: Job,
    started: Instant,
    attempt: u32,
    earlier: Vec<TestResult>,
}

/// Runs `jobs` as the scheduler's budget admits them (`shared.budget`), each retried as `retry` decides up to
/// `shared.info.retries` times (a retry takes the slot its failed attempt freed); returns every
/// result and how the run ended.
pub async fn run(
    jobs: Vec<Job>,
    shared: Arc<Shared>,
    sinks: &mut FanOut,
) -> anyhow::Result<(Vec<TestResult>, RunEnd)> {
    sinks.emit(&Event::RunStarted {
        info: shared.info.clone(),
        total: jobs.len(),
    })?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut set: JoinSet<TestResult> = JoinSet::new();
    let mut results = Vec::new();
    // A signal during setup (before these streams existed) was remembered: start nothing.
    let mut interrupted: Option<String> = crate::interrupt::early().map(String::from);
    let demand = |j: &Job| schedule::Demand {
        vcpus: j.test.machines.iter().map(|m| m.cpus).sum(),
        memory_mib: j
            .test
            .machines
            .iter()
            .map(|m| u64::from(m.memory_mib))
            .sum(),
    };
    let mut pending: std::collections::VecDeque<(Job, schedule::Waiting)> = jobs
        .into_iter()
        .map(|j| {
            let waiting = schedule::Waiting {
                demand: demand(&j),
                passed_over: 0,
                work: work(&j.test),
            };
            (j, waiting)
        })
        .collect();
    shared.budget.start_order(&mut pending);
    // The first failure, once `--fail-fast` stopped starting tests.
    let mut stopped: Option<String> = None;
    while interrupted.is_none() {
        while stopped.is_none() {
            let now: Vec<schedule::Demand> = running.values().map(|t| demand(&t.first)).collect();
            let Some(job) = shared.budget.take(&now, &mut pending) else {
                break;
            };
            sinks.emit(&Event::TestStarted {
                suite: job.test.suite.clone(),
                name: job.test.name.clone(),
            })?;
            running.insert(
                job.id(),
                Running {
                    first: job.clone(),
                    started: Instant::now(),
                    attempt: 0,
                    earlier: Vec::new(),
                },
            );
            set.spawn(test::run(job, shared.clone()));
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            done = set.join_next() => {
                match done {
                    Some(Ok(r)) => {
                        let id = format!("{}::{}", r.suite, r.name);
                        let Some(mut t) = running.remove(&id) else {
                            // Its slot went to a panicked task's report: record it as it is.
                            sinks.emit(&Event::TestFinished { result: r.clone() })?;
                            results.push(r);
                            continue;
                        };
                        let next = t.attempt + 1;
                        let retry = if retry::should_retry(&r.outcome, t.attempt, shared.info.retries) {
                            retry::attempt_job(&t.first, next)
                                .map_err(|e| tracing::error!("preparing retry {next} of {id}: {e}"))
                                .ok()
                        } else {
                            None
                        };
                        match retry {
                            Some(job) => {
                                sinks.emit(&Event::TestRetrying { failed: r.clone(), attempt: next })?;
                                t.earlier.push(r);
                                t.attempt = next;
                                t.started = Instant::now();
                                running.insert(id, t);
                                set.spawn(test::run(job, shared.clone()));
                            }
                            None => {
                                let r = retry::fold(t.earlier, r);
                                sinks.emit(&Event::TestFinished { result: r.clone() })?;
                                if shared.fail_fast && stopped.is_none() && matches!(r.outcome, Outcome::Failed { .. }) {
                                    stopped = Some(id);
                                }
                                results.push(r);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        // A panicking test task: report it against whichever test it was.
                        tracing::error!("test task failed: {e}");
                        if let Some(id) = running.keys().next().cloned() {
                            let t = running.remove(&id).expect("present");
                            let r = t.finish(format!("harness error: {e}"));
                            sinks.emit(&Event::TestFinished { result: r.clone() })?;
                            results.push(r);
                        }
                    }
                    None => break,
                }
            }
            _ = sigint.recv() => { interrupted = Some("SIGINT".into()); }
            _ = sigterm.recv() => { interrupted = Some("SIGTERM".into()); }
        }
        if interrupted.is_some() {
            break;
        }
    }
    let not_run = pending.len();
    if let Some(why) = &interrupted {
        // Dropping the tasks drops their machines, which kills every QEMU group.
        set.abort_all();
        while set.join_next().await.is_some() {}
        crate::machine::process::kill_all();
        for (_, t) in std::mem::take(&mut running) {
            let r = t.finish(format!("interrupted by {why} while running"));
            sinks.emit(&Event::TestFinished { result: r.clone() })?;
            results.push(r);
        }
        for (job, _) in pending {
            let r = error_result(
                &job,
                Instant::now(),
                format!("not run: the run was interrupted by {why}"),
            );
            sinks.emit(&Event::TestFinished { result: r.clone() })?;
            results.push(r);
        }
    }
    sinks.emit(&Event::RunFinished {
        interrupted: interrupted.clone(),
    })?;
    let end = match (&interrupted, &stopped) {
        (Some(_), _) => RunEnd::Interrupted,
        (None, Some(_)) => RunEnd::FailedFast { not_run },
        (None, None) => RunEnd::Completed,
    };
    Ok((results, end))
}

impl Running {
    /// Ends the test with a harness error, keeping the attempts it already made.
    fn finish(self, message: String) -> TestResult {
        let mut job = self.first;
        if self.attempt > 0 {
            job.dir = retry::attempt_dir(&job, self.attempt);
        }
        retry::fold(self.earlier, error_result(&job, self.started, message))
    }
}

fn error_result(job: &Job, started: Instant, message: String) -> TestResult {
    TestResult {
        suite: job.test.suite.clone(),
        name: job.test.name.clone(),
        outcome: Outcome::Error {
            detail: message.clone(),
            message,
        },
        duration: started.elapsed(),
        artifacts: job.dir.clone(),
        machines: Vec::new(),
        log: String::new(),
        reruns: Vec::new(),
        flaky: false,
        updates: Vec::new(),
    }
}
