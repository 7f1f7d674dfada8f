//! The QEMU machine as the runner sees it: `Machine` over `QemuMachine`'s own methods, with
//! commands and files over its SSH login and the slots read from its overlay.

use super::vm::QemuMachine;
use super::{Base, Fut, Machine, MachineError};
use crate::disk::{self, SlotState};
use crate::ssh::{Endpoint, ExecOutput, Ssh};
use std::path::Path;
use std::time::Duration;

impl QemuMachine {
    /// The login of the current boot, for a guest-side call.
    fn session(&self) -> anyhow::Result<Ssh> {
        Ok(self.ssh()?.clone())
    }

    /// The guest flushes, QEMU pauses, the host reads the overlay through qemu-img (no mount,
    /// no root), QEMU resumes.
    async fn slots_from_disk(&mut self) -> Result<Vec<SlotState>, MachineError> {
        let running = self.is_running();
        if running {
            if let Ok(ssh) = self.ssh() {
                let _ = ssh.exec("sync", Duration::from_secs(60)).await;
            }
            self.qmp("stop", serde_json::json!({})).await?;
        }
        let overlay = self.overlay().to_path_buf();
        let slots = self.base.profile.slots.clone();
        let r = tokio::task::spawn_blocking(move || disk::slots(&overlay, &slots)).await;
        if running {
            self.qmp("cont", serde_json::json!({})).await?;
        }
        r.map_err(|e| MachineError::Infra(e.to_string()))?
            .map_err(|e| MachineError::Infra(format!("{e:#}")))
    }
}

impl Machine for QemuMachine {
    fn base(&self) -> &Base {
        &self.base
    }
    fn base_mut(&mut self) -> &mut Base {
        &mut self.base
    }
    fn endpoint(&self) -> Endpoint {
        QemuMachine::endpoint(self)
    }
    fn overlay(&self) -> &Path {
        QemuMachine::overlay(self)
    }
    fn boot(&mut self) -> Fut<'_, Result<(), MachineError>> {
        Box::pin(QemuMachine::boot(self))
    }
    fn probe_phases(&mut self) -> Fut<'_, ()> {
        Box::pin(QemuMachine::probe_phases(self))
    }
    fn reboot(&mut self) -> Fut<'_, Result<(), MachineError>> {
        Box::pin(QemuMachine::reboot(self))
    }
    fn power_cut(&mut self) -> Fut<'_, Result<(), MachineError>> {
        Box::pin(QemuMachine::power_cut(self))
    }
    fn save_state<'a>(&'a mut self, state: &'a Path) -> Fut<'a, Result<u64, MachineError>> {
        Box::pin(QemuMachine::save_state(self, state))
    }
    fn shutdown(&mut self) -> Fut<'_, ()> {
        Box::pin(QemuMachine::shutdown(self))
    }
    fn is_running(&self) -> bool {
        QemuMachine::is_running(self)
    }
    fn unexpected_exit(&mut self) -> Option<String> {
        QemuMachine::unexpected_exit(self)
    }
    fn exec<'a>(&'a self, cmd: &'a str, limit: Duration) -> Fut<'a, anyhow::Result<ExecOutput>> {
        Box::pin(async move { self.session()?.exec(cmd, limit).await })
    }
    fn fire<'a>(&'a self, cmd: &'a str) -> Fut<'a, anyhow::Result<()>> {
        Box::pin(async move { self.session()?.fire(cmd).await })
    }
    fn upload<'a>(&'a self, local: &'a Path, remote: &'a str) -> Fut<'a, anyhow::Result<()>> {
        Box::pin(async move { self.session()?.upload(local, remote).await })
    }
    fn download<'a>(&'a self, remote: &'a str, local: &'a Path) -> Fut<'a, anyhow::Result<()>> {
        Box::pin(async move { self.session()?.download(remote, local).await })
    }
    fn read_slots(&mut self) -> Fut<'_, Result<Vec<SlotState>, MachineError>> {
        Box::pin(self.slots_from_disk())
    }
}
