//! The suite file exactly as written: serde types with source spans.
//! `load.rs` turns these into the validated model in `model.rs`.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub type S<T> = Spanned<T>;

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepDef {
    Run(RunDef),
    WaitFor(WaitForDef),
    Reboot(S<String>),
    Copy(CopyDef),
    Expect(ExpectDef),
    Update(UpdateDef),
    Fault(FaultDef),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDef {
    pub on: S<String>,
    /// The channel whose release the update server offers.
    pub to: S<String>,
    /// Serve a bad payload: corrupt | truncate | stall.
    #[serde(default)]
    pub payload: Option<S<String>>,
    /// installed (default) | refused.
    #[serde(default)]
    pub expect: Option<S<String>>,
    /// Cut the power (QMP quit) while the payload is being written, then boot again.
    #[serde(default)]
    pub cut_power: Option<bool>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDef {
    pub on: S<String>,
    /// inactive-slot: zero the start of the inactive slot's filesystem.
    #[serde(default)]
    pub corrupt: Option<S<String>>,
    /// inactive-slot: its init exits at once, so its kernel panics at boot.
    #[serde(default)]
    pub panic: Option<S<String>>,
    /// inactive-slot: add a health check that always fails to it.
    #[serde(default)]
    pub health_fail: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskDef {
    pub slot: S<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub tried: Option<bool>,
    #[serde(default)]
    pub good: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDef {
    pub on: S<String>,
    pub cmd: S<String>,
    #[serde(default)]
    pub exit: Option<i32>,
    #[serde(default)]
    pub stdout: Option<S<String>>,
    #[serde(default)]
    pub stderr: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForDef {
    pub on: S<String>,
    #[serde(default)]
    pub unit: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<u16>>,
    #[serde(default)]
    pub file: Option<S<String>>,
    #[serde(default)]
    pub console: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyDef {
    pub on: S<String>,
    #[serde(default)]
    pub from_host: Option<S<String>>,
    #[serde(default)]
    pub from_guest: Option<S<String>>,
    pub to: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDef {
    pub on: S<String>,
    #[serde(default)]
    pub os_release: Option<S<BTreeMap<String, String>>>,
    #[serde(default)]
    pub kernel: Option<S<String>>,
    #[serde(default)]
    pub slot: Option<S<String>>,
    /// Shorthand for os_release VERSION_ID.
    #[serde(default)]
    pub version: Option<S<String>>,
    /// Slot state read offline from the disk (the machine is stopped for the read).
    #[serde(default)]
    pub disk: Option<S<DiskDef>>,
}
