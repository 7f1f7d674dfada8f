//! A scripted machine for the runner's unit tests: boots and commands answer as a `Script`
//! says, in milliseconds, and every call is written to a journal the test reads back. What a
//! script does not mention succeeds: a boot comes up, a command exits 0 with no output.

use super::boot_watch::BootFailure;
use super::{Base, Fut, Machine, MachineError, MachineOpts, Platform};
use crate::disk::SlotState;
use crate::ssh::{Endpoint, ExecOutput};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one boot does.
#[derive(Clone, Debug)]
pub enum Boot {
    Up,
    /// The candidate's boot fails for certain at a stage.
    Fails(BootFailure),
    /// The host side fails (QEMU could not start).
    HostFails(String),
}

/// What one command does.
#[derive(Clone, Debug)]
pub enum Reply {
    Exit {
        status: i32,
        stdout: String,
        stderr: String,
    },
    /// Never answers.
    Hang,
    /// The SSH session breaks; the machine lives on.
    Breaks(String),
    /// QEMU ends under the command (killed, crashed): the session breaks and `unexpected_exit`
    /// says how.
    QemuDies(String),
    /// The harness itself panics in the middle of the command.
    Panic,
}

impl Reply {
    pub fn exit(status: i32, stdout: &str) -> Reply {
        Reply::Exit {
            status,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }
}

/// A rule's answers, taken in turn across every machine of the platform that matches it (the
/// last one repeats): `[exit 1, exit 0]` fails the first attempt and passes the retry.
struct Rule {
    machine: String,
    contains: String,
    replies: Vec<Reply>,
    calls: AtomicUsize,
}

/// Makes fake machines and keeps what was done to them.
#[derive(Default)]
pub struct FakePlatform {
    boots: Mutex<BTreeMap<String, Vec<Boot>>>,
    rules: Vec<Rule>,
    console: BTreeMap<String, Vec<String>>,
    journal: Arc<Mutex<Vec<String>>>,
}

impl FakePlatform {
    pub fn new() -> FakePlatform {
        FakePlatform::default()
    }

    /// The boots of machines named `machine`, in order across every machine made (the last
    /// one repeats).
    pub fn boots(self, machine: &str, boots: Vec<Boot>) -> FakePlatform {
        self.boots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(machine.into(), boots);
        self
    }

    /// Commands on `machine` that contain `contains` answer `replies` in turn.
    pub fn reply(mut self, machine: &str, contains: &str, replies: Vec<Reply>) -> FakePlatform {
        self.rules.push(Rule {
            machine: machine.into(),
            contains: contains.into(),
            replies,
            calls: AtomicUsize::new(0),
        });
        self
    }

    /// A line the console of `machine` shows on every boot.
    pub fn console_line(mut self, machine: &str, line: &str) -> FakePlatform {
        self.console
            .entry(machine.into())
            .or_default()
            .push(line.into());
        self
    }

    /// Everything done so far, one line a call: `node: boot`, `node: exec true`, …
    pub fn journal(&self) -> Vec<String> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn next_boot(&self, machine: &str) -> Boot {
        let mut all = self.boots.lock().unwrap_or_else(|e| e.into_inner());
        match all.get_mut(machine) {
            Some(b) if b.len() > 1 => b.remove(0),
            Some(b) => b.first().cloned().unwrap_or(Boot::Up),
            None => Boot::Up,
        }
    }

    fn answer(&self, machine: &str, cmd: &str) -> Reply {
        for r in &self.rules {
            if r.machine == machine && cmd.contains(&r.contains) {
                let n = r.calls.fetch_add(1, Ordering::SeqCst);
                return r.replies[n.min(r.replies.len() - 1)].clone();
            }
        }
        Reply::exit(0, "")
    }
}

/// `FakePlatform` behind an `Arc`, so that a test keeps it to read the journal.
pub struct Fake(pub Arc<FakePlatform>);

impl Platform for Fake {
    fn create(&self, o: MachineOpts) -> Fut<'static, Result<Box<dyn Machine>, MachineError>> {
        let platform = self.0.clone();
        Box::pin(async move {
            std::fs::create_dir_all(&o.dir).map_err(|e| MachineError::Infra(e.to_string()))?;
            let m = FakeMachine {
                overlay: o.dir.join("overlay.qcow2"),
                restored: o.restore.is_some(),
                base: Base::new(o.name, o.dir, o.profile),
                up: false,
                died: Mutex::new(None),
                platform,
            };
            m.note(if m.restored {
                "create from template"
            } else {
                "create"
            });
            Ok(Box::new(m) as Box<dyn Machine>)
        })
    }
}

pub struct FakeMachine {
    base: Base,
    overlay: PathBuf,
    up: bool,
    restored: bool,
    died: Mutex<Option<String>>,
    platform: Arc<FakePlatform>,
}

impl FakeMachine {
    fn note(&self, what: &str) {
        self.platform
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{}: {what}", self.base.name));
    }

    async fn start(&mut self) -> Result<(), MachineError> {
        self.note("boot");
        self.base.timeline.boot_started = Some(Instant::now());
        for l in self
            .platform
            .console
            .get(&self.base.name)
            .into_iter()
            .flatten()
        {
            self.base.console.push(&format!("{l}\n"));
        }
        let _ = std::fs::write(
            self.base.dir.join("console.log"),
            self.base.console.snapshot(),
        );
        match self.platform.next_boot(&self.base.name) {
            Boot::Up => {}
            Boot::HostFails(why) => return Err(MachineError::Infra(why)),
            Boot::Fails(failure) => {
                return Err(MachineError::Boot {
                    machine: self.base.name.clone(),
                    failure,
                    console: self.base.dir.join("console.log"),
                })
            }
        }
        self.up = true;
        *self.died.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.base.timeline.boots.push(super::BootRecord {
            qemu_to_ssh_banner_s: 0.01,
            qemu_to_login_s: 0.02,
            from_snapshot: std::mem::take(&mut self.restored),
            phases: None,
        });
        Ok(())
    }

    async fn run(&self, cmd: &str) -> anyhow::Result<ExecOutput> {
        self.note(&format!("exec {cmd}"));
        if !self.up {
            anyhow::bail!("machine `{}` is not up", self.base.name);
        }
        match self.platform.answer(&self.base.name, cmd) {
            Reply::Exit {
                status,
                stdout,
                stderr,
            } => Ok(ExecOutput {
                status,
                stdout,
                stderr,
            }),
            Reply::Hang => std::future::pending().await,
            Reply::Breaks(why) => anyhow::bail!("{why}"),
            Reply::QemuDies(how) => {
                *self.died.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
                anyhow::bail!("SSH session ended: connection reset")
            }
            Reply::Panic => panic!("the fake harness panicked running `{cmd}`"),
        }
    }
}

impl Drop for FakeMachine {
    fn drop(&mut self) {
        if self.up {
            self.note("dropped while up");
        }
    }
}

impl Machine for FakeMachine {
    fn base(&self) -> &Base {
        &self.base
    }
    fn base_mut(&mut self) -> &mut Base {
        &mut self.base
    }
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: 22,
            user: "core".into(),
            key: self.base.dir.join("key"),
        }
    }
    fn overlay(&self) -> &Path {
        &self.overlay
    }
    fn boot(&mut self) -> Fut<'_, Result<(), MachineError>> {
        Box::pin(self.start())
    }
    fn probe_phases(&mut self) -> Fut<'_, ()> {
        Box::pin(async {})
    }
    fn reboot(&mut self) -> Fut<'_, Result<(), MachineError>> {
        Box::pin(async {
            self.note("reboot");
            self.up = false;
            self.start().await
        })
    }
    fn power_cut(&mut self) -> Fut<'_, Result<(), MachineError>> {
        Box::pin(async {
            self.note("power cut");
            self.up = false;
            Ok(())
        })
    }
    fn save_state<'a>(&'a mut self, state: &'a Path) -> Fut<'a, Result<u64, MachineError>> {
        Box::pin(async move {
            self.note("save");
            self.up = false;
            std::fs::write(state, b"saved").map_err(|e| MachineError::Infra(e.to_string()))?;
            Ok(5)
        })
    }
    fn shutdown(&mut self) -> Fut<'_, ()> {
        Box::pin(async {
            self.note("shutdown");
            self.up = false;
        })
    }
    fn is_running(&self) -> bool {
        self.up
    }
    fn unexpected_exit(&mut self) -> Option<String> {
        self.died.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn exec<'a>(&'a self, cmd: &'a str, limit: Duration) -> Fut<'a, anyhow::Result<ExecOutput>> {
        Box::pin(async move {
            match tokio::time::timeout(limit, self.run(cmd)).await {
                Ok(r) => r,
                Err(_) => anyhow::bail!("command timed out after {limit:.0?}: {cmd}"),
            }
        })
    }
    fn fire<'a>(&'a self, cmd: &'a str) -> Fut<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.note(&format!("fire {cmd}"));
            Ok(())
        })
    }
    fn upload<'a>(&'a self, local: &'a Path, remote: &'a str) -> Fut<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.note(&format!("upload {} {remote}", local.display()));
            Ok(())
        })
    }
    fn download<'a>(&'a self, remote: &'a str, local: &'a Path) -> Fut<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.note(&format!("download {remote}"));
            std::fs::write(local, b"")?;
            Ok(())
        })
    }
    fn read_slots(&mut self) -> Fut<'_, Result<Vec<SlotState>, MachineError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
