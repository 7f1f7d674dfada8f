//! Templates: the boot-once snapshot of a machine (its image and provisioning config) and the
//! state saved after a test's shared `setup:` steps. The first machine that needs one makes
//! it (`make_template`); every later machine with the same key starts from it. A template
//! that fails says why, and whether the candidate is at fault (`TemplateError`): the tests
//! waiting on it then fail at once with its cause, or boot cold when the harness was at fault.

use super::job::Job;
use super::machines::{aviary_exe, post_checks, update_servers};
use super::result::UpdateRecord;
use super::snapshot::TemplateError;
use super::steps::run_steps;
use super::trail::{Log, Trail};
use super::Shared;
use crate::failure::{Blame, Cause, Failure};
use crate::machine::MachineOpts;
use crate::suite::{BootMode, Checks};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

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
    // A machine on UEFI, with a TPM or a cloud-init seed keeps state outside its disk and memory (its variable
    // store, its TPM's): it boots cold.
    let firmware = spec.firmware.unwrap_or(img.profile.firmware);
    if firmware != crate::profile::Firmware::Bios || spec.tpm || job.seeds.contains_key(machine) {
        return None;
    }
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
        parts.push(step.on.clone().into_bytes());
        // The verb and its arguments, serialized field by field (serde), not their Debug text.
        parts.push(serde_json::to_vec(&step.kind).ok()?);
        match &step.kind {
            crate::suite::StepKind::Update(u) => {
                let rel = job.releases.get(&u.to)?;
                parts.push(rel.sha256.clone().into_bytes());
                parts.push(rel.payload_sha256.clone().unwrap_or_default().into_bytes());
            }
            crate::suite::StepKind::Copy(c) if c.direction == crate::suite::CopyDirection::In => {
                parts.push(std::fs::read(&c.from).ok()?)
            }
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
        .filter(|j| j.skip.is_none())
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

/// A machine's options, pointed at its template when it has one, and the setup's updates when
/// it starts after a shared setup (the test then skips its setup steps).
pub(super) type Prepared = (MachineOpts, Option<Vec<UpdateRecord>>);

/// Points `o` at the saved state after the test's setup when the plan shares one (making it
/// first if no test made it yet). Otherwise, or if that template failed for the harness, as
/// `from_snapshot`, and the setup runs in the test. A template that failed for the candidate
/// fails the test at once with its cause (`Err`, the failure's message).
pub(super) async fn after_setup_or_snapshot(
    mut o: MachineOpts,
    job: &Job,
    shared: &Shared,
    notes: &std::sync::Mutex<Vec<String>>,
) -> Result<Prepared, Failure> {
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
                    return Ok((o, Some(t.updates.clone())));
                }
                Err(e) if e.fails(job.test.checks) => {
                    return Err(shared_failure(
                        &o.name,
                        "the state saved after the setup",
                        &e,
                        &key,
                    ))
                }
                Err(e) => note(format!(
                    "{}: no snapshot after the setup ({e}); the test runs its setup itself",
                    o.name
                )),
            }
        }
    }
    Ok((from_snapshot(o, job, shared, notes).await?, None))
}

/// The failure of a test whose machine waited on a template that failed for the candidate.
fn shared_failure(machine: &str, what: &str, e: &TemplateError, key: &str) -> Failure {
    Failure::candidate(
        e.cause(),
        format!(
            "machine `{machine}` starts from {what}, and making it failed: {e} (its console, journal and steps: snapshots/{key}/)"
        ),
    )
}

/// Starts a machine (from its plain snapshot when there is one) with an update server of its
/// own, and makes the template after the test's setup steps (`make_template`).
async fn make_setup_template(
    mut o: MachineOpts,
    dir: PathBuf,
    key: String,
    job: &Job,
    shared: &Shared,
) -> Result<super::snapshot::Template, TemplateError> {
    let harness = TemplateError::Harness;
    std::fs::create_dir_all(&dir)
        .map_err(|e| harness(format!("creating {}: {e}", dir.display())))?;
    let servers = update_servers(&job.test.steps[..job.test.setup])
        .await
        .map_err(harness)?;
    o.guestfwd = servers.get(&o.name).map(|s| s.guestfwd(&aviary_exe()));
    let notes = std::sync::Mutex::new(Vec::new());
    let o = from_snapshot(o, job, shared, &notes)
        .await
        .map_err(TemplateError::Boot)?;
    let mut log = Log::new(None);
    for n in notes.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(log, "{n}");
    }
    let setup = Setup {
        job,
        servers: &servers,
        trail: Trail {
            log,
            updates: Vec::new(),
        },
    };
    make_template(o, dir, key, shared, Some(setup)).await
}

/// Points `o` at the snapshot of its image and config when the test allows one; makes the
/// snapshot first if this run has none yet. A template that failed for the harness means a
/// cold boot, noted in the steps log; one that failed for the candidate fails the test at
/// once with its cause (`Err`).
async fn from_snapshot(
    mut o: MachineOpts,
    job: &Job,
    shared: &Shared,
    notes: &std::sync::Mutex<Vec<String>>,
) -> Result<MachineOpts, Failure> {
    let note = |s: String| notes.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    let Some(cache) = shared.snapshots.as_ref() else {
        return Ok(o);
    };
    let accel = shared.info.accel.accel.to_string();
    let Some(key) = snapshot_key(job, &o.name, &accel) else {
        return Ok(o);
    };
    if !cache.worth(&key) {
        return Ok(o);
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
        Err(e) if e.fails(job.test.checks) => {
            return Err(shared_failure(
                &o.name,
                "the boot-once snapshot of its image and config",
                &e,
                &key,
            ))
        }
        Err(e) => note(format!("{}: no snapshot ({e}); booting cold", o.name)),
    }
    Ok(o)
}

/// Copies a template's logs to the run folder when dropped: whatever ends its making.
struct KeepLogs {
    dir: PathBuf,
    run_dir: PathBuf,
    key: String,
}

impl Drop for KeepLogs {
    fn drop(&mut self) {
        super::snapshot::keep_logs(&self.dir, &self.run_dir, &self.key);
    }
}

/// The steps a template runs after its boot: a test's setup, on servers of its own.
struct Setup<'a> {
    job: &'a Job,
    servers: &'a BTreeMap<String, crate::update_server::UpdateServer>,
    /// The log so far (how the machine starts); the setup's steps and updates are added to it.
    trail: Trail,
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
) -> Result<super::snapshot::Template, TemplateError> {
    o.dir = dir.clone();
    let name = o.name.clone();
    let t0 = Instant::now();
    // The template's logs reach the run folder even if a waiting test's timeout drops this.
    let _logs = KeepLogs {
        dir: dir.clone(),
        run_dir: shared.info.dir.clone(),
        key: key.clone(),
    };
    let mut machines = BTreeMap::new();
    machines.insert(
        name.clone(),
        shared
            .platform
            .create(o)
            .await
            .map_err(|e| TemplateError::Harness(e.to_string()))?,
    );
    let mut ready_s = 0.0;
    let made: Result<(), TemplateError> = async {
        let m = machines.get_mut(&name).expect("inserted");
        m.boot().await.map_err(|e| match Failure::from(e) {
            f if f.blame == Blame::Harness => TemplateError::Harness(f.detail),
            f => TemplateError::Boot(f),
        })?;
        if let Some(Setup {
            job,
            servers,
            trail,
        }) = setup.as_mut()
        {
            let setup = 0..job.test.setup;
            match run_steps(job, setup, &mut machines, servers, shared, &dir, trail).await {
                Ok(()) => {}
                Err(f) if f.blame == Blame::Candidate => return Err(TemplateError::Setup(f)),
                Err(f) => {
                    return Err(TemplateError::Harness(format!(
                        "the setup failed: {}",
                        f.message
                    )))
                }
            }
        }
        ready_s = t0.elapsed().as_secs_f64();
        let m = machines.get_mut(&name).expect("inserted");
        let findings = post_checks(Checks::default(), &name, m.as_mut(), shared).await;
        if findings.is_empty() {
            Ok(())
        } else if setup.is_some() {
            Err(TemplateError::Setup(Failure::candidate(
                Cause::Checks,
                format!("after it, the checks found: {}", findings.join("; ")),
            )))
        } else {
            Err(TemplateError::Checks(findings.join("; ")))
        }
    }
    .await;
    let m = machines.get_mut(&name).expect("inserted");
    let t1 = Instant::now();
    let state = dir.join("state");
    let saved = match made {
        Ok(()) => m
            .save_state(&state)
            .await
            .map_err(|e| TemplateError::Harness(e.to_string())),
        Err(why) => {
            m.shutdown().await;
            Err(why)
        }
    };
    if let Some(s) = &setup {
        let _ = std::fs::write(dir.join("setup.log"), s.trail.log.as_str());
    }
    let state_bytes = saved?;
    Ok(super::snapshot::Template {
        key,
        disk: m.overlay().to_path_buf(),
        state,
        boot_s: ready_s,
        save_s: t1.elapsed().as_secs_f64(),
        state_bytes,
        updates: setup
            .as_ref()
            .map(|s| s.trail.updates.clone())
            .unwrap_or_default(),
        setup: setup.map(|s| s.trail.log.into_text()),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn image(name: &str, sha: &str) -> crate::images::ResolvedImage {
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
            profile: Default::default(),
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
            .map(|t| {
                let mut j = on_stable(t, dir.to_path_buf(), &ign);
                j.releases = [("beta".to_string(), image("beta", "b1"))].into();
                j
            })
            .collect()
    }

    /// The job of `t` in `dir`, every machine on `stable` (digest `s1`) with the Ignition
    /// config `ign`, offering no updates.
    pub(crate) fn on_stable(t: crate::suite::Test, dir: PathBuf, ign: &std::path::Path) -> Job {
        Job {
            images: t
                .machines
                .iter()
                .map(|m| (m.name.clone(), image("stable", "s1")))
                .collect(),
            ignition: t
                .machines
                .iter()
                .map(|m| (m.name.clone(), ign.to_path_buf()))
                .collect(),
            releases: Default::default(),
            dir,
            attempt: 0,
            excerpt: String::new(),
            skip: None,
            seeds: Default::default(),
            test: t,
        }
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
