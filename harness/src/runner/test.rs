//! Running one test: boot its machines, run its steps, check console and journal, tear down.

use super::result::{MachineReport, Outcome, TestResult, UpdateRecord};
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
    let mut updates = Vec::new();
    let limit = shared.scaled(job.test.timeout);
    let body = body(&job, &shared, &mut machines, &mut log, &mut updates);
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
        updates,
    }
}

async fn body(
    job: &Job,
    shared: &Shared,
    machines: &mut BTreeMap<String, Machine>,
    log: &mut String,
    updates: &mut Vec<UpdateRecord>,
) -> Outcome {
    // Machines that take updates get their own update server, reached through guestfwd.
    let servers = match update_servers(&job.test.steps).await {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Error {
                message: e.clone(),
                detail: e,
            }
        }
    };
    let exe = aviary_exe();
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
            .map(|o| after_setup_or_snapshot(o, job, shared, &notes)),
    )
    .await;
    for n in notes.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(log, "{n}");
    }
    // A machine restored from the state after the setup skips it (only tests of one machine
    // have such a template), and its updates are the setup's.
    let skip = if !prepared.is_empty() && prepared.iter().all(|(_, done)| done.is_some()) {
        job.test.setup
    } else {
        0
    };
    for (_, done) in &prepared {
        updates.extend(done.iter().flatten().cloned().map(|u| UpdateRecord {
            in_setup: true,
            ..u
        }));
    }
    for (opts, _) in prepared {
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
    run_steps(
        job,
        skip..job.test.steps.len(),
        machines,
        &servers,
        shared,
        &job.dir,
        log,
        updates,
    )
    .await
}

/// Runs the job's steps `range` (0-based; the setup's come first) on `machines`, with artifacts
/// in `dir`, each logged with its number, verb and place; stops at the first that fails.
async fn run_steps(
    job: &Job,
    range: std::ops::Range<usize>,
    machines: &mut BTreeMap<String, Machine>,
    servers: &BTreeMap<String, crate::update_server::UpdateServer>,
    shared: &Shared,
    dir: &std::path::Path,
    log: &mut String,
    updates: &mut Vec<UpdateRecord>,
) -> Outcome {
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
        log,
        updates,
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
        let _ = writeln!(
            env.log,
            "--- {}step {} ({} at {})",
            if i < test.setup { "setup " } else { "" },
            i + 1,
            step.kind.verb(),
            step.loc
        );
        let r = run_step(step, env).await;
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

/// An update server for each machine that `steps` update.
async fn update_servers(
    steps: &[crate::suite::Step],
) -> Result<BTreeMap<String, crate::update_server::UpdateServer>, String> {
    let mut servers = BTreeMap::new();
    for step in steps {
        if let crate::suite::StepKind::Update { on, .. } = &step.kind {
            if !servers.contains_key(on) {
                let s = crate::update_server::UpdateServer::start()
                    .await
                    .map_err(|e| format!("starting the update server: {e}"))?;
                servers.insert(on.clone(), s);
            }
        }
    }
    Ok(servers)
}

/// This program, which the update server's guestfwd runs.
fn aviary_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("aviary"))
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

/// The key of a machine's state after its test's `setup:` steps, or None when that state is
/// not saved: no setup, `boot: cold`, several machines, or a cluster NIC. It is the machine's
/// snapshot key and every setup step as loaded (its verb, machine, arguments; not its place),
/// with the payload of each `update` and the bytes of each file copied in.
pub fn setup_key(job: &Job, machine: &str, accel: &str) -> Option<String> {
    let t = &job.test;
    if t.setup == 0 || t.machines.len() != 1 || t.machines[0].cluster.is_some() {
        return None;
    }
    let plain = snapshot_key(job, machine, accel)?;
    let mut parts = vec![b"setup".to_vec(), plain.into_bytes()];
    for step in &t.steps[..t.setup] {
        parts.push(format!("{:?}", step.kind).into_bytes());
        match &step.kind {
            crate::suite::StepKind::Update { to, .. } => {
                let rel = job.releases.get(to)?;
                parts.push(rel.sha256.clone().into_bytes());
                parts.push(rel.payload_sha256.clone().unwrap_or_default().into_bytes());
            }
            crate::suite::StepKind::Copy {
                direction: crate::suite::CopyDirection::In,
                from,
                ..
            } => parts.push(std::fs::read(from).ok()?),
            _ => {}
        }
    }
    Some(super::snapshot::digest(parts.iter().map(|p| p.as_slice())))
}

/// The snapshot keys the plan asks for, one per use (`snapshot::Cache::new`): a machine whose
/// setup state is shared asks for that; its template is made once, from the machine's plain
/// snapshot, which counts once for it. Any other machine asks for its plain snapshot.
pub fn planned_keys(jobs: &[Job], accel: &str) -> Vec<String> {
    let machines: Vec<(Option<String>, Option<String>)> = jobs
        .iter()
        .flat_map(|j| {
            j.test.machines.iter().map(move |m| {
                (
                    snapshot_key(j, &m.name, accel),
                    setup_key(j, &m.name, accel),
                )
            })
        })
        .collect();
    let mut setups: std::collections::HashMap<&str, usize> = Default::default();
    for k in machines.iter().filter_map(|(_, s)| s.as_deref()) {
        *setups.entry(k).or_default() += 1;
    }
    let mut made = std::collections::HashSet::new();
    let mut keys = Vec::new();
    for (plain, setup) in &machines {
        match setup {
            Some(k) if setups[k.as_str()] >= 2 => {
                if made.insert(k) {
                    keys.extend(plain.clone());
                }
                keys.push(k.clone());
            }
            _ => keys.extend(plain.clone()),
        }
    }
    keys
}

/// Points `o` at the saved state after the test's setup when the plan shares one (making it
/// first if no test made it yet); the setup's updates then, and the test skips its setup
/// steps. Otherwise, or if that template failed, as `from_snapshot`, and the setup runs in
/// the test.
async fn after_setup_or_snapshot(
    mut o: MachineOpts,
    job: &Job,
    shared: &Shared,
    notes: &std::sync::Mutex<Vec<String>>,
) -> (MachineOpts, Option<Vec<UpdateRecord>>) {
    let note = |s: String| notes.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    let accel = shared.info.accel.accel.to_string();
    if let (Some(cache), Some(key)) = (shared.snapshots.as_ref(), setup_key(job, &o.name, &accel)) {
        if cache.worth(&key) {
            let template_opts = MachineOpts {
                restore: None,
                ..o.clone()
            };
            let made = cache
                .get_or_make(&key, |dir| {
                    make_setup_template(template_opts, dir, key.clone(), job, shared)
                })
                .await;
            match made {
                Ok(t) => {
                    let mut text = format!(
                        "{}: starts from snapshot {}, saved after the setup ({} step(s), made once in this run by the first test that needed it: {:.1}s to boot and run the setup + {:.1}s save, {} MiB state; logs in snapshots/{}):",
                        o.name,
                        t.key,
                        job.test.setup,
                        t.boot_s,
                        t.save_s,
                        t.state_bytes >> 20,
                        t.key
                    );
                    for l in t.setup.as_deref().unwrap_or("").lines() {
                        text.push_str("\n    | ");
                        text.push_str(l);
                    }
                    note(text);
                    o.base_image = t.disk.clone();
                    o.restore = Some(t.state.clone());
                    return (o, Some(t.updates.clone()));
                }
                Err(e) => note(format!(
                    "{}: no snapshot after the setup ({e}); the test runs its setup itself",
                    o.name
                )),
            }
        }
    }
    (from_snapshot(o, job, shared, notes).await, None)
}

/// Starts a machine (from its plain snapshot when there is one) with an update server of its
/// own, and makes the template after the test's setup steps (`make_template`).
async fn make_setup_template(
    mut o: MachineOpts,
    dir: PathBuf,
    key: String,
    job: &Job,
    shared: &Shared,
) -> Result<super::snapshot::Template, String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let servers = update_servers(&job.test.steps[..job.test.setup]).await?;
    o.guestfwd = servers.get(&o.name).map(|s| s.guestfwd(&aviary_exe()));
    let notes = std::sync::Mutex::new(Vec::new());
    let o = from_snapshot(o, job, shared, &notes).await;
    let mut log = String::new();
    for n in notes.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(log, "{n}");
    }
    let setup = Setup {
        job,
        servers: &servers,
        log,
        updates: Vec::new(),
    };
    make_template(o, dir, key, shared, Some(setup)).await
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
            make_template(template_opts, dir, key.clone(), shared, None)
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

/// The steps a template runs after its boot: a test's setup, on servers of its own.
struct Setup<'a> {
    job: &'a Job,
    servers: &'a BTreeMap<String, crate::update_server::UpdateServer>,
    /// The log so far (how the machine starts); the setup's steps are added to it.
    log: String,
    /// The setup's `update` steps.
    updates: Vec<UpdateRecord>,
}

/// Boots a machine in `dir` (cold, or restored as `o` says), runs the `setup` steps if any,
/// checks it like a test's machine (console, journal, failed units), and saves it. Its logs
/// (and the setup's, as setup.log) go to the run's snapshots/KEY/ whatever happens.
async fn make_template(
    mut o: MachineOpts,
    dir: PathBuf,
    key: String,
    shared: &Shared,
    mut setup: Option<Setup<'_>>,
) -> Result<super::snapshot::Template, String> {
    o.dir = dir.clone();
    let name = o.name.clone();
    let t0 = Instant::now();
    let mut machines = BTreeMap::new();
    machines.insert(
        name.clone(),
        Machine::create(o).await.map_err(|e| e.to_string())?,
    );
    let mut ready_s = 0.0;
    let made: Result<(), String> = async {
        let m = machines.get_mut(&name).expect("inserted");
        m.boot().await.map_err(|e| e.to_string())?;
        if let Some(Setup {
            job,
            servers,
            log,
            updates,
        }) = setup.as_mut()
        {
            let setup = 0..job.test.setup;
            match run_steps(job, setup, &mut machines, servers, shared, &dir, log, updates).await {
                Outcome::Passed => {}
                Outcome::Failed { message, .. } | Outcome::Error { message, .. } => {
                    return Err(format!("the setup failed: {message}"))
                }
            }
        }
        ready_s = t0.elapsed().as_secs_f64();
        let m = machines.get_mut(&name).expect("inserted");
        let findings = post_checks(Checks::default(), &name, m, shared).await;
        if findings.is_empty() {
            Ok(())
        } else if setup.is_some() {
            Err(format!(
                "after the setup, the checks found: {}",
                findings.join("; ")
            ))
        } else {
            Err(format!(
                "its first boot did not pass the checks: {}",
                findings.join("; ")
            ))
        }
    }
    .await;
    let m = machines.get_mut(&name).expect("inserted");
    let t1 = Instant::now();
    let state = dir.join("state");
    let saved = match made {
        Ok(()) => m.save_state(&state).await.map_err(|e| e.to_string()),
        Err(why) => {
            m.shutdown().await;
            Err(why)
        }
    };
    if let Some(s) = &setup {
        let _ = std::fs::write(dir.join("setup.log"), &s.log);
    }
    super::snapshot::keep_logs(&dir, &shared.info.dir, &key);
    let state_bytes = saved?;
    Ok(super::snapshot::Template {
        key,
        disk: m.overlay().to_path_buf(),
        state,
        boot_s: ready_s,
        save_s: t1.elapsed().as_secs_f64(),
        state_bytes,
        updates: setup.as_ref().map(|s| s.updates.clone()).unwrap_or_default(),
        setup: setup.map(|s| s.log),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, sha: &str) -> crate::images::ResolvedImage {
        crate::images::ResolvedImage {
            name: name.into(),
            channel: Some(name.into()),
            version: "1".into(),
            kernel_release: "6.1".into(),
            kernel_version: "6.1".into(),
            disk: PathBuf::from(format!("/images/{name}.qcow2")),
            sha256: sha.into(),
            vmlinuz: None,
            fw_cfg_name: "opt/com.coreos/config".into(),
            payload: Some(PathBuf::from(format!("/images/{name}.raucb"))),
            payload_sha256: Some(format!("payload-{sha}")),
            payload_size: Some(1),
        }
    }

    /// The jobs of a suite, every machine on `stable`, updates offering `beta` (digest `beta`).
    fn jobs(tests: &str, dir: &std::path::Path) -> Vec<Job> {
        let text = format!("suite: s\ntests:\n{tests}");
        let ctx = crate::suite::LoadContext {
            channels: vec!["stable".into(), "beta".into()],
        };
        let s = crate::suite::load_str(std::path::Path::new("s.yaml"), &text, &ctx).unwrap();
        let ign = dir.join("config.ign");
        std::fs::write(&ign, "{}").unwrap();
        s.tests
            .into_iter()
            .map(|t| Job {
                images: t
                    .machines
                    .iter()
                    .map(|m| (m.name.clone(), image("stable", "s1")))
                    .collect(),
                ignition: t
                    .machines
                    .iter()
                    .map(|m| (m.name.clone(), ign.clone()))
                    .collect(),
                releases: [("beta".to_string(), image("beta", "b1"))].into(),
                dir: dir.to_path_buf(),
                attempt: 0,
                excerpt: String::new(),
                test: t,
            })
            .collect()
    }

    const ONE: &str = "    machines: { node: { image: stable } }\n";

    fn t(name: &str, setup: &str, extra: &str) -> String {
        format!("  - name: {name}\n{ONE}{extra}{setup}    steps:\n      - reboot: node\n")
    }

    const UPDATE: &str = "    setup:\n      - update: { on: node, to: beta }\n";

    #[test]
    fn the_setup_key_is_the_machine_and_its_setup_steps() {
        let d = tempfile::tempdir().unwrap();
        let other_run = "    setup:\n      - run: { on: node, cmd: \"true\" }\n";
        let js = jobs(
            &[
                t("a", UPDATE, ""),
                t("b", UPDATE, ""),
                t("c", other_run, ""),
                t("d", "", ""),
                t("e", UPDATE, "    boot: cold\n"),
            ]
            .concat(),
            d.path(),
        );
        let k = |i: usize| setup_key(&js[i], "node", "tcg");
        assert!(k(0).is_some());
        // The same setup in two tests, at other lines: one key.
        assert_eq!(k(0), k(1));
        assert_ne!(k(0), k(2));
        assert_ne!(k(0), snapshot_key(&js[0], "node", "tcg"));
        // No setup, or a cold boot: no saved setup state.
        assert_eq!(k(3), None);
        assert_eq!(k(4), None);
        assert_ne!(k(0), setup_key(&js[0], "node", "kvm"));
        // Another build of the release the update offers: another key.
        let mut other = jobs(&t("a", UPDATE, ""), d.path());
        other[0].releases.get_mut("beta").unwrap().payload_sha256 = Some("other".into());
        assert_ne!(setup_key(&other[0], "node", "tcg"), k(0));
        // A test of several machines runs its setup itself.
        let two = jobs(
            "  - name: two\n    machines: { a: { image: stable }, b: { image: stable } }\n    setup:\n      - run: { on: a, cmd: \"true\" }\n    steps:\n      - reboot: a\n",
            d.path(),
        );
        assert_eq!(setup_key(&two[0], "a", "tcg"), None);
    }

    #[test]
    fn a_shared_setup_is_planned_once_on_the_plain_snapshot() {
        let d = tempfile::tempdir().unwrap();
        let run_once = "    setup:\n      - run: { on: node, cmd: \"true\" }\n";
        let js = jobs(
            &[
                t("a", UPDATE, ""),
                t("b", UPDATE, ""),
                t("c", UPDATE, ""),
                t("once", run_once, ""),
            ]
            .concat(),
            d.path(),
        );
        let keys = planned_keys(&js, "tcg");
        let plain = snapshot_key(&js[0], "node", "tcg").unwrap();
        let shared = setup_key(&js[0], "node", "tcg").unwrap();
        let n = |k: &str| keys.iter().filter(|x| *x == k).count();
        assert_eq!(n(&shared), 3);
        // Once for the shared setup's template, once for the test whose setup nobody shares.
        assert_eq!(n(&plain), 2);
        assert_eq!(keys.len(), 5);
        let cache = super::super::snapshot::Cache::new(d.path().join("snap"), keys);
        assert!(cache.worth(&shared) && cache.worth(&plain));
        assert_eq!(cache.templates_planned(), 2);
    }
}
