//! The suite file exactly as written: serde types with source spans.
//! `load.rs` turns these into the validated model in `model.rs`. A step's types are beside
//! its validation, in `verbs/`.

use super::verbs::StepDef;
use serde::Deserialize;
use std::collections::BTreeMap;

pub use super::validator::S;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub suite: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Defaults applied to every test of the suite.
    #[serde(default)]
    pub defaults: Option<Defaults>,
    /// A place to define YAML anchors (`&name`) for tests to reuse; otherwise ignored.
    #[serde(default, rename = "anchors")]
    pub _anchors: Option<serde::de::IgnoredAny>,
    pub tests: S<Vec<TestDef>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub image: Option<S<String>>,
    /// `snapshot` (default) or `cold`: see TestDef::boot.
    #[serde(default)]
    pub boot: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestDef {
    pub name: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub machines: S<BTreeMap<String, S<MachineDef>>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    /// kola-style opt-outs: `checks: { console: false }`.
    #[serde(default)]
    pub checks: Option<ChecksDef>,
    /// `snapshot`: machines start from a boot-once snapshot of their image and config when
    /// they can; `cold`: every machine boots from its disk (first-boot provisioning checks).
    #[serde(default)]
    pub boot: Option<S<String>>,
    /// Steps that bring the machine to the state the test starts from. Tests of one machine
    /// with the same machine and the same setup share it: it runs once and is saved.
    #[serde(default)]
    pub setup: Option<S<Vec<S<StepDef>>>>,
    pub steps: S<Vec<S<StepDef>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ChecksDef {
    #[serde(default)]
    pub console: Option<bool>,
    #[serde(default)]
    pub journal: Option<bool>,
    #[serde(default)]
    pub failed_units: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MachineDef {
    #[serde(default)]
    pub image: Option<S<String>>,
    /// Guest memory in MiB.
    #[serde(default)]
    pub memory: Option<S<u32>>,
    #[serde(default)]
    pub cpus: Option<S<u32>>,
    /// Address on the test's private cluster segment, `A.B.C.D/N`.
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub ignition: Option<IgnitionDef>,
    /// `bios` or `uefi`; default: what the image's OS profile says.
    #[serde(default)]
    pub firmware: Option<S<String>>,
    /// UEFI Secure Boot enforced (needs `firmware: uefi`).
    #[serde(default)]
    pub secure_boot: Option<S<bool>>,
    /// A TPM 2.0 (swtpm), one per machine.
    #[serde(default)]
    pub tpm: Option<S<bool>>,
    /// cloud-init user-data, for an image whose profile provisions with cloud-init.
    #[serde(default)]
    pub cloud_init: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IgnitionDef {
    #[serde(default)]
    pub hostname: Option<S<String>>,
    #[serde(default)]
    pub files: Vec<S<FileDef>>,
    #[serde(default)]
    pub units: Vec<S<UnitDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    pub path: S<String>,
    #[serde(default)]
    pub contents: String,
    /// A file next to the suite (relative to its folder) whose text becomes `contents`.
    #[serde(default)]
    pub from_host: Option<S<String>>,
    /// Octal, as a string: "0644".
    #[serde(default)]
    pub mode: Option<S<String>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitDef {
    pub name: S<String>,
    #[serde(default)]
    pub contents: Option<String>,
    /// A unit file next to the suite (relative to its folder) whose text becomes `contents`.
    #[serde(default)]
    pub from_host: Option<S<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub mask: Option<bool>,
}
