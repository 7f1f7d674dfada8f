//! A/B steps: updates through the update server and the guest's agent, forced faults in the
//! inactive slot, and slot state read offline from the disk.

use super::result::{UpdateOutcome, UpdateRecord};
use super::steps::StepError;
use crate::disk::{self, SlotState};
use crate::machine::Machine;
use crate::suite::{DiskExpect, Fault, PayloadFault};
use crate::update_server::{Offer, UpdateServer};
use regex::Regex;
use std::fmt::Write;
use std::time::Duration;

fn failed(m: String) -> StepError {
    StepError::Failed(m)
}

/// The slot the guest booted and the other one.
async fn slots(m: &Machine, t: Duration) -> Result<(String, String), StepError> {
    let cmdline = m
        .ssh()?
        .check("cat /proc/cmdline", t)
        .await
        .map_err(|e| failed(format!("reading /proc/cmdline: {e:#}")))?;
    let booted = super::steps::booted_slot(&cmdline).ok_or_else(|| {
        failed(format!(
            "no rauc.slot= on the kernel command line: {cmdline}"
        ))
    })?;
    let other = if booted == "A" { "B" } else { "A" };
    Ok((booted, other.to_string()))
}

/// The boot state as the guest sees it.
async fn grubenv(m: &Machine) -> Result<String, StepError> {
    m.ssh()?
        .check(
            "sudo grub-editenv /boot/grub/grubenv list",
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| failed(format!("reading grubenv: {e:#}")))
}

pub struct UpdateArgs<'a> {
    pub offer: Offer,
    pub payload: Option<PayloadFault>,
    pub refused: bool,
    pub cut_power: bool,
    pub timeout: Duration,
    pub log: &'a mut String,
    /// What became of the offer, filled in as the step learns it (it starts as `Failed`).
    pub record: &'a mut UpdateRecord,
}

/// The seconds the agent reports after `label` ("downloaded N bytes in 12.3s", "RAUC wrote
/// slot B in 4.5s").
fn agent_seconds(out: &str, label: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.split_once(label).map(|(_, rest)| rest))
        .find_map(|rest| {
            let (_, tail) = rest.rsplit_once(" in ")?;
            tail.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()?
                .parse()
                .ok()
        })
}

const AGENT: &str = "sudo aviary-update-agent --server http://10.0.2.100";

/// Offers a release to the machine and runs its update agent.
pub async fn update(
    m: &mut Machine,
    server: &UpdateServer,
    a: UpdateArgs<'_>,
) -> Result<(), StepError> {
    let t = a.timeout;
    let (booted, inactive) = slots(m, Duration::from_secs(60)).await?;
    server.offer(Some(a.offer.clone()));
    server.set_fault(a.payload);
    let before = grubenv(m).await?;
    if a.cut_power {
        // Start the agent, wait for RAUC to report writing the slot, then pull the plug.
        let mark = m.console.mark();
        m.ssh()?
            .fire(&format!("{AGENT} >/dev/null 2>&1"))
            .await
            .map_err(|e| failed(format!("starting the update agent: {e:#}")))?;
        let writing =
            Regex::new(r"aviary-update-agent: .*(Copying image|installing)").expect("static regex");
        let console = m.console.clone();
        let line = tokio::time::timeout(t, console.wait_for(mark, &writing))
            .await
            .map_err(|_| {
                failed(format!(
                    "the agent never reported writing slot {inactive} within {:.0}s",
                    t.as_secs_f64()
                ))
            })?;
        let _ = writeln!(
            a.log,
            "console: {line}\ncutting the power (QMP quit) while slot {inactive} is written"
        );
        a.record.outcome = UpdateOutcome::PowerCut;
        m.power_cut().await?;
        m.boot().await?;
        let _ = writeln!(a.log, "booted again after the power cut");
        server.offer(None);
        return Ok(());
    }
    let out = m
        .ssh()?
        .exec(&format!("{AGENT} 2>&1"), t)
        .await
        .map_err(|e| failed(format!("running the update agent: {e:#}")))?;
    let _ = writeln!(
        a.log,
        "$ {AGENT}  # exit {}\n{}",
        out.status,
        out.stdout.trim_end()
    );
    server.offer(None);
    server.set_fault(None);
    a.record.download_s = agent_seconds(&out.stdout, "aviary-update-agent: downloaded ");
    a.record.write_s = agent_seconds(&out.stdout, "aviary-update-agent: RAUC wrote slot ");
    let requests: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.status, r.path))
        .collect();
    let _ = writeln!(a.log, "update server saw: {}", requests.join(", "));
    let sentinel = m
        .ssh()?
        .exec("test -e /run/reboot-required", Duration::from_secs(60))
        .await
        .map_err(|e| failed(format!("{e:#}")))?
        .status
        == 0;
    a.record.outcome = match out.status {
        0 if sentinel => UpdateOutcome::Installed,
        2 => UpdateOutcome::Refused,
        _ => UpdateOutcome::Failed,
    };
    if a.refused {
        if out.status == 0 {
            return Err(failed(format!(
                "expected the update to {} to be refused ({:?} payload), but the agent installed it:\n{}",
                a.offer.release,
                a.payload,
                out.stdout.trim_end()
            )));
        }
        let after = grubenv(m).await?;
        if after != before || sentinel {
            return Err(failed(format!(
                "the refused update changed the boot state (slot {inactive}):\nbefore:\n{before}\nafter:\n{after}reboot-required: {sentinel}"
            )));
        }
        return Ok(());
    }
    if out.status != 0 {
        return Err(failed(format!(
            "the update agent failed (exit {}) installing {} {} into slot {inactive}:\n{}",
            out.status,
            a.offer.release,
            a.offer.version,
            out.stdout.trim_end()
        )));
    }
    if !sentinel {
        return Err(failed(
            "the agent succeeded but wrote no /run/reboot-required".into(),
        ));
    }
    let _ = writeln!(
        a.log,
        "installed {} {} into slot {inactive} (booted {booted})",
        a.offer.release, a.offer.version
    );
    Ok(())
}

/// Breaks the inactive slot from inside the guest (as root).
pub async fn fault(m: &mut Machine, f: Fault, log: &mut String) -> Result<(), StepError> {
    let (_, inactive) = slots(m, Duration::from_secs(60)).await?;
    let dev = format!("/dev/disk/by-partlabel/ROOT-{inactive}");
    let mnt = "sudo mkdir -p /run/aviary-fault && sudo mount $D /run/aviary-fault";
    let umnt = "sudo umount /run/aviary-fault";
    let cmd = match f {
        Fault::CorruptInactiveSlot => format!("D={dev}; sudo dd if=/dev/zero of=$D bs=1M count=8 conv=fsync status=none && sync"),
        Fault::PanicInactiveSlot => format!(
            "D={dev}; {mnt} && sudo ln -sf /bin/false /run/aviary-fault/usr/sbin/init && {umnt} && sync"
        ),
        Fault::HealthFailInactiveSlot => format!(
            "D={dev}; {mnt} && sudo mkdir -p /run/aviary-fault/etc/aviary/health.d && printf '#!/bin/sh\\necho forced health failure >&2\\nexit 1\\n' | sudo tee /run/aviary-fault/etc/aviary/health.d/99-aviary-fault >/dev/null && sudo chmod 755 /run/aviary-fault/etc/aviary/health.d/99-aviary-fault && {umnt} && sync"
        ),
    };
    let out = m
        .ssh()?
        .exec(&cmd, Duration::from_secs(120))
        .await
        .map_err(|e| failed(format!("applying fault {f:?}: {e:#}")))?;
    if out.status != 0 {
        return Err(StepError::Infra(format!(
            "applying fault {f:?} to slot {inactive} failed (exit {}): {}",
            out.status,
            out.stderr.trim()
        )));
    }
    let _ = writeln!(log, "fault {f:?} applied to slot {inactive} ({dev})");
    Ok(())
}

/// Reads slot state from the machine's disk: the guest flushes, QEMU pauses, the host reads
/// the overlay through qemu-img (no mount, no root), QEMU resumes.
pub async fn disk_slots(m: &mut Machine) -> Result<Vec<SlotState>, StepError> {
    let running = m.is_running();
    if running {
        if let Ok(ssh) = m.ssh() {
            let _ = ssh.exec("sync", Duration::from_secs(60)).await;
        }
        m.qmp("stop", serde_json::json!({})).await?;
    }
    let overlay = m.overlay().to_path_buf();
    let r = tokio::task::spawn_blocking(move || disk::grub_slots(&overlay)).await;
    if running {
        m.qmp("cont", serde_json::json!({})).await?;
    }
    r.map_err(|e| StepError::Infra(e.to_string()))?
        .map_err(|e| StepError::Infra(format!("{e:#}")))
}

/// Compares the expected slot state with what the disk says.
pub fn check_disk(want: &DiskExpect, seen: &[SlotState]) -> Result<(), String> {
    let slot = want.slot.to_string();
    let s = seen
        .iter()
        .find(|s| s.slot == slot)
        .ok_or_else(|| format!("slot {slot} is not in the boot order"))?;
    let mut bad = Vec::new();
    for (name, w, v) in [
        ("active", want.active, s.active),
        ("tried", want.tried, s.tried),
        ("good", want.good, s.good),
    ] {
        if let Some(w) = w {
            if w != v {
                bad.push(format!("{name}: expected {w}, seen {v}"));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "disk slot {slot}: {} (all slots: {})",
            bad.join(", "),
            describe(seen)
        ))
    }
}

pub fn describe(seen: &[SlotState]) -> String {
    seen.iter()
        .map(|s| {
            format!(
                "{}{}{}{}",
                s.slot,
                if s.active { " active" } else { "" },
                if s.tried { " tried" } else { "" },
                if s.good { " good" } else { " not-good" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Slot;

    fn st(slot: &str, active: bool, tried: bool, good: bool) -> SlotState {
        SlotState {
            slot: slot.into(),
            active,
            tried,
            good,
            priority: 1,
        }
    }

    #[test]
    fn disk_expectations_name_expected_and_seen() {
        let seen = vec![st("A", true, false, true), st("B", false, true, false)];
        let want = DiskExpect {
            slot: Slot::B,
            active: None,
            tried: Some(true),
            good: Some(false),
        };
        assert!(check_disk(&want, &seen).is_ok());
        let want = DiskExpect {
            slot: Slot::B,
            active: Some(true),
            tried: None,
            good: Some(true),
        };
        let e = check_disk(&want, &seen).unwrap_err();
        assert!(e.contains("active: expected true, seen false"), "{e}");
        assert!(e.contains("good: expected true, seen false"), "{e}");
        assert!(e.contains("A active good; B tried not-good"), "{e}");
    }
}

#[cfg(test)]
mod agent_tests {
    use super::agent_seconds;

    #[test]
    fn reads_the_agents_download_and_write_seconds() {
        let out = "aviary-update-agent: downloading http://10.0.2.100/p\n\
                   aviary-update-agent: downloaded 234064148 bytes in 15.8s, sha256 ok\n\
                   aviary-update-agent: installing 1001.0.0 into slot B (RAUC: Copying image)\n\
                   aviary-update-agent: RAUC wrote slot B in 11.2s\n";
        let d = agent_seconds(out, "aviary-update-agent: downloaded ");
        assert_eq!(d, Some(15.8));
        let w = agent_seconds(out, "aviary-update-agent: RAUC wrote slot ");
        assert_eq!(w, Some(11.2));
        assert_eq!(agent_seconds("refused: short file", "downloaded "), None);
    }
}
