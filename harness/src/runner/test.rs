//! Running one test: boot its machines, run its steps, check console and journal, tear down.

use super::job::Job;
use super::machines::{boot_all, cluster_segment, machine_opts, post_checks, update_servers};
use super::result::{MachineReport, Outcome, TestResult, UpdateRecord};
use super::steps::run_steps;
use super::trail::{Log, Tell, Trail};
use super::Shared;
use crate::failure::{first_line, Blame, Cause, Failure};
use crate::machine::Machine;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

/// Runs one attempt of a test; its step log goes to `tell` as it is written.
pub async fn run(job: Job, shared: Arc<Shared>, tell: Option<Tell>) -> TestResult {
    let started = Instant::now();
    if let Some(why) = &job.skip {
        return skipped(&job, why);
    }
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
            e @ (Outcome::Error { .. } | Outcome::Skipped { .. }) => e,
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

/// The result of a test its machines' OS profiles give no meaning: no machine started.
fn skipped(job: &Job, why: &str) -> TestResult {
    TestResult {
        suite: job.test.suite.clone(),
        name: job.test.name.clone(),
        outcome: Outcome::Skipped {
            message: why.to_string(),
        },
        duration: std::time::Duration::ZERO,
        artifacts: job.dir.clone(),
        machines: Vec::new(),
        log: format!("skipped: {why}\n"),
        reruns: Vec::new(),
        flaky: false,
        updates: Vec::new(),
    }
}
