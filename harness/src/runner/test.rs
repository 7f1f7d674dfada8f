//! Running one test: boot its machines, run its steps, check console and journal, tear down.

use super::result::{MachineReport, Outcome, TestResult, UpdateRecord};
use super::steps::{run_step, StepEnv};
use super::trail::{Log, Tell, Trail};
use super::Shared;
use crate::checks;
use crate::failure::{first_line, Blame, Cause, Failure};
use crate::machine::{Machine, MachineOpts};
use crate::report::steps_log::StepEnd;
use crate::suite::{Checks, Test, TestId};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test ready to run: its images resolved and Ignition configs written and validated.
#[derive(Debug, Clone)]
pub struct Job {
    pub test: Test,
    pub dir: PathBuf,
    /// Machine name → resolved image.
    pub images: BTreeMap<String, crate::images::ResolvedImage>,
    /// Machine name → validated Ignition config.
    pub ignition: BTreeMap<String, PathBuf>,
    /// Channel → release that `update` steps offer.
    pub releases: BTreeMap<String, crate::images::ResolvedImage>,
    /// 0 for the first run, k for the k-th retry (`--retries`).
    pub attempt: u32,
    /// The test's own lines of its suite file, for its repro bundle.
    pub excerpt: String,
}

impl Job {
    pub fn id(&self) -> TestId {
        self.test.id()
    }
}

/// Runs one attempt of a test; its step log goes to `tell` as it is written.
pub async fn run(job: Job, shared: Arc<Shared>, tell: Option<Tell>) -> TestResult {
    let started = Instant::now();
    let mut trail = Trail {
        log: Log::new(tell),
        updates: Vec::new(),
    };
    let mut machines: BTreeMap<String, Box<dyn Machine>> = BTreeMap::new();
    let limit = shared.scaled(job.test.timeout);
    let body = body(&job, &shared, &mut machines, &mut trail);
    let mut outcome = match tokio::time::timeout(limit, body).await {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(f)) => Outcome::from(f),
        Err(_) => Outcome::from(Failure {
            blame: Blame::Candidate,
            cause: Cause::Timeout,
            message: format!("test timed out after {:.0}s", limit.as_secs_f64()),
            detail: format!(
                "the test's timeout is {:.0}s (scaled ×{:.2} for {})",
                job.test.timeout.as_secs_f64(),
                shared.info.accel.timeout_scale,
                shared.info.accel.accel
            ),
        }),
    };
    let Trail { mut log, updates } = trail;
    if log.is_empty() && !matches!(outcome, Outcome::Passed) {
        let _ = writeln!(
            log,
            "the test ended before its machines were up (booting them, or waiting for a template another test was making, whose logs are in snapshots/ of the run folder): {}",
            first_line(outcome.message())
        );
    }
    // Checks and artifacts, whatever happened.
    let mut findings = Vec::new();
    for (name, m) in machines.iter_mut() {
        findings.extend(post_checks(job.test.checks, name, m.as_mut(), &shared).await);
    }
    if !findings.is_empty() {
        let text = findings.join("\n");
        outcome = match outcome {
            Outcome::Passed => Outcome::from(Failure {
                blame: Blame::Candidate,
                cause: Cause::Checks,
                message: findings[0].clone(),
                detail: text,
            }),
            Outcome::Failed {
                message,
                detail,
                cause,
            } => Outcome::Failed {
                message,
                detail: format!("{detail}\n\nchecks:\n{text}"),
                cause,
            },
            e @ Outcome::Error { .. } => e,
        };
    }
    let passed = outcome == Outcome::Passed;
    // --keep-on-failure keeps the machines of a test's last attempt only: an attempt that will be
    // retried is torn down, so the retry boots fresh machines and its sockets are free.
    let last_attempt = job.attempt >= shared.info.retries;
    let keep = last_attempt && (shared.keep_all || (!passed && shared.keep_on_failure));
    if !passed {
        match super::repro::write(&job, &shared, &outcome) {
            Ok(dir) => {
                let _ = writeln!(log, "repro bundle: aviary reproduce {}", dir.display());
            }
            Err(e) => {
                let _ = writeln!(log, "could not write the repro bundle: {e}");
            }
        }
    }
    let mut reports = Vec::new();
    for (name, m) in machines.iter_mut() {
        let endpoint = m.endpoint();
        if keep {
            let _ = writeln!(log, "kept {name} up: {}", endpoint.ssh_command());
        } else {
            m.shutdown().await;
            let _ = std::fs::remove_file(m.overlay());
        }
        let img = &job.images[name];
        reports.push(MachineReport {
            name: name.clone(),
            image: img.name.clone(),
            version: img.version.clone(),
            sha256: img.sha256.clone(),
            boots: m.timeline().boots.clone(),
            first_command_s: m.timeline().first_command_s,
            first_command_at_ms: m.timeline().first_command_at_ms,
            ssh: keep.then(|| endpoint.ssh_command()),
        });
    }
    if keep {
        shared
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(std::mem::take(&mut machines).into_values());
    }
    TestResult {
        suite: job.test.suite.clone(),
        name: job.test.name.clone(),
        outcome,
        duration: started.elapsed(),
        artifacts: job.dir.clone(),
        machines: reports,
        log: log.into_text(),
        reruns: Vec::new(),
        flaky: false,
        updates,
    }
}

async fn body(
    job: &Job,
    shared: &Shared,
    machines: &mut BTreeMap<String, Box<dyn Machine>>,
    trail: &mut Trail,
) -> Result<(), Failure> {
    let log = &mut trail.log;
    // Machines that take updates get their own update server, reached through guestfwd.
    let servers = update_servers(&job.test.steps)
        .await
        .map_err(|e| Failure::harness(Cause::Host, e))?;
    // Each attempt's sockets (QMP, segment) in a folder of their own: tests run at once (-j)
    // may name their machines alike.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sock_dir = shared.sock_dir.join(format!("t{n}"));
    std::fs::create_dir_all(&sock_dir).map_err(|e| {
        Failure::harness(Cause::Host, format!("creating {}: {e}", sock_dir.display()))
    })?;
    let segment = cluster_segment(job, &sock_dir, log)?;
    // Boot every machine of the test together.
    let all_opts = machine_opts(job, shared, &sock_dir, &servers, segment.as_ref());
    // Machines that can start from a boot-once snapshot get (or make) theirs, all at once.
    let notes = std::sync::Mutex::new(Vec::new());
    let prepared = join_all(
        all_opts
            .into_iter()
            .map(|o| super::template::after_setup_or_snapshot(o, job, shared, &notes)),
    )
    .await;
    for n in notes.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(log, "{n}");
    }
    // A template that failed for the candidate fails every test waiting on it, at once.
    let prepared = match prepared.into_iter().collect::<Result<Vec<_>, Failure>>() {
        Ok(p) => p,
        Err(why) => {
            let _ = writeln!(log, "{}", why.detail);
            return Err(why.at("booting"));
        }
    };
    // A machine restored from the state after the setup skips it (only tests of one machine
    // have such a template), and its updates are the setup's.
    let skip = if !prepared.is_empty() && prepared.iter().all(|(_, done)| done.is_some()) {
        job.test.setup
    } else {
        0
    };
    for (_, done) in &prepared {
        trail
            .updates
            .extend(done.iter().flatten().cloned().map(|u| UpdateRecord {
                in_setup: true,
                ..u
            }));
    }
    for (opts, _) in prepared {
        let name = opts.name.clone();
        match shared.platform.create(opts).await {
            Ok(m) => {
                machines.insert(name, m);
            }
            Err(e) => return Err(Failure::from(e).at("creating machines")),
        }
    }
    boot_all(machines, log).await?;
    run_steps(
        job,
        skip..job.test.steps.len(),
        machines,
        &servers,
        shared,
        &job.dir,
        trail,
    )
    .await
}

/// A test with several machines gets its own private L2 segment (Aviary's switch on unix
/// datagram sockets) in `sock_dir`; it lives as long as this test's machines. None for a test
/// without cluster NICs.
fn cluster_segment(
    job: &Job,
    sock_dir: &std::path::Path,
    log: &mut Log,
) -> Result<Option<crate::machine::segment::Segment>, Failure> {
    let members: Vec<String> = job
        .test
        .machines
        .iter()
        .filter(|m| m.cluster.is_some())
        .map(|m| m.name.clone())
        .collect();
    if members.is_empty() {
        return Ok(None);
    }
    let dir = sock_dir.join("seg");
    match crate::machine::segment::Segment::start(&dir, &members) {
        Ok(s) => {
            let _ = writeln!(
                log,
                "cluster segment for {}: {}",
                members.join(", "),
                dir.display()
            );
            Ok(Some(s))
        }
        Err(e) => Err(Failure::harness(
            Cause::Host,
            format!("starting the cluster segment in {}: {e}", dir.display()),
        )),
    }
}

/// The options of each of the job's machines, booting cold from its image (templates are
/// chosen afterwards).
fn machine_opts(
    job: &Job,
    shared: &Shared,
    sock_dir: &std::path::Path,
    servers: &BTreeMap<String, crate::update_server::UpdateServer>,
    segment: Option<&crate::machine::segment::Segment>,
) -> Vec<MachineOpts> {
    let exe = aviary_exe();
    let mut all_opts = Vec::new();
    for spec in &job.test.machines {
        let img = &job.images[&spec.name];
        all_opts.push(MachineOpts {
            name: spec.name.clone(),
            base_image: img.disk.clone(),
            fw_cfg_name: img.fw_cfg_name.clone(),
            memory_mib: spec.memory_mib,
            cpus: spec.cpus,
            accel: shared.info.accel.accel,
            dir: job.dir.join(&spec.name),
            sock_dir: sock_dir.to_path_buf(),
            key: shared.key.clone(),
            ignition: job.ignition.get(&spec.name).cloned(),
            boot_timeout: shared.boot_timeout(job.test.machines.iter().map(|m| m.cpus).sum()),
            guestfwd: servers.get(&spec.name).map(|s| s.guestfwd(&exe)),
            cluster_nic: match (segment, &spec.cluster) {
                (Some(seg), Some(nic)) => Some((seg.netdev(&spec.name, "net1"), nic.mac.clone())),
                _ => None,
            },
            restore: None,
        });
    }
    all_opts
}

/// Boots every machine at once, records when each answers Aviary's first command, and logs
/// when each came up. The first machine that did not boot decides the outcome.
async fn boot_all(
    machines: &mut BTreeMap<String, Box<dyn Machine>>,
    log: &mut Log,
) -> Result<(), Failure> {
    let boots = machines.values_mut().map(|m| async move {
        let r = m.boot().await;
        if r.is_ok() {
            // Aviary's first command: record when the guest answers it.
            let t0 = m.timeline().boot_started;
            if m.check(
                "cat /proc/sys/kernel/random/boot_id",
                Duration::from_secs(30),
            )
            .await
            .is_ok()
            {
                let t = m.timeline_mut();
                t.first_command_s = t0.map(|t| t.elapsed().as_secs_f64());
                t.first_command_at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis());
            }
            m.probe_phases().await;
        }
        r
    });
    for r in join_all(boots).await {
        if let Err(e) = r {
            return Err(Failure::from(e).at("booting"));
        }
    }
    for m in machines.values() {
        let t = m.timeline();
        if let Some(b) = t.boots.last() {
            let _ = writeln!(
                log,
                "{} up: SSH banner {:.1}s, login {:.1}s after QEMU start; first command answered at {:.1}s",
                m.name(),
                b.qemu_to_ssh_banner_s,
                b.qemu_to_login_s,
                t.first_command_s.unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

/// Runs the job's steps `range` (0-based; the setup's come first) on `machines`, with artifacts
/// in `dir`, each logged with its number, verb and place; stops at the first that fails.
pub(super) async fn run_steps(
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

/// An update server for each machine that `steps` update.
pub(super) async fn update_servers(
    steps: &[crate::suite::Step],
) -> Result<BTreeMap<String, crate::update_server::UpdateServer>, String> {
    let mut servers = BTreeMap::new();
    for step in steps {
        if matches!(step.kind, crate::suite::StepKind::Update(_)) && !servers.contains_key(&step.on)
        {
            let s = crate::update_server::UpdateServer::start()
                .await
                .map_err(|e| format!("starting the update server: {e}"))?;
            servers.insert(step.on.clone(), s);
        }
    }
    Ok(servers)
}

/// This program, which the update server's guestfwd runs.
pub(super) fn aviary_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("aviary"))
}

/// Saves the journal and runs the kola-style checks on one machine.
pub(super) async fn post_checks(
    c: Checks,
    name: &str,
    m: &mut dyn Machine,
    shared: &Shared,
) -> Vec<String> {
    let mut findings = Vec::new();
    let t = shared.scaled(Duration::from_secs(60));
    if m.is_running() {
        if let Ok(j) = m
            .check("sudo journalctl -b --no-pager -o short-monotonic", t)
            .await
        {
            let _ = std::fs::write(m.dir().join("journal.txt"), &j);
        }
        if c.journal {
            if let Ok(j) = m
                .check(
                    "sudo journalctl -b --no-pager -o cat _TRANSPORT=kernel + _PID=1",
                    t,
                )
                .await
            {
                findings.extend(
                    checks::scan(&j, "journal")
                        .into_iter()
                        .map(|f| format!("{name}: {f}")),
                );
            }
        }
        if c.failed_units {
            if let Ok(out) = m.check("systemctl --failed --no-legend --plain", t).await {
                let units = checks::failed_units(&out);
                if !units.is_empty() {
                    findings.push(format!("{name}: failed units: {}", units.join(", ")));
                }
            }
        }
    }
    if c.console {
        findings.extend(
            checks::scan(&m.console().snapshot(), "console")
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
    }
    findings
}
