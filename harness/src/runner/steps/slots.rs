//! The A/B slots as the running guest sees them, for the A/B verbs (update, fault, expect):
//! the slot it booted and GRUB's environment block.

use super::common::failed;
use crate::failure::{Cause, Failure};

use crate::machine::Machine;
use std::time::Duration;

/// The slot the guest booted and the other one.
pub(super) async fn slots(m: &dyn Machine, t: Duration) -> Result<(String, String), Failure> {
    let cmdline = m
        .check("cat /proc/cmdline", t)
        .await
        .map_err(|e| failed(Cause::Ssh, format!("reading /proc/cmdline: {e:#}")))?;
    let booted = booted_slot(&cmdline).ok_or_else(|| {
        failed(
            Cause::Expectation,
            format!("no rauc.slot= on the kernel command line: {cmdline}"),
        )
    })?;
    let other = if booted == "A" { "B" } else { "A" };
    Ok((booted, other.to_string()))
}

/// The boot state as the guest sees it.
pub(super) async fn grubenv(m: &dyn Machine) -> Result<String, Failure> {
    m.check(
        "sudo grub-editenv /boot/grub/grubenv list",
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| failed(Cause::Ssh, format!("reading grubenv: {e:#}")))
}

/// The slot the guest booted, from `rauc.slot=` on the kernel command line.
pub fn booted_slot(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_comes_from_the_command_line() {
        assert_eq!(
            booted_slot("BOOT_IMAGE=/vmlinuz root=PARTLABEL=ROOT-B rauc.slot=B console=ttyS0")
                .as_deref(),
            Some("B")
        );
        assert_eq!(booted_slot("root=/dev/vda1"), None);
    }
}
