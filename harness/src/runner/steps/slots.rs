//! The A/B slots as the running guest sees them, for the A/B verbs (update, fault, expect):
//! the slot it booted, by its OS profile's rule, and GRUB's environment block.

use super::common::failed;
use crate::failure::{Cause, Failure};
use crate::machine::Machine;
use crate::profile::{BootedSlot, Profile};
use std::time::Duration;

/// The slot the guest booted and the other one.
pub(super) async fn slots(m: &dyn Machine, t: Duration) -> Result<(String, String), Failure> {
    let cmdline = m
        .check("cat /proc/cmdline", t)
        .await
        .map_err(|e| failed(Cause::Ssh, format!("reading /proc/cmdline: {e:#}")))?;
    let profile = m.profile();
    let booted = match booted_slot(profile, &cmdline) {
        Booted::Slot(s) => s,
        Booted::ByPartuuid(uuid) => {
            // The guest's udev names the partition: its label says the slot.
            let cmd = format!("lsblk -no PARTLABEL /dev/disk/by-partuuid/{uuid}");
            let label = m
                .check(&cmd, t)
                .await
                .map_err(|e| failed(Cause::Ssh, format!("reading partition {uuid}: {e:#}")))?;
            slot_of_label(profile, label.trim()).ok_or_else(|| {
                failed(
                    Cause::Expectation,
                    format!(
                        "/usr partition {uuid} is labelled `{}`, no slot of profile {}",
                        label.trim(),
                        profile.name
                    ),
                )
            })?
        }
        Booted::Unknown(why) => return Err(failed(Cause::Expectation, why)),
    };
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

/// What the kernel command line says of the booted slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Booted {
    Slot(String),
    /// The /usr partition by PARTUUID: the guest is asked for its label.
    ByPartuuid(String),
    Unknown(String),
}

/// The slot the guest booted, by `profile`'s rule, from its kernel command line.
pub fn booted_slot(profile: &Profile, cmdline: &str) -> Booted {
    let words = || cmdline.split_whitespace();
    match &profile.booted_slot {
        BootedSlot::Cmdline(key) => {
            let prefix = format!("{key}=");
            match words().find_map(|w| w.strip_prefix(&prefix)) {
                Some(s) => Booted::Slot(s.to_string()),
                None => Booted::Unknown(format!("no {key}= on the kernel command line: {cmdline}")),
            }
        }
        BootedSlot::UsrPartition => {
            // systemd reads mount.usr=, Flatcar's dracut also usr=; with dm-verity mount.usr=
            // is /dev/mapper/usr and verity.usr= names the partition.
            let named = |w: &str| {
                w.starts_with("PARTUUID=")
                    || w.starts_with("PARTLABEL=")
                    || w.starts_with("/dev/disk/by-partlabel/")
            };
            let usr = ["verity.usr=", "mount.usr=", "usr="]
                .iter()
                .find_map(|k| words().find_map(|w| w.strip_prefix(k)).filter(|v| named(v)));
            let Some(usr) = usr else {
                return Booted::Unknown(format!(
                    "no verity.usr=, mount.usr= or usr= naming a partition on the kernel command line: {cmdline}"
                ));
            };
            if let Some(uuid) = usr.strip_prefix("PARTUUID=") {
                return Booted::ByPartuuid(uuid.to_ascii_lowercase());
            }
            let label = usr
                .strip_prefix("PARTLABEL=")
                .or_else(|| usr.strip_prefix("/dev/disk/by-partlabel/"));
            match label.and_then(|l| slot_of_label(profile, l)) {
                Some(s) => Booted::Slot(s),
                None => Booted::Unknown(format!(
                    "/usr is `{usr}`: not a partition of profile {}'s slots",
                    profile.name
                )),
            }
        }
    }
}

fn slot_of_label(profile: &Profile, label: &str) -> Option<String> {
    profile.slots.partitions.slot_of(label).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatcar() -> Profile {
        let mut p = Profile::reference();
        p.name = "flatcar".into();
        p.booted_slot = BootedSlot::UsrPartition;
        p.slots.partitions.A = "USR-A".into();
        p.slots.partitions.B = "USR-B".into();
        p
    }

    #[test]
    fn slot_comes_from_the_profiles_command_line_key() {
        let p = Profile::reference();
        let line = "BOOT_IMAGE=/vmlinuz root=PARTLABEL=ROOT-B rauc.slot=B console=ttyS0";
        assert_eq!(booted_slot(&p, line), Booted::Slot("B".into()));
        assert!(
            matches!(booted_slot(&p, "root=/dev/vda1"), Booted::Unknown(w) if w.contains("rauc.slot="))
        );
    }

    #[test]
    fn a_usr_slot_comes_from_mount_usr_or_usr() {
        let p = flatcar();
        // As Flatcar's GRUB writes it (dm-verity over the USR partition).
        let line = "BOOT_IMAGE=/flatcar/vmlinuz-b mount.usr=/dev/mapper/usr verity.usr=PARTUUID=E03DD35C-7C2D-4A47-B3FE-27F15780A57C rootflags=rw mount.usrflags=ro root=LABEL=ROOT";
        let uuid = Booted::ByPartuuid("e03dd35c-7c2d-4a47-b3fe-27f15780a57c".into());
        assert_eq!(booted_slot(&p, line), uuid);
        assert_eq!(
            booted_slot(&p, "usr=PARTUUID=E03DD35C-7C2D-4A47-B3FE-27F15780A57C"),
            uuid
        );
        assert_eq!(
            booted_slot(&p, "mount.usr=PARTLABEL=USR-B"),
            Booted::Slot("B".into())
        );
        assert!(matches!(
            booted_slot(&p, "mount.usr=PARTLABEL=ROOT"),
            Booted::Unknown(_)
        ));
        assert!(matches!(
            booted_slot(&p, "root=LABEL=ROOT"),
            Booted::Unknown(_)
        ));
    }
}
