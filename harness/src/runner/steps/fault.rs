//! `fault`: breaks the freshly installed (inactive) slot from inside the guest, as root.

use super::common::{failed, machine_of};
use super::slots::slots;
use super::StepEnv;
use crate::failure::{Cause, Failure};
use crate::suite::Fault;
use std::fmt::Write;
use std::time::Duration;

pub(super) async fn handle(env: &mut StepEnv<'_>, on: &str, f: Fault) -> Result<(), Failure> {
    let m = machine_of(env.machines, on);
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
