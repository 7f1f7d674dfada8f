//! Machines: what the runner and the step verbs do with a guest (`Machine`), and how a test
//! gets one (`Platform`). `Qemu` makes QEMU machines (`vm.rs`, `vm_state.rs`); the runner's
//! unit tests script a fake one (`fake.rs`).

pub mod accel;
pub mod boot_watch;
pub mod console;
pub mod diagnose;
#[cfg(test)]
pub mod fake;
pub mod firmware;
pub mod identity;
pub mod phases;
mod ports;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod segment;
mod vm;
mod vm_machine;
mod vm_state;

use crate::disk::SlotState;
use crate::profile::Profile;
use crate::ssh::{Endpoint, ExecOutput};
use accel::Accel;
use boot_watch::BootFailure;
use console::Console;
use futures_util::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use vm::{QemuMachine, MAX_RESETS};

/// Why a machine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The host side failed (QEMU missing, could not start, disk errors): not the image's fault.
    #[error("{0}")]
    Infra(String),
    /// The guest failed (did not boot, panicked, never answered SSH): the candidate's fault.
    #[error("{0}")]
    Guest(String),
    /// The guest's boot failed for certain, at a known stage: the candidate's fault.
    #[error("machine `{machine}`: {failure} (console: {})", console.display())]
    Boot {
        machine: String,
        failure: BootFailure,
        console: PathBuf,
    },
}

impl MachineError {
    fn infra(e: impl std::fmt::Display) -> MachineError {
        MachineError::Infra(e.to_string())
    }
}

#[derive(Clone)]
pub struct MachineOpts {
    pub name: String,
    pub base_image: PathBuf,
    pub fw_cfg_name: String,
    /// The image's OS profile: how its slots are read.
    pub profile: Arc<Profile>,
    /// UEFI (with Secure Boot) or BIOS, and a TPM.
    pub hardware: firmware::Hardware,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// Artifact folder: console.log, qemu-cmdline.txt, qemu-stderr.log, overlay.
    pub dir: PathBuf,
    /// A short private folder for the QMP socket (unix socket paths are limited to 108 bytes).
    pub sock_dir: PathBuf,
    pub key: PathBuf,
    pub ignition: Option<PathBuf>,
    /// A cloud-init NoCloud seed disk, attached read-only.
    pub seed: Option<PathBuf>,
    pub boot_timeout: Duration,
    pub guestfwd: Option<String>,
    /// The cluster NIC: (`-netdev` value with id `net1`, MAC address).
    pub cluster_nic: Option<(String, String)>,
    /// Start the first boot from this saved state (`save_state`) instead of cold; `base_image`
    /// is then the frozen overlay it was saved with. Later boots (reboots) are cold.
    pub restore: Option<PathBuf>,
}

/// Timings of one boot, for reports and the benchmark.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BootRecord {
    pub qemu_to_ssh_banner_s: f64,
    pub qemu_to_login_s: f64,
    /// Started from a boot-once snapshot (the times are then QEMU start to restored and
    /// logged in, including the new identity), not from firmware.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_snapshot: bool,
    /// Where a cold boot's time went, from the guest's clocks (`phases::PROBE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<phases::BootPhases>,
}

/// What the reports read of a machine's life: its boots and when it first answered.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub boots: Vec<BootRecord>,
    /// When the current boot's QEMU was started.
    pub boot_started: Option<Instant>,
    /// From QEMU's start to the first command answered over SSH (set by the runner).
    pub first_command_s: Option<f64>,
    pub first_command_at_ms: Option<u128>,
    /// Guest resets seen while waiting for boots (panics, fallbacks).
    pub resets: u32,
}

/// What every machine carries, whatever runs it.
pub struct Base {
    pub name: String,
    /// Its artifact folder.
    pub dir: PathBuf,
    pub console: Arc<Console>,
    pub timeline: Timeline,
    /// Its image's OS profile.
    pub profile: Arc<Profile>,
}

impl Base {
    pub fn new(name: String, dir: PathBuf, profile: Arc<Profile>) -> Base {
        Base {
            name,
            dir,
            profile,
            console: Console::new(),
            timeline: Timeline::default(),
        }
    }
}

/// A future a machine returns: boxed, so that machines are trait objects.
pub type Fut<'a, T> = BoxFuture<'a, T>;

/// A guest as the runner and the step verbs see it, after kola's `platform.Machine` and the
/// NixOS driver's machine verbs: its life (boot, reboot, power cut, save, shut down), commands
/// and files over its login, its serial console, and its A/B slots read off the disk.
///
/// Errors of the guest-side calls (`exec`, `upload`, …) are `anyhow` chains, as SSH gives them;
/// the caller decides whose fault they are (`unexpected_exit` tells a dead QEMU apart).
pub trait Machine: Send + Sync {
    /// What every machine carries: its name, folder, console and timeline.
    fn base(&self) -> &Base;
    fn base_mut(&mut self) -> &mut Base;
    fn name(&self) -> &str {
        &self.base().name
    }
    /// Its artifact folder: console.log, journal.txt, qemu logs.
    fn dir(&self) -> &Path {
        &self.base().dir
    }
    fn console(&self) -> &Arc<Console> {
        &self.base().console
    }
    fn timeline(&self) -> &Timeline {
        &self.base().timeline
    }
    fn timeline_mut(&mut self) -> &mut Timeline {
        &mut self.base_mut().timeline
    }
    /// What its OS stack means by slots, updates and faults.
    fn profile(&self) -> &Profile {
        &self.base().profile
    }
    /// How to log in by hand (`ssh -p … core@127.0.0.1`).
    fn endpoint(&self) -> Endpoint;
    /// Its disk's overlay: removed after the test unless the machine is kept; a saved
    /// template's frozen disk.
    fn overlay(&self) -> &Path;

    /// Starts the guest and waits until it accepts the run's login.
    fn boot(&mut self) -> Fut<'_, Result<(), MachineError>>;
    /// Reads where the last cold boot's time went into its record (best effort).
    fn probe_phases(&mut self) -> Fut<'_, ()>;
    /// Reboots the guest from its disk, back to login.
    fn reboot(&mut self) -> Fut<'_, Result<(), MachineError>>;
    /// Cuts the power: no guest shutdown.
    fn power_cut(&mut self) -> Fut<'_, Result<(), MachineError>>;
    /// Saves the running guest to `state` and ends it; returns the state's size.
    fn save_state<'a>(&'a mut self, state: &'a Path) -> Fut<'a, Result<u64, MachineError>>;
    /// Stops the guest for good and writes its last logs.
    fn shutdown(&mut self) -> Fut<'_, ()>;
    /// Whether the guest is running (not powered off, cut or ended).
    fn is_running(&self) -> bool;
    /// How the guest ended, when it ended although Aviary did not end it.
    fn unexpected_exit(&mut self) -> Option<String>;

    /// Runs `cmd` through the login shell, up to `limit`.
    fn exec<'a>(&'a self, cmd: &'a str, limit: Duration) -> Fut<'a, anyhow::Result<ExecOutput>>;
    /// Sends `cmd` without waiting for it (a reboot, an agent whose power is cut).
    fn fire<'a>(&'a self, cmd: &'a str) -> Fut<'a, anyhow::Result<()>>;
    /// Copies a host file into the guest.
    fn upload<'a>(&'a self, local: &'a Path, remote: &'a str) -> Fut<'a, anyhow::Result<()>>;
    /// Copies a guest file to the host.
    fn download<'a>(&'a self, remote: &'a str, local: &'a Path) -> Fut<'a, anyhow::Result<()>>;
    /// The A/B slots' state read off the disk (the guest flushed and paused meanwhile).
    fn read_slots(&mut self) -> Fut<'_, Result<Vec<SlotState>, MachineError>>;

    /// Runs `cmd` and returns its stdout, failing on a non-zero exit.
    fn check<'a>(&'a self, cmd: &'a str, limit: Duration) -> Fut<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let out = self.exec(cmd, limit).await?;
            if out.status != 0 {
                anyhow::bail!(
                    "`{cmd}` exited {}: {}",
                    out.status,
                    out.stderr.trim().lines().last().unwrap_or("")
                );
            }
            Ok(out.stdout)
        })
    }
}

/// Where machines come from: QEMU here (`Qemu`), a script in the runner's unit tests.
pub trait Platform: Send + Sync {
    /// A machine with its disk ready, not started yet.
    fn create(&self, o: MachineOpts) -> Fut<'static, Result<Box<dyn Machine>, MachineError>>;
}

/// Makes QEMU machines.
pub struct Qemu;

impl Platform for Qemu {
    fn create(&self, o: MachineOpts) -> Fut<'static, Result<Box<dyn Machine>, MachineError>> {
        Box::pin(async move {
            let m = QemuMachine::create(o).await?;
            Ok(Box::new(m) as Box<dyn Machine>)
        })
    }
}
