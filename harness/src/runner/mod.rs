//! The runner owns time: it schedules jobs, scales deadlines to the accelerator, handles
//! SIGINT/SIGTERM, and emits events; it never formats output.

pub mod job;
pub mod lookup;
pub mod machines;
pub mod plan;
pub mod repro;
pub mod result;
pub mod retry;
pub mod schedule;
pub mod snapshot;
pub mod steps;
pub mod stop;
pub mod template;
pub mod test;
pub mod trail;

use crate::failure::{Cause, Failure};
use crate::images::manifest::Manifest;
use crate::machine::{Machine, Platform};
use crate::report::{Event, FanOut};
use crate::suite::TestId;
use job::Job;
use result::{Outcome, RunInfo, TestResult};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    pub kept: Mutex<Vec<Box<dyn Machine>>>,
    /// Where the tests' machines come from: `machine::Qemu`, or a script in unit tests.
    pub platform: Arc<dyn Platform>,
    /// Boot-once snapshots of this run; None with `--cold`.
    pub snapshots: Option<snapshot::Cache>,
    /// When to end the run before its last test (`--fail-fast`, or a caller's rule): the
    /// tests not started, and the running ones if it cancels them, are not reported.
    pub stop: Option<stop::Stop>,
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

/// How a run ended, ordered by gravity: a run that a stop rule ended early and then a signal
/// interrupted ended interrupted (`max`), as nextest's cancel reasons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunEnd {
    Completed,
    /// `Shared::stop` ended the run early.
    Stopped(stop::Stopped),
    /// SIGINT or SIGTERM, by name.
    Interrupted(String),
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

/// The demand on the host of one job's machines.
fn demand(j: &Job) -> schedule::Demand {
    schedule::Demand {
        vcpus: j.test.machines.iter().map(|m| m.cpus).sum(),
        memory_mib: j
            .test
            .machines
            .iter()
            .map(|m| u64::from(m.memory_mib))
            .sum(),
    }
}

/// The jobs waiting to start, in the order the budget starts them.
fn queue(jobs: Vec<Job>, shared: &Shared) -> VecDeque<(Job, schedule::Waiting)> {
    let mut pending: VecDeque<(Job, schedule::Waiting)> = jobs
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
    pending
}

/// Runs one attempt of a test, telling its step events as it goes: `test::run`; the runner's
/// own tests script it.
pub type Exec = Arc<
    dyn Fn(Job, Arc<Shared>, trail::Tell) -> futures_util::future::BoxFuture<'static, TestResult>
        + Send
        + Sync,
>;

/// Runs `jobs` as the scheduler's budget admits them (`shared.budget`), each retried as `retry` decides up to
/// `shared.info.retries` times (a retry takes the slot its failed attempt freed); returns every
/// result and how the run ended.
pub async fn run(
    jobs: Vec<Job>,
    shared: Arc<Shared>,
    sinks: &mut FanOut,
) -> anyhow::Result<(Vec<TestResult>, RunEnd)> {
    let exec: Exec = Arc::new(|job, shared, tell| Box::pin(test::run(job, shared, Some(tell))));
    run_with(jobs, shared, sinks, exec, Signals::listen()?).await
}

/// What interrupts a run: SIGINT and SIGTERM (`listen`), or names sent on a channel (the
/// runner's own tests, which share a process with tests that raise signals).
pub enum Signals {
    Os(tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    Channel(tokio::sync::mpsc::UnboundedReceiver<String>),
}

impl Signals {
    pub fn listen() -> std::io::Result<Signals> {
        Ok(Signals::Os(
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    }

    /// A signal that arrived during setup (`crate::interrupt`), when listening to the OS.
    fn early(&self) -> Option<String> {
        match self {
            Signals::Os(..) => crate::interrupt::early().map(String::from),
            Signals::Channel(_) => None,
        }
    }

    /// The next interrupt's name (never, once a channel is closed).
    async fn next(&mut self) -> String {
        match self {
            Signals::Os(int, term) => tokio::select! {
                _ = int.recv() => "SIGINT".into(),
                _ = term.recv() => "SIGTERM".into(),
            },
            Signals::Channel(rx) => match rx.recv().await {
                Some(why) => why,
                None => std::future::pending().await,
            },
        }
    }
}

/// `run`, each attempt run by `exec`, interrupted by `signals`.
pub async fn run_with(
    jobs: Vec<Job>,
    shared: Arc<Shared>,
    sinks: &mut FanOut,
    exec: Exec,
    mut signals: Signals,
) -> anyhow::Result<(Vec<TestResult>, RunEnd)> {
    sinks.emit(&Event::RunStarted {
        info: shared.info.clone(),
        total: jobs.len(),
    })?;
    let (tx, mut steps) = tokio::sync::mpsc::unbounded_channel();
    let mut flight = Flight {
        running: BTreeMap::new(),
        set: JoinSet::new(),
        tasks: BTreeMap::new(),
        results: Vec::new(),
        exec,
        tx,
    };
    // How the run ends so far; a signal during setup (before these streams existed) was
    // remembered: start nothing.
    let mut end = signals
        .early()
        .map_or(RunEnd::Completed, RunEnd::Interrupted);
    let mut pending = queue(jobs, &shared);
    while !matches!(end, RunEnd::Interrupted(_)) {
        // Start what the budget admits, unless the run is ending.
        if end == RunEnd::Completed {
            loop {
                let now: Vec<schedule::Demand> =
                    flight.running.values().map(|t| demand(&t.first)).collect();
                let Some(job) = shared.budget.take(&now, &mut pending) else {
                    break;
                };
                flight.start(job, &shared, sinks)?;
            }
        }
        if let RunEnd::Stopped(s) = &mut end {
            if shared.stop.as_ref().is_some_and(|s| s.cancel_running) {
                s.cancelled = flight.cancel().await;
            }
        }
        if flight.running.is_empty() {
            break;
        }
        tokio::select! {
            Some(ev) = steps.recv() => sinks.emit(&ev)?,
            done = flight.set.join_next_with_id() => {
                // The task's last step events were sent before it ended: they go first.
                while let Ok(ev) = steps.try_recv() {
                    sinks.emit(&ev)?;
                }
                match done {
                    Some(Ok((task, r))) => {
                        flight.tasks.remove(&task);
                        flight.attempt_ended(r, &shared, sinks)?
                    }
                    Some(Err(e)) => flight.task_failed(e, sinks)?,
                    None => break,
                }
            }
            why = signals.next() => end = end.max(RunEnd::Interrupted(why)),
        }
        if end == RunEnd::Completed {
            if let Some(reason) = shared.stop.as_ref().and_then(|s| s.check(&flight.results)) {
                end = RunEnd::Stopped(stop::Stopped {
                    reason,
                    not_run: 0,
                    cancelled: Vec::new(),
                });
            }
        }
    }
    match &mut end {
        RunEnd::Interrupted(why) => flight.interrupt(why, pending, sinks, &mut steps).await?,
        RunEnd::Stopped(s) => s.not_run = pending.len(),
        RunEnd::Completed => {}
    }
    while let Ok(ev) = steps.try_recv() {
        sinks.emit(&ev)?;
    }
    sinks.emit(&Event::RunFinished { end: end.clone() })?;
    Ok((flight.results, end))
}

/// The tests in flight while `run` dispatches, and the results reported so far.
struct Flight {
    running: BTreeMap<TestId, Running>,
    set: JoinSet<TestResult>,
    /// Which test each task runs, so that a task that panicked is blamed on its own test.
    tasks: BTreeMap<tokio::task::Id, TestId>,
    results: Vec<TestResult>,
    exec: Exec,
    /// Where the tests send their step events (`trail::Tell`).
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
}

impl Flight {
    /// A test's final result: emitted, and kept for the return value.
    fn report(&mut self, sinks: &mut FanOut, r: TestResult) -> anyhow::Result<()> {
        sinks.emit(&Event::TestFinished { result: r.clone() })?;
        self.results.push(r);
        Ok(())
    }

    /// Starts a test's first attempt.
    fn start(&mut self, job: Job, shared: &Arc<Shared>, sinks: &mut FanOut) -> anyhow::Result<()> {
        sinks.emit(&Event::TestStarted {
            suite: job.test.suite.clone(),
            name: job.test.name.clone(),
        })?;
        self.running.insert(
            job.id(),
            Running {
                first: job.clone(),
                started: Instant::now(),
                attempt: 0,
                earlier: Vec::new(),
            },
        );
        self.spawn(job, shared);
        Ok(())
    }

    /// Runs one attempt in a task of its own, remembering whose task it is.
    fn spawn(&mut self, job: Job, shared: &Arc<Shared>) {
        let id = job.id();
        let tell = trail::Tell {
            tx: self.tx.clone(),
            test: job.test.id(),
            dir: job.dir.clone(),
        };
        let task = self.set.spawn((self.exec)(job, shared.clone(), tell)).id();
        self.tasks.insert(task, id);
    }

    /// An attempt ended: the test runs again as `retry` decides, or its result (folded with
    /// its earlier attempts) is reported.
    fn attempt_ended(
        &mut self,
        r: TestResult,
        shared: &Arc<Shared>,
        sinks: &mut FanOut,
    ) -> anyhow::Result<()> {
        let id = r.id();
        let Some(mut t) = self.running.remove(&id) else {
            // Not a test in flight (each task reports its own test): record it as it is.
            return self.report(sinks, r);
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
                sinks.emit(&Event::TestRetrying {
                    failed: r.clone(),
                    attempt: next,
                })?;
                t.earlier.push(r);
                t.attempt = next;
                t.started = Instant::now();
                self.running.insert(id, t);
                self.spawn(job, shared);
            }
            None => {
                let r = retry::fold(t.earlier, r);
                self.report(sinks, r)?;
            }
        }
        Ok(())
    }

    /// A test task that panicked: its own test ends with a harness error naming the panic.
    fn task_failed(&mut self, e: tokio::task::JoinError, sinks: &mut FanOut) -> anyhow::Result<()> {
        let test = self.tasks.remove(&e.id());
        tracing::error!(
            test = test.as_ref().map_or("?", |t| t.as_str()),
            "test task failed: {e}"
        );
        let Some(t) = test.and_then(|id| self.running.remove(&id)) else {
            return Ok(());
        };
        let r = t.finish(Failure::harness(
            Cause::Panic,
            format!("harness error: {}", panic_message(e)),
        ));
        self.report(sinks, r)
    }

    /// Cancels every running test (`Stop::cancel_running`): their tasks are dropped, which
    /// kills their machines; they are not reported. Returns their ids.
    async fn cancel(&mut self) -> Vec<String> {
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
        self.tasks.clear();
        crate::machine::process::kill_all();
        let ids: Vec<String> = std::mem::take(&mut self.running)
            .into_keys()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            tracing::info!(tests = %ids.join(", "), "cancelled: the run stopped");
        }
        ids
    }

    /// After SIGINT or SIGTERM: every running test ends as interrupted, every pending one as
    /// not run.
    async fn interrupt(
        &mut self,
        why: &str,
        pending: VecDeque<(Job, schedule::Waiting)>,
        sinks: &mut FanOut,
        steps: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    ) -> anyhow::Result<()> {
        // Dropping the tasks drops their machines, which kills every QEMU group.
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
        crate::machine::process::kill_all();
        // How far each got is in its steps.log before it is reported interrupted.
        while let Ok(ev) = steps.try_recv() {
            sinks.emit(&ev)?;
        }
        for (_, t) in std::mem::take(&mut self.running) {
            let r = t.finish(Failure::harness(
                Cause::Interrupted,
                format!("interrupted by {why} while running"),
            ));
            self.report(sinks, r)?;
        }
        for (job, _) in pending {
            let r = error_result(
                &job,
                Instant::now(),
                Failure::harness(
                    Cause::Interrupted,
                    format!("not run: the run was interrupted by {why}"),
                ),
            );
            self.report(sinks, r)?;
        }
        Ok(())
    }
}

impl Running {
    /// Ends the test with a harness error, keeping the attempts it already made.
    fn finish(self, f: Failure) -> TestResult {
        let mut job = self.first;
        if self.attempt > 0 {
            job.dir = retry::attempt_dir(&job, self.attempt);
        }
        retry::fold(self.earlier, error_result(&job, self.started, f))
    }
}

/// What a failed task says: the panic's message when it panicked.
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let p = e.into_panic();
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("the test's task panicked: {text}")
}

fn error_result(job: &Job, started: Instant, f: Failure) -> TestResult {
    TestResult {
        suite: job.test.suite.clone(),
        name: job.test.name.clone(),
        outcome: Outcome::from(f),
        duration: started.elapsed(),
        artifacts: job.dir.clone(),
        machines: Vec::new(),
        log: String::new(),
        reruns: Vec::new(),
        flaky: false,
        updates: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
