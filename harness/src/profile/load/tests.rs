use super::*;
use crate::profile::{BootedSlot, Firmware, Mechanism, Offline, Verified};

fn parse_at(text: &str) -> Result<Profile, String> {
    parse(Path::new("images/profiles/x.yaml"), text).map_err(|e| e.to_string())
}

const RAUC: &str = include_str!("../../../../images/profiles/aviary-rauc.yaml");
const FLATCAR: &str = include_str!("../../../../images/profiles/flatcar.yaml");

#[test]
fn the_shipped_profiles_read() {
    let p = Profile::reference();
    assert_eq!(p.name, "aviary-rauc");
    assert_eq!(p.firmware, Firmware::Bios);
    assert_eq!(p.verified, Verified::Running);
    assert_eq!(p.booted_slot, BootedSlot::Cmdline("rauc.slot".into()));
    assert_eq!(p.slots.offline, Offline::GrubEnv);
    assert_eq!(p.slots.partitions.of("B"), "ROOT-B");
    assert_eq!(p.update, Mechanism::AviaryAgent);
    let f = parse(Path::new("flatcar.yaml"), FLATCAR).unwrap();
    assert_eq!(f.name, "flatcar");
    assert_eq!(f.ignition_fw_cfg, "opt/org.flatcar-linux/config");
    assert_eq!(f.booted_slot, BootedSlot::UsrPartition);
    assert_eq!(f.slots.partitions.slot_of("USR-B"), Some("B"));
    assert!(f.update.skip_reason().unwrap().contains("update_engine"));
    assert!(f.faults.health_fail.skip_reason().is_some());
}

#[test]
fn an_incomplete_profile_names_the_file_and_what_is_missing() {
    let text = RAUC.replace("update: aviary-agent\n", "");
    let e = parse_at(&text).unwrap_err();
    assert!(e.starts_with("images/profiles/x.yaml:"), "{e}");
    assert!(e.contains("update"), "{e}");
}

#[test]
fn an_unknown_mechanism_is_refused_at_its_line() {
    let text = RAUC.replace("offline: grub-env", "offline: systemd-boot");
    let e = parse_at(&text).unwrap_err();
    let line = RAUC.lines().position(|l| l.contains("offline:")).unwrap() + 1;
    assert!(e.contains(&format!("x.yaml:{line}:")), "{e}");
    assert!(e.contains("systemd-boot"), "{e}");
}

#[test]
fn a_fault_applied_without_what_it_needs_is_refused_at_the_fault() {
    let text = RAUC.replace("  health_dir: etc/aviary/health.d\n", "");
    let e = parse_at(&text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.contains("health_fail:"))
        .unwrap()
        + 1;
    assert!(
        e.contains(&format!("x.yaml:{line}:")) && e.contains("faults.health_fail"),
        "{e}"
    );
    assert!(e.contains("slots.health_dir"), "{e}");
}

#[test]
fn a_skip_must_say_why_and_update_cannot_be_applied() {
    let e = parse_at(&RAUC.replace("corrupt: apply", "corrupt: { skip: \" \" }")).unwrap_err();
    assert!(
        e.contains("faults.corrupt") && e.contains("says why"),
        "{e}"
    );
    let e = parse_at(&RAUC.replace("update: aviary-agent", "update: apply")).unwrap_err();
    assert!(e.contains(": update:"), "{e}");
    let e = parse_at(&RAUC.replace("opt/com.coreos/config", "com.coreos/config")).unwrap_err();
    assert!(e.contains("ignition_fw_cfg"), "{e}");
}

#[test]
fn profiles_are_found_by_name_and_an_unknown_one_lists_the_known() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aviary-rauc.yaml"), RAUC).unwrap();
    std::fs::write(dir.path().join("flatcar.yaml"), FLATCAR).unwrap();
    let ps = Profiles::new(dir.path().to_path_buf());
    assert_eq!(ps.get("flatcar").unwrap().name, "flatcar");
    let e = ps.get("fedora-coreos").unwrap_err();
    assert!(e.contains("known: aviary-rauc, flatcar"), "{e}");
    assert!(ps.get("../etc/passwd").is_err());
}
