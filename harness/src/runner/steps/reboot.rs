//! `reboot`: a cold reboot from the machine's overlay, back to SSH login.

use super::common::machine_of;
use super::StepEnv;
use crate::failure::Failure;
use std::fmt::Write;

pub(super) async fn handle(env: &mut StepEnv<'_>, on: &str) -> Result<(), Failure> {
    let _ = writeln!(env.log, "reboot {on}");
    let machine = machine_of(env.machines, on);
    let (t0, resets) = (std::time::Instant::now(), machine.timeline().resets);
    machine.reboot().await?;
    machine.probe_phases().await;
    let b = machine
        .timeline()
        .boots
        .last()
        .map(|b| b.qemu_to_login_s)
        .unwrap_or(0.0);
    let resets = machine.timeline().resets - resets;
    let _ = writeln!(
        env.log,
        "{on} is back {:.1}s after the reboot request ({} QEMU start(s): {resets} guest reset(s) during boot); last QEMU start to SSH login {b:.1}s",
        t0.elapsed().as_secs_f64(),
        resets + 1
    );
    Ok(())
}
