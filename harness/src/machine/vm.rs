//! The QEMU machine: one QEMU process (restarted on every guest reboot) with its overlay disk,
//! serial console, QMP socket and SSH endpoint. Dropping it kills QEMU. Its saved-state
//! (boot-once snapshot) half is in `vm_state.rs`, and what the runner sees of it is
//! `impl Machine` in `vm_machine.rs`.

use super::boot_watch::{AfterExit, BootFailure, BootWatch};
use super::firmware::{self, Tpm};
use super::ports::{free_port, port_taken, PortTries, SSH_PORT_TRIES};
use super::process::GroupChild;
use super::qemu::{QemuConfig, QEMU_BINARY};
use super::qmp::Qmp;
use super::{diagnose, phases, Base, BootRecord, MachineError, MachineOpts};
use crate::ssh::{probe_banner, Endpoint, PortAnswer, Ssh};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Guest resets tolerated while waiting for one boot to reach SSH.
pub const MAX_RESETS: u32 = 3;

/// How long after a kernel panic the guest has to reset itself before the boot counts as hung.
const PANIC_RESET_GRACE: Duration = Duration::from_secs(20);

/// How long a refused login's diagnosis lets the guest run for it to write a file it created
/// back to the disk (the kernel's dirty-data expiry, 30 s, and its flusher's 5-s period).
const WRITEBACK_WAIT: Duration = Duration::from_secs(36);

/// How long the guest runs between two reads of a file it has not written back yet: long
/// stretches, as the guest's clock (and with it the dirty data's age) stands still while QEMU
/// is paused for a read.
const WRITEBACK_POLL: Duration = Duration::from_secs(10);

pub struct QemuMachine {
    pub base: Base,
    pub(super) cfg: QemuConfig,
    pub(super) proc: Option<GroupChild>,
    /// The machine's TPM (swtpm), started with each QEMU run.
    pub(super) tpm: Option<Tpm>,
    pub(super) tpm_proc: Option<GroupChild>,
    pub(super) qmp: Option<Qmp>,
    pub(super) ssh: Option<Ssh>,
    pub(super) key: PathBuf,
    pub(super) boot_timeout: Duration,
    pub(super) events: Vec<serde_json::Value>,
    pub(super) restore: Option<PathBuf>,
    /// Started from a saved state: its first boot (and Ignition) happened in the template.
    pub(super) restored: bool,
}

impl QemuMachine {
    /// Creates the machine's overlay on its base image; QEMU is not started yet.
    pub async fn create(o: MachineOpts) -> Result<QemuMachine, MachineError> {
        crate::private::dir(&o.dir)
            .map_err(|e| MachineError::Infra(format!("creating {}: {e}", o.dir.display())))?;
        let overlay = o.dir.join("overlay.qcow2");
        let base = o
            .base_image
            .canonicalize()
            .map_err(|e| MachineError::Infra(format!("{}: {e}", o.base_image.display())))?;
        let out = tokio::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&base)
            .arg(&overlay)
            .output()
            .await
            .map_err(|e| MachineError::Infra(format!("running qemu-img: {e}")))?;
        if !out.status.success() {
            return Err(MachineError::Infra(format!(
                "qemu-img create failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let uefi = match o.hardware.uefi {
            true => Some(firmware::uefi(
                Path::new(firmware::OVMF_DIR),
                &o.dir,
                o.hardware.secure_boot,
            )?),
            false => None,
        };
        let tpm = match o.hardware.tpm {
            true => Some(Tpm::new(&o.dir, &o.sock_dir, &o.name)?),
            false => None,
        };
        let cfg = QemuConfig {
            uefi,
            tpm: tpm.as_ref().map(|t| t.socket.clone()),
            name: o.name.clone(),
            accel: o.accel,
            memory_mib: o.memory_mib,
            cpus: o.cpus,
            overlay,
            qmp_socket: o.sock_dir.join(format!("{}.qmp", o.name)),
            ssh_port: 0,
            ignition: o.ignition,
            seed: o.seed,
            fw_cfg_name: o.fw_cfg_name,
            guestfwd: o.guestfwd,
            cluster_nic: o.cluster_nic,
            incoming: false,
        };
        Ok(QemuMachine {
            base: Base::new(o.name, o.dir, o.profile),
            cfg,
            proc: None,
            tpm,
            tpm_proc: None,
            qmp: None,
            ssh: None,
            key: o.key,
            boot_timeout: o.boot_timeout,
            events: Vec::new(),
            restored: o.restore.is_some(),
            restore: o.restore,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: self.cfg.ssh_port,
            user: "core".into(),
            key: self.key.clone(),
        }
    }

    pub fn overlay(&self) -> &Path {
        &self.cfg.overlay
    }

    /// The SSH session of the current boot.
    pub fn ssh(&self) -> Result<&Ssh, MachineError> {
        self.ssh
            .as_ref()
            .ok_or_else(|| MachineError::Guest(format!("machine `{}` is not up", self.base.name)))
    }

    /// Starts QEMU and waits until the guest accepts our SSH login: from firmware, or, for a
    /// machine made with `restore`, from its saved state.
    pub async fn boot(&mut self) -> Result<(), MachineError> {
        if let Some(state) = self.restore.take() {
            return self.boot_restored(&state).await;
        }
        let started = Instant::now();
        self.base.timeline.boot_started = Some(started);
        self.start_qemu().await?;
        let banner = self.wait_banner(started).await?;
        let ssh = self.login(started + self.boot_timeout).await?;
        self.ssh = Some(ssh);
        self.base.timeline.boots.push(BootRecord {
            qemu_to_ssh_banner_s: banner.as_secs_f64(),
            qemu_to_login_s: started.elapsed().as_secs_f64(),
            from_snapshot: false,
            phases: None,
        });
        tracing::info!(machine = %self.base.name, seconds = started.elapsed().as_secs_f64(), "ssh ready");
        Ok(())
    }

    /// Reads where the last cold boot's time went (`phases::PROBE`) into its record; a guest
    /// that does not answer leaves it empty (the boot itself already succeeded).
    pub async fn probe_phases(&mut self) {
        let (Some(t0), Ok(ssh)) = (self.base.timeline.boot_started, self.ssh()) else {
            return;
        };
        if self
            .base
            .timeline
            .boots
            .last()
            .is_none_or(|b| b.from_snapshot)
        {
            return;
        }
        let ssh = ssh.clone();
        let before = t0.elapsed().as_secs_f64();
        let out = ssh.check(phases::PROBE, Duration::from_secs(30)).await;
        let at = (before + t0.elapsed().as_secs_f64()) / 2.0;
        if let (Ok(out), Some(b)) = (out, self.base.timeline.boots.last_mut()) {
            b.phases = phases::parse(&out, at);
        }
    }

    /// Logs in as core with the run's key, retrying until `deadline` while sshd is not ready.
    /// A key sshd keeps refusing (3 tries over at least 3 s) is a definite failure, diagnosed
    /// from the candidate's disk (`diagnose::key_refusal`).
    pub(super) async fn login(&self, deadline: Instant) -> Result<Ssh, MachineError> {
        let mut refusals: Option<(Instant, u32)> = None;
        loop {
            match Ssh::connect(self.endpoint(), Duration::from_secs(20)).await {
                Ok(s) => return Ok(s),
                Err(e) if e.downcast_ref::<crate::ssh::KeyRefused>().is_some() => {
                    let (first, tries) = refusals.get_or_insert((Instant::now(), 0));
                    *tries += 1;
                    if *tries >= 3 && first.elapsed() >= Duration::from_secs(3) {
                        let methods = e
                            .downcast_ref::<crate::ssh::KeyRefused>()
                            .map(|k| k.methods.clone())
                            .unwrap_or_default();
                        let refused = BootFailure::KeyRefused {
                            methods,
                            tries: *tries,
                            diagnosis: None,
                        };
                        return Err(self.boot_failed(self.diagnose_refusal(refused).await));
                    }
                    tracing::debug!(machine = %self.base.name, "ssh key refused: {e:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(MachineError::Guest(format!(
                        "machine `{}`: sshd answered but login as core failed: {e:#}",
                        self.base.name
                    )))
                }
                Err(e) => {
                    tracing::debug!(machine = %self.base.name, "ssh login not ready: {e:#}");
                    // Retry interval of the login, inside the deadline above.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    pub(super) async fn start_qemu(&mut self) -> Result<(), MachineError> {
        let stderr_path = self.base.dir.join("qemu-stderr.log");
        let mut ports = PortTries::new(&self.base.name, SSH_PORT_TRIES);
        loop {
            self.cfg.ssh_port = ports.next(free_port)?;
            let _ = std::fs::remove_file(&self.cfg.qmp_socket);
            append(
                &self.base.dir.join("qemu-cmdline.txt"),
                &self.cfg.shell_line(),
            );
            let stderr = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&stderr_path)
                .map_err(MachineError::infra)?;
            let mark = std::fs::metadata(&stderr_path)
                .map(|m| m.len())
                .unwrap_or(0);
            if let Some(t) = &self.tpm {
                self.tpm_proc = Some(t.start(&self.base.dir.join("swtpm.log")).await?);
            }
            let mut cmd = tokio::process::Command::new(QEMU_BINARY);
            cmd.args(self.cfg.args())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(stderr);
            let mut child = GroupChild::spawn(cmd).map_err(|e| {
                MachineError::Infra(format!(
                    "cannot start {QEMU_BINARY}: {e} (is qemu-system-x86 installed?)"
                ))
            })?;
            let out = child.child.stdout.take().expect("piped");
            self.base
                .console
                .pump(out, &self.base.dir.join("console.log"));
            let sock = self.cfg.qmp_socket.clone();
            tokio::select! {
                q = connect_qmp(&sock) => {
                    match q {
                        Ok(q) => {
                            self.qmp = Some(q);
                            self.proc = Some(child);
                            return Ok(());
                        }
                        Err(e) => {
                            child.kill().await;
                            return Err(MachineError::Infra(format!("QMP: {e:#}")));
                        }
                    }
                }
                _ = child.child.wait() => {
                    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    let err = text.get(mark as usize..).unwrap_or("").trim().to_string();
                    if port_taken(&err) {
                        tracing::debug!(port = self.cfg.ssh_port, "port taken, trying another");
                        ports.taken(self.cfg.ssh_port, err);
                        continue;
                    }
                    return Err(MachineError::Infra(format!(
                        "QEMU exited at start: {err} (see {})",
                        stderr_path.display()
                    )));
                }
            }
        }
    }

    /// Waits for sshd's banner, watching the console for a failure that is certain
    /// (`BootWatch`). A guest reset during boot (a kernel panic with `panic=1`, a reboot) ends
    /// QEMU; like real hardware the machine starts again, so a bootloader can fall back to the
    /// other slot, unless the watch says the resets are a loop.
    async fn wait_banner(&mut self, started: Instant) -> Result<Duration, MachineError> {
        let deadline = started + self.boot_timeout;
        let mut mark = self.base.console.mark();
        let mut watch = BootWatch::new(self.sshd_grace(), PANIC_RESET_GRACE, MAX_RESETS + 1);
        loop {
            let addr = self.endpoint().addr();
            let port =
                tokio::task::spawn_blocking(move || probe_banner(addr, Duration::from_secs(2)))
                    .await
                    .unwrap_or(PortAnswer::Silent);
            if port == PortAnswer::Banner {
                return Ok(started.elapsed());
            }
            let text = self.base.console.since(mark);
            watch
                .check(&text, port, Instant::now())
                .map_err(|f| self.boot_failed(f))?;
            let exited = match self.proc.as_mut() {
                Some(p) => p.child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                // A guest reset ends QEMU (-no-reboot) with an exit code; a signal is someone
                // else's doing (killed from outside, or a QEMU crash): never boot it again.
                if let Some(killed) = killed_by_signal(&status) {
                    return Err(MachineError::Infra(format!(
                        "machine `{}`: QEMU {killed} during boot (not a guest reset, not Aviary); last console line: `{}`",
                        self.base.name,
                        last_line(&self.base.console.snapshot())
                    )));
                }
                let powered_off = self.shutdown_reason().await.as_deref() == Some("guest-shutdown");
                let text = self.base.console.since(mark);
                match watch.exited(&text, powered_off) {
                    AfterExit::Fail(f) => return Err(self.boot_failed(f)),
                    AfterExit::Restart => {}
                }
                self.base.timeline.resets += 1;
                tracing::info!(machine = %self.base.name, starts = watch.starts(), "guest reset during boot: starting QEMU again");
                self.wait_exit(Duration::from_secs(5)).await?;
                mark = self.base.console.mark();
                self.start_qemu().await?;
                continue;
            }
            if Instant::now() > deadline {
                return Err(self.boot_failed(watch.timed_out(&text, self.boot_timeout)));
            }
            // Poll interval of the banner probe, inside the deadline above.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How long the guest may refuse the SSH port after it said its boot finished
    /// (`boot_watch::BOOT_FINISHED`): sshd had started by then, so only a margin for the
    /// probes' rounds (2 s each at most). A 60th of the boot's deadline, 5 to 10 s.
    fn sshd_grace(&self) -> Duration {
        (self.boot_timeout / 60).clamp(Duration::from_secs(5), Duration::from_secs(10))
    }

    /// Why QEMU's last run ended, from its QMP SHUTDOWN event ("guest-shutdown" for a
    /// poweroff, "guest-reset" for a reset or panic=1).
    async fn shutdown_reason(&self) -> Option<String> {
        let q = self.qmp.as_ref()?;
        let ev = q
            .wait_event(0, Duration::from_secs(2), |v| v["event"] == "SHUTDOWN")
            .await
            .ok()?;
        ev["data"]["reason"].as_str().map(String::from)
    }

    /// Reads the candidate's disk to tell why sshd refused the key.
    async fn diagnose_refusal(&self, refused: BootFailure) -> BootFailure {
        let console = self.base.console.snapshot();
        let pubkey = std::fs::read_to_string(self.key.with_extension("pub")).unwrap_or_default();
        let first_boot =
            self.cfg.ignition.is_some() && self.base.timeline.boots.is_empty() && !self.restored;
        let read = match diagnose::booted_root(&console) {
            Some(root) => Some(self.read_guest_file(&root, diagnose::IGNITION_KEYS).await),
            None => None,
        };
        diagnose::key_refusal(refused, &console, &pubkey, first_boot, |_, _| {
            read.unwrap_or_else(|| Err(anyhow::anyhow!("no slot on the console")))
        })
    }

    /// Reads a file of partition `label` from the machine's disk, QEMU paused. A file the
    /// guest created but has not written back yet reads empty: the guest then runs on in
    /// stretches of `WRITEBACK_POLL` and the file is read again after each, until it has data
    /// or the guest has run `WRITEBACK_WAIT` (only its running time counts: its clock stands
    /// still while QEMU is paused).
    async fn read_guest_file(&self, label: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut ran = Duration::ZERO;
        loop {
            let got = self.read_paused(label, path).await;
            if !matches!(&got, Ok(b) if b.is_empty()) || ran >= WRITEBACK_WAIT {
                return got;
            }
            tracing::info!(machine = %self.base.name, label, path, ran_s = ran.as_secs(), "the file reads empty: letting the guest write it back");
            tokio::time::sleep(WRITEBACK_POLL).await;
            ran += WRITEBACK_POLL;
        }
    }

    async fn read_paused(&self, label: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let paused = self.qmp("stop", serde_json::json!({})).await.is_ok();
        let (disk, l, p) = (
            self.cfg.overlay.clone(),
            label.to_string(),
            path.to_string(),
        );
        let read = tokio::task::spawn_blocking(move || crate::disk::read_file(&disk, &l, &p))
            .await
            .map_err(|e| anyhow::anyhow!("reading the disk: {e}"))
            .and_then(|r| r);
        if paused {
            if let Err(e) = self.qmp("cont", serde_json::json!({})).await {
                tracing::warn!(machine = %self.base.name, "resuming the guest after a disk read: {e:#}");
            }
        }
        read
    }

    fn boot_failed(&self, f: BootFailure) -> MachineError {
        MachineError::Boot {
            machine: self.base.name.clone(),
            failure: f,
            console: self.base.dir.join("console.log"),
        }
    }

    /// Reboots the guest: QEMU runs with -no-reboot, so the guest's reboot ends the process and
    /// a fresh QEMU starts on the same overlay.
    pub async fn reboot(&mut self) -> Result<(), MachineError> {
        if let Some(ssh) = self.ssh.take() {
            ssh.fire("sudo systemctl reboot")
                .await
                .map_err(|e| MachineError::Guest(format!("asking for a reboot: {e:#}")))?;
        }
        self.wait_exit(self.boot_timeout).await?;
        self.boot().await
    }

    /// Waits until QEMU ends by itself (a guest reboot or poweroff).
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<(), MachineError> {
        if let Some(mut p) = self.proc.take() {
            match tokio::time::timeout(limit, p.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    p.kill().await;
                    return Err(MachineError::Guest(format!(
                        "machine `{}` did not go down within {:.0}s of a reboot request",
                        self.base.name,
                        limit.as_secs_f64()
                    )));
                }
            }
            drop(p);
        }
        self.tpm_proc = None;
        self.collect_events();
        self.qmp = None;
        Ok(())
    }

    /// Whether a QEMU process is running for this machine.
    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// How QEMU ended, when it has ended although Aviary did not stop it (for the message
    /// of a step whose SSH session broke).
    pub fn unexpected_exit(&mut self) -> Option<String> {
        let status = self.proc.as_mut()?.child.try_wait().ok().flatten()?;
        Some(killed_by_signal(&status).unwrap_or_else(|| format!("exited ({status})")))
    }

    /// Runs a QMP command against the running QEMU.
    pub async fn qmp(
        &self,
        command: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, MachineError> {
        let q = self.qmp.as_ref().ok_or_else(|| {
            MachineError::Infra(format!("machine `{}` has no QMP", self.base.name))
        })?;
        q.execute(command, args)
            .await
            .map_err(|e| MachineError::Infra(format!("QMP {command}: {e:#}")))
    }

    /// Cuts the power: QMP `quit` (no guest shutdown), then the process is reaped.
    pub async fn power_cut(&mut self) -> Result<(), MachineError> {
        self.ssh = None;
        let _ = self.qmp("quit", serde_json::json!({})).await;
        if let Some(mut p) = self.proc.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await;
            p.kill().await;
        }
        self.tpm_proc = None;
        self.collect_events();
        self.qmp = None;
        Ok(())
    }

    fn collect_events(&mut self) {
        if let Some(q) = &self.qmp {
            let mut ev = q.events.lock().unwrap_or_else(|e| e.into_inner());
            self.events.append(&mut ev);
        }
    }

    /// Stops QEMU (QMP quit, then SIGKILL to its group) and writes the QMP event log.
    pub async fn shutdown(&mut self) {
        self.ssh = None;
        if let Some(q) = &self.qmp {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                q.execute("quit", serde_json::json!({})),
            )
            .await;
        }
        if let Some(mut p) = self.proc.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), p.child.wait()).await;
            p.kill().await;
        }
        self.tpm_proc = None;
        self.collect_events();
        self.qmp = None;
        let _ = std::fs::remove_file(&self.cfg.qmp_socket);
        let lines: Vec<String> = self.events.iter().map(|e| e.to_string()).collect();
        if !lines.is_empty() {
            let _ = std::fs::write(
                self.base.dir.join("qmp-events.jsonl"),
                lines.join("\n") + "\n",
            );
        }
    }
}

async fn connect_qmp(sock: &Path) -> anyhow::Result<Qmp> {
    // QEMU creates the socket during start-up; its greeting comes once it is fully initialised.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sock.exists() {
            // The socket file appears at bind(); until QEMU listens, a connect is refused.
            match Qmp::connect(sock).await {
                Err(e) if Instant::now() < deadline && refused(&e) => {}
                r => return r,
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("no QMP socket at {} after 30s", sock.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether connecting failed only because nobody listens (yet) on the socket.
fn refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            )
        })
    })
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no console output)")
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// "was killed by signal 9 (SIGKILL)" when a process ended by a signal.
fn killed_by_signal(status: &std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let sig = status.signal()?;
    let name = match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        _ => "",
    };
    Some(format!("was killed by signal {sig}{name}"))
}

#[cfg(test)]
mod exit_tests {
    use super::killed_by_signal;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_signal_is_told_apart_from_a_guest_reset() {
        let reset = std::process::ExitStatus::from_raw(0);
        assert_eq!(killed_by_signal(&reset), None);
        let killed = std::process::ExitStatus::from_raw(libc::SIGKILL);
        assert_eq!(
            killed_by_signal(&killed).as_deref(),
            Some("was killed by signal 9 (SIGKILL)")
        );
    }
}
