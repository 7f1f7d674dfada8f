//! The validated suite model: what the planner and runner consume.

use regex::Regex;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A place in a suite file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    pub path: PathBuf,
    /// The raw text, kept for repro excerpts.
    pub source: String,
    pub tests: Vec<Test>,
}

/// A test's name across suites: `SUITE::TEST`, as reports, filters, the policy and the gate
/// write it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TestId(String);

impl TestId {
    pub fn new(suite: &str, test: &str) -> TestId {
        TestId(format!("{suite}::{test}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<TestId> for String {
    fn from(id: TestId) -> String {
        id.0
    }
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    pub description: Option<String>,
    pub suite: String,
    pub loc: Loc,
    pub machines: Vec<MachineSpec>,
    pub timeout: Duration,
    pub checks: Checks,
    pub boot: BootMode,
    /// How many of `steps` are its `setup:` (they come first). Tests of one machine with the
    /// same machine and the same setup start from one saved state after it
    /// (`runner::template::setup_key`); otherwise the setup runs as the test's first steps.
    pub setup: usize,
    /// The setup steps, then the test's own.
    pub steps: Vec<Step>,
}

impl Test {
    pub fn id(&self) -> TestId {
        TestId::new(&self.suite, &self.name)
    }
}

/// How a test's machines start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// From a boot-once snapshot of the same image and provisioning config, when the machine
    /// can be restored (no update server attached); otherwise cold.
    #[default]
    Snapshot,
    /// Every machine boots from its disk, firmware to SSH.
    Cold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    pub console: bool,
    pub journal: bool,
    pub failed_units: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            console: true,
            journal: true,
            failed_units: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A release channel from images/channels.yaml (stable, beta, alpha).
    Channel(String),
    /// A qcow2 file given by path.
    Path(PathBuf),
}

impl ImageRef {
    /// The one rule wherever an image is named (suite, `--image`, repro bundle): a path when
    /// it has a `/` or ends in `.qcow2`, else a channel.
    pub fn names_a_file(image: &str) -> bool {
        image.contains('/') || image.ends_with(".qcow2")
    }

    /// `image` by that rule, unchecked.
    pub fn parse(image: &str) -> ImageRef {
        if ImageRef::names_a_file(image) {
            ImageRef::Path(PathBuf::from(image))
        } else {
            ImageRef::Channel(image.to_string())
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Channel(c) => f.write_str(c),
            ImageRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub name: String,
    pub image: ImageRef,
    pub memory_mib: u32,
    pub cpus: u32,
    pub ignition: IgnitionSpec,
    /// Its NIC on the test's private cluster segment (tests with several machines, or an
    /// explicit `address`).
    pub cluster: Option<ClusterNic>,
    /// Firmware asked for; None: the image's OS profile's.
    pub firmware: Option<crate::profile::Firmware>,
    pub secure_boot: bool,
    pub tpm: bool,
    /// cloud-init user-data (`#cloud-config` or a `#!` script).
    pub cloud_init: Option<String>,
}

/// A machine's second NIC, on a private L2 segment shared only by the test's machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNic {
    pub address: std::net::Ipv4Addr,
    pub prefix: u8,
    pub mac: String,
}

/// The cluster segment's default subnet: machines get .11, .12, … in name order.
pub const CLUSTER_SUBNET: [u8; 3] = [10, 77, 0];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnitionSpec {
    pub hostname: Option<String>,
    pub files: Vec<FileSpec>,
    pub units: Vec<UnitSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
    pub mode: u32,
    pub user: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    pub name: String,
    pub contents: Option<String>,
    pub enabled: Option<bool>,
    pub mask: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub loc: Loc,
    /// The machine the step acts on.
    pub on: String,
    pub kind: StepKind,
}

/// Patterns are kept as written (they may hold `{{ … }}` templates) and compiled after expansion.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pattern(pub String);

impl Pattern {
    /// Compiles in multi-line mode, so `^running$` matches one line of the output.
    pub fn compile(text: &str) -> Result<Regex, regex::Error> {
        Regex::new(&format!("(?m){text}"))
    }
}

/// A regex error in one line: regex's own message draws the pattern and a caret over
/// several lines ending in `error: REASON`; an error message keeps the reason.
pub fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// What a step does: its verb and the verb's arguments. Each verb is validated in
/// `suite/verbs/VERB.rs` and run by `runner/steps/VERB.rs`.
#[derive(Debug, Clone, serde::Serialize)]
pub enum StepKind {
    Run(RunStep),
    WaitFor(WaitForStep),
    Reboot,
    Copy(CopyStep),
    Expect(ExpectStep),
    Update(UpdateStep),
    Fault(Fault),
}

/// `run`: a command in the guest, its exit status and output checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunStep {
    pub cmd: String,
    pub exit: i32,
    pub stdout: Option<Pattern>,
    pub stderr: Option<Pattern>,
    pub timeout: Option<Duration>,
}

/// `wait_for`: a condition in the guest or on its console, with a deadline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WaitForStep {
    pub cond: WaitCond,
    pub timeout: Option<Duration>,
}

/// `copy`: a host file into the guest, or a guest file into the test's artifact folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyStep {
    pub direction: CopyDirection,
    pub from: String,
    pub to: String,
}

/// `expect`: facts of the running guest, and slot state read offline from its disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExpectStep {
    pub os_release: BTreeMap<String, String>,
    pub kernel: Option<String>,
    pub slot: Option<Slot>,
    pub disk: Option<DiskExpect>,
}

/// `update`: a release offered by Aviary's update server and installed by the guest's agent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpdateStep {
    /// Channel of the release offered.
    pub to: String,
    pub payload: Option<PayloadFault>,
    pub refused: bool,
    pub cut_power: bool,
    pub timeout: Option<Duration>,
}

/// A bad payload served by the update server.
pub use crate::update_server::PayloadFault;

/// `fault`: breaks the freshly installed (inactive) slot from inside the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Fault {
    CorruptInactiveSlot,
    PanicInactiveSlot,
    HealthFailInactiveSlot,
}

/// Expected offline slot state; unset fields are not checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiskExpect {
    pub slot: Slot,
    pub active: Option<bool>,
    pub tried: Option<bool>,
    pub good: Option<bool>,
}

impl StepKind {
    pub fn verb(&self) -> &'static str {
        match self {
            StepKind::Run(_) => "run",
            StepKind::WaitFor(_) => "wait_for",
            StepKind::Reboot => "reboot",
            StepKind::Copy(_) => "copy",
            StepKind::Expect(_) => "expect",
            StepKind::Update(_) => "update",
            StepKind::Fault(_) => "fault",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub enum WaitCond {
    Unit(String),
    Port(u16),
    File(String),
    Console(Pattern),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CopyDirection {
    /// Host file → guest path.
    In,
    /// Guest file → the test's artifact folder.
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Slot {
    A,
    B,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "A",
            Slot::B => "B",
        })
    }
}

impl std::str::FromStr for Slot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "A" | "a" => Ok(Slot::A),
            "B" | "b" => Ok(Slot::B),
            other => Err(format!("`{other}` is not a slot; expected A or B")),
        }
    }
}
