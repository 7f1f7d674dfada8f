//! `fault`: breaks the freshly installed (inactive) slot from inside the guest, as root.

use super::common::{failed, machine_of};
use super::slots::slots;
use super::StepEnv;
use crate::failure::{Cause, Failure};
use crate::profile::{fault_name, Profile};
use crate::suite::Fault;
use std::fmt::Write;
use std::time::Duration;

pub(super) async fn handle(env: &mut StepEnv<'_>, on: &str, f: Fault) -> Result<(), Failure> {
    let m = machine_of(env.machines, on);
    let (_, inactive) = slots(m, Duration::from_secs(60)).await?;
    let cmd = command(m.profile(), f, &inactive)?;
    let dev = format!(
        "/dev/disk/by-partlabel/{}",
        m.profile().slots.partitions.of(&inactive)
    );
    let out = m
        .exec(&cmd, Duration::from_secs(120))
        .await
        .map_err(|e| failed(Cause::Ssh, format!("applying fault {f:?}: {e:#}")))?;
    if out.status != 0 {
        return Err(Failure::harness(
            Cause::Host,
            format!(
                "applying fault {f:?} to slot {inactive} failed (exit {}): {}",
                out.status,
                out.stderr.trim()
            ),
        ));
    }
    let _ = writeln!(env.log, "fault {f:?} applied to slot {inactive} ({dev})");
    Ok(())
}

/// The shell command that puts fault `f` into slot `inactive`, by the profile's slots: the
/// partition's label, init's path and the health-check folder inside the slot.
fn command(p: &Profile, f: Fault, inactive: &str) -> Result<String, Failure> {
    if let Some(why) = p.faults.of(f).skip_reason() {
        return Err(Failure::harness(
            Cause::Host,
            format!("profile {}: fault {}: {why}", p.name, fault_name(f)),
        ));
    }
    let dev = format!("/dev/disk/by-partlabel/{}", p.slots.partitions.of(inactive));
    let mnt = "sudo mkdir -p /run/aviary-fault && sudo mount $D /run/aviary-fault";
    let umnt = "sudo umount /run/aviary-fault";
    let missing =
        |what: &str| Failure::harness(Cause::Host, format!("profile {}: no slots.{what}", p.name));
    Ok(match f {
        Fault::CorruptInactiveSlot => format!(
            "D={dev}; sudo dd if=/dev/zero of=$D bs=1M count=8 conv=fsync status=none && sync"
        ),
        Fault::PanicInactiveSlot => {
            let init = p.slots.init.as_deref().ok_or_else(|| missing("init"))?;
            format!("D={dev}; {mnt} && sudo ln -sf /bin/false /run/aviary-fault/{init} && {umnt} && sync")
        }
        Fault::HealthFailInactiveSlot => {
            let d = p
                .slots
                .health_dir
                .as_deref()
                .ok_or_else(|| missing("health_dir"))?;
            format!(
                "D={dev}; {mnt} && sudo mkdir -p /run/aviary-fault/{d} && printf '#!/bin/sh\\necho forced health failure >&2\\nexit 1\\n' | sudo tee /run/aviary-fault/{d}/99-aviary-fault >/dev/null && sudo chmod 755 /run/aviary-fault/{d}/99-aviary-fault && {umnt} && sync"
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_profile_gives_the_commands_it_always_ran() {
        let p = Profile::reference();
        let c = command(&p, Fault::CorruptInactiveSlot, "B").unwrap();
        assert!(
            c.starts_with("D=/dev/disk/by-partlabel/ROOT-B; sudo dd"),
            "{c}"
        );
        let c = command(&p, Fault::PanicInactiveSlot, "A").unwrap();
        assert!(
            c.contains("ln -sf /bin/false /run/aviary-fault/usr/sbin/init"),
            "{c}"
        );
        let c = command(&p, Fault::HealthFailInactiveSlot, "A").unwrap();
        assert!(
            c.contains("/run/aviary-fault/etc/aviary/health.d/99-aviary-fault"),
            "{c}"
        );
        assert!(c.contains("printf '#!/bin/sh\\necho forced"), "{c}");
    }

    #[test]
    fn a_fault_the_profile_skips_is_a_harness_error_naming_why() {
        let mut p = Profile::reference();
        p.faults.health_fail = crate::profile::Mechanism::Skip("no health folder".into());
        let e = command(&p, Fault::HealthFailInactiveSlot, "A").unwrap_err();
        assert!(e.message.contains("no health folder"), "{}", e.message);
    }
}
