//! Running one test: boot its machines, run its steps, check console and journal, tear down.

use super::result::{MachineReport, Outcome, TestResult};
use super::steps::{run_step, StepEnv, StepError};
use super::Shared;
use crate::checks;
use crate::machine::{Machine, MachineError, MachineOpts};
use crate::suite::{BootMode, Checks, Test};
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
    pub fn id(&self) -> String {
        format!("{}::{}", self.test.suite, self.test.name)
    }
}

pub async fn run(job: Job, shared: Arc<Shared>) -> TestResult {
    let started = Instant::now();
    let mut log = String::new();
    let mut machines: BTreeMap<String, Machine> = BTreeMap::new();
    let limit = shared.scaled(job.test.timeout);
    let body = body(&job, &shared, &mut machines, &mut log);
    let mut outcome = match tokio::time::timeout(limit, body).await {
        Ok(o) => o,
        Err(_) => Outcome::Failed {
            message: format!("test timed out after {:.0}s", limit.as_secs_f64()),
            detail: format!(
                "the test's timeout is {:.0}s (scaled ×{:.2} for {})",
                job.test.timeout.as_secs_f64(),
                shared.info.accel.timeout_scale,
                shared.info.accel.accel
            ),
        },
    };
    // Checks and artifacts, whatever happened.
    let mut findings = Vec::new();
    for (name, m) in machines.iter_mut() {
        findings.extend(post_checks(job.test.checks, name, m, &shared).await);
    }
    if !findings.is_empty() {
        let text = findings.join("\n");
        outcome = match outcome {
            Outcome::Passed => Outcome::Failed {
                message: findings[0].clone(),
                detail: text,
            },
            Outcome::Failed { message, detail } => Outcome::Failed {
                message,
                detail: format!("{detail}\n\nchecks:\n{text}"),
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
            boots: m.boots.clone(),
            first_command_s: m.first_command_s,
            first_command_at_ms: m.first_command_at_ms,
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
    let _ = std::fs::write(job.dir.join("steps.log"), &log);
    TestResult {
        suite: job.test.suite.clone(),
        name: job.test.name.clone(),
        outcome,
        duration: started.elapsed(),
        artifacts: job.dir.clone(),
        machines: reports,
        log,
        reruns: Vec::new(),
        flaky: false,
    }
}

async fn body(
    job: &Job,
    shared: &Shared,
    machines: &mut BTreeMap<String, Machine>,
    log: &mut String,
) -> Outcome {
    // Machines that take updates get their own update server, reached through guestfwd.
    let mut servers = BTreeMap::new();
    for step in &job.test.steps {
        if let crate::suite::StepKind::Update { on, .. } = &step.kind {
            if !servers.contains_key(on) {
                match crate::update_server::UpdateServer::start().await {
                    Ok(s) => {
                        servers.insert(on.clone(), s);
                    }
                    Err(e) => {
                        return Outcome::Error {
                            message: format!("starting the update server: {e}"),
                            detail: e.to_string(),
                        }
                    }
                }
            }
        }
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("aviary"));
    // A test with several machines gets its own private L2 segment (Aviary's switch on unix
    // datagram sockets); it lives as long as this test's machines.
    let members: Vec<String> = job
        .test
        .machines
        .iter()
        .filter(|m| m.cluster.is_some())
        .map(|m| m.name.clone())
        .collect();
    // Each attempt's sockets (QMP, segment) in a folder of their own: tests run at once (-j)
    // may name their machines alike.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sock_dir = shared.sock_dir.join(format!("t{n}"));
    if let Err(e) = std::fs::create_dir_all(&sock_dir) {
        return Outcome::Error {
            message: format!("creating {}: {e}", sock_dir.display()),
            detail: e.to_string(),
        };
    }
    let segment = if members.is_empty() {
        None
    } else {
        let dir = sock_dir.join("seg");
        match crate::machine::segment::Segment::start(&dir, &members) {
            Ok(s) => {
                let _ = writeln!(
                    log,
                    "cluster segment for {}: {}",
                    members.join(", "),
                    dir.display()
                );
                Some(s)
            }
            Err(e) => {
                return Outcome::Error {
                    message: format!("starting the cluster segment in {}: {e}", dir.display()),
                    detail: e.to_string(),
                }
            }
        }
    };
    // Boot every machine of the test together.
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
            sock_dir: sock_dir.clone(),
            key: shared.key.clone(),
            ignition: job.ignition.get(&spec.name).cloned(),
            boot_timeout: shared.boot_timeout(job.test.machines.iter().map(|m| m.cpus).sum()),
            guestfwd: servers.get(&spec.name).map(|s| s.guestfwd(&exe)),
            cluster_nic: match (&segment, &spec.cluster) {
                (Some(seg), Some(nic)) => Some((seg.netdev(&spec.name, "net1"), nic.mac.clone())),
                _ => None,
            },
            restore: None,
        });
    }
    // Machines that can start from a boot-once snapshot get (or make) theirs, all at once.
    let notes = std::sync::Mutex::new(Vec::new());
    let prepared = futures_join_all(
        all_opts
            .into_iter()
            .map(|o| from_snapshot(o, job, shared, &notes)),
    )
    .await;
    for n in notes.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(log, "{n}");
    }
    for opts in prepared {
        let name = opts.name.clone();
        match Machine::create(opts).await {
            Ok(m) => {
                machines.insert(name, m);
            }
            Err(e) => return machine_outcome(e, "creating machines"),
        }
    }
    let boots = machines.values_mut().map(|m| async move {
        let r = m.boot().await;
        if r.is_ok() {
            // Aviary's first command: record when the guest answers it.
            if let Ok(ssh) = m.ssh() {
                let t0 = m.boot_started;
                if ssh
                    .check(
                        "cat /proc/sys/kernel/random/boot_id",
                        Duration::from_secs(30),
                    )
                    .await
                    .is_ok()
                {
                    m.first_command_s = t0.map(|t| t.elapsed().as_secs_f64());
                    m.first_command_at_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_millis());
                }
            }
        }
        r
    });
    for r in futures_join_all(boots).await {
        if let Err(e) = r {
            return machine_outcome(e, "booting");
        }
    }
    for m in machines.values() {
        if let Some(b) = m.boots.last() {
            let _ = writeln!(
                log,
                "{} up: SSH banner {:.1}s, login {:.1}s after QEMU start; first command answered at {:.1}s",
                m.name,
                b.qemu_to_ssh_banner_s,
                b.qemu_to_login_s,
                m.first_command_s.unwrap_or(f64::NAN)
            );
        }
    }
    let mut env = StepEnv {
        machines,
        images: &job.images,
        releases: &job.releases,
        servers: &servers,
        manifest: &shared.manifest,
        test_dir: &job.dir,
        run_timeout: shared.scaled(Duration::from_secs(60)),
        wait_timeout: shared.scaled(Duration::from_secs(120)),
        log,
    };
    for (i, step) in job.test.steps.iter().enumerate() {
        let t = Instant::now();
        let _ = writeln!(
            env.log,
            "--- step {} ({} at {})",
            i + 1,
            step.kind.verb(),
            step.loc
        );
        let r = run_step(step, &mut env).await;
        let _ = writeln!(env.log, "    ({:.1}s)", t.elapsed().as_secs_f64());
        let place = || format!("step {} ({}, {})", i + 1, step.kind.verb(), step.loc);
        match r {
            Ok(()) => {}
            Err(StepError::Failed(m)) => {
                return Outcome::Failed {
                    message: format!("{}: {}", place(), first_line(&m)),
                    detail: m,
                }
            }
            Err(StepError::Infra(m)) => {
                return Outcome::Error {
                    message: format!("{}: {}", place(), first_line(&m)),
                    detail: m,
                }
            }
        }
    }
    Outcome::Passed
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn machine_outcome(e: MachineError, doing: &str) -> Outcome {
    match e {
        MachineError::Infra(m) => Outcome::Error {
            message: format!("{doing}: {}", first_line(&m)),
            detail: m,
        },
        MachineError::Guest(m) => Outcome::Failed {
            message: format!("{doing}: {}", first_line(&m)),
            detail: m,
        },
    }
}

/// The snapshot key of one machine of a job, or None when it must boot cold (the test says
/// `boot: cold`). A machine that takes updates starts from a template too: the template is
/// saved without the test's update server, and the restored QEMU gets the test's own
/// guestfwd; the reboot into the new slot is a real one. So does a cluster member: its
/// template boots alone, its cluster NIC on a port of its own, and the restored QEMU's NIC is
/// on the test's segment (the key holds its MAC, address and hosts, through the Ignition bytes).
pub fn snapshot_key(job: &Job, machine: &str, accel: &str) -> Option<String> {
    if job.test.boot == BootMode::Cold {
        return None;
    }
    let spec = job.test.machines.iter().find(|m| m.name == machine)?;
    let img = job.images.get(machine)?;
    let ignition = match job.ignition.get(machine) {
        Some(p) => std::fs::read(p).ok()?,
        None => Vec::new(),
    };
    Some(
        super::snapshot::KeyParts {
            image_sha256: &img.sha256,
            ignition: &ignition,
            memory_mib: spec.memory_mib,
            cpus: spec.cpus,
            cluster_mac: spec.cluster.as_ref().map(|c| c.mac.as_str()),
            fw_cfg_name: &img.fw_cfg_name,
            accel,
        }
        .key(),
    )
}

/// Points `o` at the snapshot of its image and config when the test allows one; makes the
/// snapshot first if this run has none yet. Any problem with it means a cold boot, noted in
/// the steps log.
async fn from_snapshot(
    mut o: MachineOpts,
    job: &Job,
    shared: &Shared,
    notes: &std::sync::Mutex<Vec<String>>,
) -> MachineOpts {
    let note = |s: String| notes.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    let Some(cache) = shared.snapshots.as_ref() else {
        return o;
    };
    let accel = shared.info.accel.accel.to_string();
    let Some(key) = snapshot_key(job, &o.name, &accel) else {
        return o;
    };
    if !cache.worth(&key) {
        return o;
    }
    // The same machine, without the test's own update server, and a cluster member alone: the
    // same NIC (and MAC) on a port nothing listens to. `make_template` sets its folder.
    let alone = |mac: &String| {
        let local = o.sock_dir.join(format!("tpl-{}.sock", o.name));
        let _ = std::fs::remove_file(&local);
        let nobody = o.sock_dir.join(format!("tpl-{}-none.sock", o.name));
        let netdev = crate::machine::segment::dgram_netdev("net1", &local, &nobody);
        (netdev, mac.clone())
    };
    let template_opts = MachineOpts {
        guestfwd: None,
        restore: None,
        cluster_nic: o.cluster_nic.as_ref().map(|(_, mac)| alone(mac)),
        ..o.clone()
    };
    let made = cache
        .get_or_make(&key, |dir| {
            make_template(template_opts, dir, key.clone(), shared)
        })
        .await;
    match made {
        Ok(t) => {
            note(format!(
                "{}: starts from snapshot {} (made in {:.1}s cold boot + {:.1}s save, {} MiB state; logs in snapshots/{})",
                o.name,
                t.key,
                t.boot_s,
                t.save_s,
                t.state_bytes >> 20,
                t.key
            ));
            o.base_image = t.disk.clone();
            o.restore = Some(t.state.clone());
        }
        Err(e) => note(format!("{}: no snapshot ({e}); booting cold", o.name)),
    }
    o
}

/// Boots a machine cold in `dir`, checks it like a test's machine (console, journal, failed
/// units, whatever the test asks), and saves it.
async fn make_template(
    mut o: MachineOpts,
    dir: PathBuf,
    key: String,
    shared: &Shared,
) -> Result<super::snapshot::Template, String> {
    o.dir = dir.clone();
    let name = o.name.clone();
    let t0 = Instant::now();
    let mut m = Machine::create(o).await.map_err(|e| e.to_string())?;
    if let Err(e) = m.boot().await {
        m.shutdown().await;
        super::snapshot::keep_logs(&dir, &shared.info.dir, &key);
        return Err(e.to_string());
    }
    let boot_s = t0.elapsed().as_secs_f64();
    let findings = post_checks(Checks::default(), &name, &mut m, shared).await;
    if !findings.is_empty() {
        m.shutdown().await;
        super::snapshot::keep_logs(&dir, &shared.info.dir, &key);
        return Err(format!(
            "its first boot did not pass the checks: {}",
            findings.join("; ")
        ));
    }
    let t1 = Instant::now();
    let state = dir.join("state");
    let saved = m.save_state(&state).await;
    super::snapshot::keep_logs(&dir, &shared.info.dir, &key);
    let state_bytes = saved.map_err(|e| e.to_string())?;
    Ok(super::snapshot::Template {
        key,
        disk: m.overlay().to_path_buf(),
        state,
        boot_s,
        save_s: t1.elapsed().as_secs_f64(),
        state_bytes,
    })
}

/// Joins futures that borrow disjoint machines (a tiny join_all without another crate).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<Option<_>> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}

/// Saves the journal and runs the kola-style checks on one machine.
async fn post_checks(c: Checks, name: &str, m: &mut Machine, shared: &Shared) -> Vec<String> {
    let mut findings = Vec::new();
    let t = shared.scaled(Duration::from_secs(60));
    if let Ok(ssh) = m.ssh() {
        let ssh = ssh.clone();
        if let Ok(j) = ssh
            .check("sudo journalctl -b --no-pager -o short-monotonic", t)
            .await
        {
            let _ = std::fs::write(m.dir.join("journal.txt"), &j);
        }
        if c.journal {
            if let Ok(j) = ssh
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
            if let Ok(out) = ssh.check("systemctl --failed --no-legend --plain", t).await {
                let units = checks::failed_units(&out);
                if !units.is_empty() {
                    findings.push(format!("{name}: failed units: {}", units.join(", ")));
                }
            }
        }
    }
    if c.console {
        findings.extend(
            checks::scan(&m.console.snapshot(), "console")
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
    }
    findings
}
