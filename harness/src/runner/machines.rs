//! A test's machines and what they need around them: their options (update servers, the
//! cluster segment), booting them all at once, and the kola-style checks after the test.

use super::job::Job;
use super::trail::Log;
use super::Shared;
use crate::checks;
use crate::failure::{Cause, Failure};
use crate::machine::{Machine, MachineOpts};
use crate::suite::Checks;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

/// A test with several machines gets its own private L2 segment (Aviary's switch on unix
/// datagram sockets) in `sock_dir`; it lives as long as this test's machines. None for a test
/// without cluster NICs.
pub(super) fn cluster_segment(
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
pub(super) fn machine_opts(
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
            profile: img.profile.clone(),
            hardware: crate::machine::firmware::Hardware {
                uefi: spec.firmware.unwrap_or(img.profile.firmware)
                    == crate::profile::Firmware::Uefi,
                secure_boot: spec.secure_boot,
                tpm: spec.tpm,
            },
            memory_mib: spec.memory_mib,
            cpus: spec.cpus,
            accel: shared.info.accel.accel,
            dir: job.dir.join(&spec.name),
            sock_dir: sock_dir.to_path_buf(),
            key: shared.key.clone(),
            ignition: job.ignition.get(&spec.name).cloned(),
            seed: job.seeds.get(&spec.name).cloned(),
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
pub(super) async fn boot_all(
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
