//! Which accelerator runs the VMs. /dev/kvm is never trusted: a tiny real boot decides.

use super::process::GroupChild;
pub use super::qemu::Accel;
use super::qemu::QEMU_BINARY;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How one probe boot ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// The kernel ran to its deliberate panic (no root filesystem) in this many seconds.
    Booted { seconds: f64 },
    /// Nothing came back before the deadline (KVM here hangs after real-mode setup).
    Hung { deadline_s: f64 },
    /// QEMU refused to start or the kernel never got far.
    Failed { reason: String },
}

/// The decision, with the facts behind it; cached per host and put in every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
    pub kvm_probe: Option<ProbeOutcome>,
    pub tcg_probe: Option<ProbeOutcome>,
    /// Multiplier for boot and step deadlines: 1.0 on a machine as fast as the reference.
    pub timeout_scale: f64,
    pub host_key: String,
}

/// TCG boot-to-panic time of the reference kernel on the machine the defaults were set on
/// (2.1 s measured on the 2-core reference host, 2026-11-25).
pub const REFERENCE_TCG_PROBE_S: f64 = 2.5;

/// An accelerator the user (or a repro bundle) chose, and who chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forced {
    pub accel: Accel,
    /// Said in the decision's reason: "AVIARY_ACCEL=tcg", "the repro bundle".
    pub by: String,
}

/// `AVIARY_ACCEL=tcg|kvm`, if set.
pub fn forced_by_env() -> Option<Forced> {
    let accel = match std::env::var("AVIARY_ACCEL").ok().as_deref() {
        Some("kvm") => Accel::Kvm,
        Some("tcg") => Accel::Tcg,
        _ => return None,
    };
    Some(Forced {
        accel,
        by: format!("AVIARY_ACCEL={accel}"),
    })
}

/// Pure decision from the facts gathered.
pub fn decide(
    forced: Option<&Forced>,
    kvm_node_usable: bool,
    kvm: Option<ProbeOutcome>,
    tcg: Option<ProbeOutcome>,
) -> (Accel, String, f64) {
    let scale_from = |o: &Option<ProbeOutcome>| match o {
        Some(ProbeOutcome::Booted { seconds }) => {
            (seconds / REFERENCE_TCG_PROBE_S).clamp(1.0, 10.0)
        }
        _ => 1.0,
    };
    if let Some(f) = forced {
        let scale = if f.accel == Accel::Tcg {
            scale_from(&tcg)
        } else {
            1.0
        };
        return (f.accel, format!("forced by {}", f.by), scale);
    }
    if !kvm_node_usable {
        return (
            Accel::Tcg,
            "/dev/kvm is missing or not accessible".into(),
            scale_from(&tcg),
        );
    }
    match kvm {
        Some(ProbeOutcome::Booted { seconds }) => (
            Accel::Kvm,
            format!("a KVM probe boot reached the kernel's panic in {seconds:.2}s"),
            1.0,
        ),
        Some(ProbeOutcome::Hung { deadline_s }) => (
            Accel::Tcg,
            format!("/dev/kvm opens but a KVM probe boot hung (no kernel output within {deadline_s:.0}s); falling back to TCG"),
            scale_from(&tcg),
        ),
        Some(ProbeOutcome::Failed { reason }) => (
            Accel::Tcg,
            format!("a KVM probe boot failed ({reason}); falling back to TCG"),
            scale_from(&tcg),
        ),
        None => (
            Accel::Tcg,
            "no kernel to probe KVM with; using TCG".into(),
            scale_from(&tcg),
        ),
    }
}

/// Boots `kernel` with no root filesystem under `accel`: success is the kernel's own panic,
/// which proves it got through real mode, decompression and early init.
pub async fn probe_boot(accel: Accel, kernel: &Path, deadline: Duration) -> ProbeOutcome {
    let mut cmd = tokio::process::Command::new(QEMU_BINARY);
    cmd.args(["-machine", "q35", "-accel", accel.qemu_name(), "-m", "256"])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-user-config",
            "-no-reboot",
        ])
        .args(["-serial", "stdio", "-kernel"])
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let mut child = match GroupChild::spawn(cmd) {
        Ok(c) => c,
        Err(e) => {
            return ProbeOutcome::Failed {
                reason: format!("cannot start {QEMU_BINARY}: {e}"),
            }
        }
    };
    let mut out = child.child.stdout.take().expect("piped");
    let mut err = child.child.stderr.take().expect("piped");
    let read = async {
        let mut console = Vec::new();
        let mut errs = Vec::new();
        let (_, _) = tokio::join!(out.read_to_end(&mut console), err.read_to_end(&mut errs));
        let status = child.child.wait().await;
        (console, errs, status)
    };
    match tokio::time::timeout(deadline, read).await {
        Err(_) => {
            child.kill().await;
            ProbeOutcome::Hung {
                deadline_s: deadline.as_secs_f64(),
            }
        }
        Ok((console, errs, _status)) => {
            let console = String::from_utf8_lossy(&console);
            if console.contains("Kernel panic") {
                ProbeOutcome::Booted {
                    seconds: started.elapsed().as_secs_f64(),
                }
            } else {
                let e = String::from_utf8_lossy(&errs);
                let reason = e
                    .lines()
                    .chain(console.lines())
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("no output")
                    .trim()
                    .to_string();
                ProbeOutcome::Failed { reason }
            }
        }
    }
}

/// Identifies the host for the probe cache: kernel, CPU model and QEMU version.
pub fn host_key() -> String {
    let uname = std::process::Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let qemu = std::process::Command::new(QEMU_BINARY)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|_| "qemu missing".into());
    format!("{uname} | {cpu} | {qemu}")
}

fn kvm_node_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

const KVM_PROBE_DEADLINE: Duration = Duration::from_secs(6);
const TCG_PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// Decides the accelerator, using the per-host cache in `cache_dir` when it matches.
/// `forced` (`forced_by_env`, or a repro bundle's) wins; the probe still measures TCG's speed.
pub async fn detect(
    cache_dir: &Path,
    kernel: Option<&Path>,
    forced: Option<&Forced>,
) -> AccelDecision {
    let key = host_key();
    let cache_file: PathBuf = cache_dir.join("accel-probe.json");
    if let Some(cached) = std::fs::read_to_string(&cache_file)
        .ok()
        .and_then(|t| serde_json::from_str::<AccelDecision>(&t).ok())
        .filter(|d| d.host_key == key)
    {
        let (accel, reason, scale) = decide(
            forced,
            kvm_node_usable(),
            cached.kvm_probe.clone(),
            cached.tcg_probe.clone(),
        );
        return AccelDecision {
            accel,
            reason: format!("{reason} (cached probe)"),
            timeout_scale: scale,
            ..cached
        };
    }
    let node = kvm_node_usable();
    let (kvm, tcg) = match kernel {
        Some(k) => {
            let kvm = if node {
                Some(probe_boot(Accel::Kvm, k, KVM_PROBE_DEADLINE).await)
            } else {
                None
            };
            (
                kvm,
                Some(probe_boot(Accel::Tcg, k, TCG_PROBE_DEADLINE).await),
            )
        }
        None => (None, None),
    };
    let (accel, reason, scale) = decide(forced, node, kvm.clone(), tcg.clone());
    let d = AccelDecision {
        accel,
        reason,
        kvm_probe: kvm,
        tcg_probe: tcg,
        timeout_scale: scale,
        host_key: key,
    };
    if kernel.is_some() && std::fs::create_dir_all(cache_dir).is_ok() {
        let _ = std::fs::write(
            &cache_file,
            serde_json::to_string_pretty(&d).unwrap_or_default(),
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hung_kvm_falls_back_to_tcg_and_says_so() {
        let (a, why, scale) = decide(
            None,
            true,
            Some(ProbeOutcome::Hung { deadline_s: 6.0 }),
            Some(ProbeOutcome::Booted { seconds: 5.0 }),
        );
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("hung"), "{why}");
        assert!((scale - 2.0).abs() < 1e-9);
    }

    #[test]
    fn working_kvm_is_used() {
        let (a, _, scale) = decide(
            None,
            true,
            Some(ProbeOutcome::Booted { seconds: 0.4 }),
            None,
        );
        assert_eq!(a, Accel::Kvm);
        assert_eq!(scale, 1.0);
    }

    #[test]
    fn missing_node_or_failed_probe_means_tcg() {
        assert_eq!(decide(None, false, None, None).0, Accel::Tcg);
        let (a, why, _) = decide(
            None,
            true,
            Some(ProbeOutcome::Failed {
                reason: "no".into(),
            }),
            None,
        );
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("failed"));
    }

    #[test]
    fn forcing_wins_and_scale_is_clamped() {
        let (a, why, _) = decide(
            Some(&Forced {
                accel: Accel::Kvm,
                by: "AVIARY_ACCEL=kvm".into(),
            }),
            false,
            None,
            None,
        );
        assert_eq!(a, Accel::Kvm);
        assert_eq!(why, "forced by AVIARY_ACCEL=kvm");
        let (_, _, s) = decide(
            None,
            false,
            None,
            Some(ProbeOutcome::Booted { seconds: 0.5 }),
        );
        assert_eq!(s, 1.0);
        let (_, _, s) = decide(
            None,
            false,
            None,
            Some(ProbeOutcome::Booted { seconds: 400.0 }),
        );
        assert_eq!(s, 10.0);
    }
}
