//! Saving a running QEMU machine to a file and booting a new one from it (boot-once
//! snapshots): QMP migration to and from `exec:cat`, then a fresh identity for the clone.

use super::identity::Identity;
use super::qemu;
use super::vm::QemuMachine;
use super::{BootRecord, MachineError};
use std::path::Path;
use std::time::Instant;

impl QemuMachine {
    /// Restores the saved state into a paused QEMU, resumes it, logs in, and gives the guest
    /// an identity of its own (`Identity::script`).
    pub(super) async fn boot_restored(&mut self, state: &Path) -> Result<(), MachineError> {
        let started = Instant::now();
        self.base.timeline.boot_started = Some(started);
        self.cfg.incoming = true;
        let r = self.start_qemu().await;
        self.cfg.incoming = false;
        r?;
        let from = format!(
            "exec:cat {}",
            qemu::shell_quote(&state.display().to_string())
        );
        self.migrate("migrate-incoming", from, "restoring").await?;
        self.qmp("cont", serde_json::json!({})).await?;
        let deadline = started + self.boot_timeout;
        let ssh = self.login(deadline).await?;
        let banner = started.elapsed();
        let identity = Identity::fresh(&self.base.dir)
            .map_err(|e| MachineError::Infra(format!("making a new identity: {e:#}")))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let script = identity.script(now);
        let out = ssh
            .exec(
                &format!("sudo sh -c {}", qemu::shell_quote(&script)),
                self.boot_timeout,
            )
            .await
            .map_err(|e| MachineError::Guest(format!("machine `{}`: {e:#}", self.base.name)))?;
        if out.status != 0 {
            return Err(MachineError::Guest(format!(
                "machine `{}`: giving the restored guest its own identity failed (exit {}): {}",
                self.base.name,
                out.status,
                out.stderr.trim()
            )));
        }
        drop(ssh);
        // A new session, against the new host keys.
        let ssh = self.login(deadline).await?;
        self.ssh = Some(ssh);
        self.base.timeline.boots.push(BootRecord {
            qemu_to_ssh_banner_s: banner.as_secs_f64(),
            qemu_to_login_s: started.elapsed().as_secs_f64(),
            from_snapshot: true,
            phases: None,
        });
        tracing::info!(machine = %self.base.name, seconds = started.elapsed().as_secs_f64(), "restored from snapshot, ssh ready");
        Ok(())
    }

    /// Runs a QMP migration command (`migrate` to save, `migrate-incoming` to restore) with
    /// migration events on, and waits for its MIGRATION event to say completed or failed.
    pub(super) async fn migrate(
        &self,
        command: &str,
        uri: String,
        what: &str,
    ) -> Result<(), MachineError> {
        let events_on = serde_json::json!({
            "capabilities": [{ "capability": "events", "state": true }]
        });
        self.qmp("migrate-set-capabilities", events_on).await?;
        let mark = self.qmp.as_ref().map_or(0, |q| q.event_mark());
        self.qmp(command, serde_json::json!({ "uri": uri })).await?;
        self.wait_migration(mark, what).await
    }

    pub(super) async fn wait_migration(&self, mark: usize, what: &str) -> Result<(), MachineError> {
        let q = self.qmp.as_ref().ok_or_else(|| {
            MachineError::Infra(format!("machine `{}` has no QMP", self.base.name))
        })?;
        let ev = q
            .wait_event(mark, self.boot_timeout, |v| {
                v["event"] == "MIGRATION"
                    && matches!(v["data"]["status"].as_str(), Some("completed" | "failed"))
            })
            .await
            .map_err(|e| {
                MachineError::Infra(format!("machine `{}` {what}: {e:#}", self.base.name))
            })?;
        if ev["data"]["status"] == "failed" {
            return Err(MachineError::Infra(format!(
                "machine `{}` {what}: the migration failed (see {})",
                self.base.name,
                self.base.dir.join("qemu-stderr.log").display()
            )));
        }
        Ok(())
    }

    /// Saves the running guest: pauses it, writes its RAM and device state to `state`, and
    /// ends QEMU. The overlay then holds the matching disk and must not be written again: a
    /// restore runs on a new overlay backed by it. Returns the state file's size.
    pub async fn save_state(&mut self, state: &Path) -> Result<u64, MachineError> {
        self.ssh = None;
        self.qmp("stop", serde_json::json!({})).await?;
        let to = format!(
            "exec:cat > {}",
            qemu::shell_quote(&state.display().to_string())
        );
        self.migrate("migrate", to, "saving").await?;
        self.shutdown().await;
        std::fs::metadata(state)
            .map(|m| m.len())
            .map_err(|e| MachineError::Infra(format!("{}: {e}", state.display())))
    }
}
