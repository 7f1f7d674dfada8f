//! OS profiles: what one OS stack means by the words the suites use. Firmware, how a machine
//! is provisioned, the Ignition fw_cfg key, how the guest tells its booted slot, how slot state
//! is read off the disk between boots, how an `update` runs, and how each `fault` is put in —
//! or why a scenario has no meaning for the stack (the test is then reported skipped with
//! that reason).
//!
//! A profile is a file, images/profiles/NAME.yaml; a release names its profile in
//! channels.yaml (`profile:`, default [`DEFAULT`]); a path image takes it from the image.json
//! beside it. Adding a profile: write the file (every field but `provisioning` is required),
//! and where it names a mechanism Aviary lacks, add the variant here and its code where the
//! variant is matched (`runner/steps/slots.rs` for `booted_slot`, `disk::slots` for
//! `slots.offline`, `runner/steps/fault.rs` for faults, `runner/plan.rs` for `provisioning`).

mod load;

pub use load::{load, Profiles};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The profile of a release that names none: Aviary's own reference family.
pub const DEFAULT: &str = "aviary-rauc";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The file's stem, set by the loader (a file that writes it must agree); reports carry it.
    #[serde(default)]
    pub name: String,
    /// One line on the stack, for reports and `aviary images list`.
    pub about: String,
    /// How much of the profile ran here: `running` (a reference image of this stack boots
    /// in Aviary's tests) or `spec` (written from the stack's documentation, parts unit-tested).
    pub verified: Verified,
    pub firmware: Firmware,
    /// How a machine is provisioned on first boot (default `ignition`).
    #[serde(default)]
    pub provisioning: Provisioning,
    /// The fw_cfg key the image's Ignition reads its config from.
    pub ignition_fw_cfg: String,
    pub booted_slot: BootedSlot,
    pub slots: Slots,
    pub update: Mechanism,
    pub faults: Faults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verified {
    Running,
    Spec,
}

/// What provisions a machine on its first boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provisioning {
    /// Ignition, its config over fw_cfg (`ignition_fw_cfg`).
    #[default]
    Ignition,
    /// cloud-init, from a NoCloud seed disk (`cloud_init.rs`).
    CloudInit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    Bios,
    Uefi,
}

/// How the running guest tells which slot it booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootedSlot {
    /// The value of `KEY=` on the kernel command line is the slot's name (`rauc.slot=B`).
    Cmdline(String),
    /// `mount.usr=` or `usr=` on the command line names the /usr partition by PARTUUID (or
    /// PARTLABEL); the slot is that partition's (Flatcar, CoreOS).
    UsrPartition,
}

/// The two slots and where their state lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    /// The GPT partition label of each slot, A then B.
    pub partitions: SlotLabels,
    /// How slot state is read off the disk between boots.
    pub offline: Offline,
    /// Where init lives inside a slot's filesystem (the `panic` fault).
    #[serde(default)]
    pub init: Option<String>,
    /// A folder of health checks inside a slot's filesystem, run before a boot is marked
    /// good (the `health_fail` fault).
    #[serde(default)]
    pub health_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct SlotLabels {
    pub A: String,
    pub B: String,
}

impl SlotLabels {
    /// The label of slot `slot` (`A` or `B`).
    pub fn of(&self, slot: &str) -> &str {
        if slot == "B" {
            &self.B
        } else {
            &self.A
        }
    }

    /// The slot whose partition is labelled `label`.
    pub fn slot_of(&self, label: &str) -> Option<&'static str> {
        match label {
            l if l == self.A => Some("A"),
            l if l == self.B => Some("B"),
            _ => None,
        }
    }
}

/// How slot state is read off the disk while the guest is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Offline {
    /// GRUB's environment block, /grubenv on the partition labelled BOOT (RAUC's GRUB
    /// backend: ORDER, A_OK, A_TRY, …).
    GrubEnv,
    /// The gptprio attribute bits of the slots' partitions (priority, tries, successful), as
    /// Flatcar's and ChromeOS's bootloaders keep them.
    Gptprio,
}

/// A scenario's mechanism in this stack: `apply` it, or `{skip: "why"}` it has no meaning here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Aviary's update agent in the guest installs the release's RAUC bundle from Aviary's
    /// update server (through guestfwd).
    AviaryAgent,
    /// The fault is put in as the suite language describes it, with the profile's slots.
    Apply,
    Skip(String),
}

impl Mechanism {
    /// Why a test that needs this cannot run on the stack, if it cannot.
    pub fn skip_reason(&self) -> Option<&str> {
        match self {
            Mechanism::Skip(why) => Some(why),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// `fault: {corrupt: inactive-slot}`
    pub corrupt: Mechanism,
    /// `fault: {panic: inactive-slot}`
    pub panic: Mechanism,
    /// `fault: {health_fail: inactive-slot}`
    pub health_fail: Mechanism,
}

impl Faults {
    pub fn of(&self, f: crate::suite::Fault) -> &Mechanism {
        use crate::suite::Fault::*;
        match f {
            CorruptInactiveSlot => &self.corrupt,
            PanicInactiveSlot => &self.panic,
            HealthFailInactiveSlot => &self.health_fail,
        }
    }

    /// The faults by their names in the suite language, for checks and listings.
    pub fn named(&self) -> BTreeMap<&'static str, &Mechanism> {
        BTreeMap::from([
            ("corrupt", &self.corrupt),
            ("panic", &self.panic),
            ("health_fail", &self.health_fail),
        ])
    }
}

impl Default for Profile {
    fn default() -> Profile {
        Profile::reference()
    }
}

impl Profile {
    /// Aviary's reference family as built in code: the profile file's content, for tests
    /// and for reports written before profiles.
    pub fn reference() -> Profile {
        static REFERENCE: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        REFERENCE
            .get_or_init(|| {
                let text = include_str!("../../../images/profiles/aviary-rauc.yaml");
                load::parse(
                    std::path::Path::new("images/profiles/aviary-rauc.yaml"),
                    text,
                )
                .expect("images/profiles/aviary-rauc.yaml is valid")
            })
            .clone()
    }

    /// Why `step`, run on a machine of this profile, has no meaning for the stack.
    pub fn skip_reason(&self, step: &crate::suite::StepKind) -> Option<String> {
        use crate::suite::StepKind;
        let (what, m) = match step {
            StepKind::Update(_) => ("update".to_string(), &self.update),
            StepKind::Fault(f) => (format!("fault {}", fault_name(*f)), self.faults.of(*f)),
            _ => return None,
        };
        m.skip_reason()
            .map(|why| format!("profile {}: {what}: {why}", self.name))
    }
}

/// A fault's name in the suite language.
pub fn fault_name(f: crate::suite::Fault) -> &'static str {
    use crate::suite::Fault::*;
    match f {
        CorruptInactiveSlot => "corrupt",
        PanicInactiveSlot => "panic",
        HealthFailInactiveSlot => "health_fail",
    }
}
