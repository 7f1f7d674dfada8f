//! What a machine boots with besides its disk: UEFI firmware (OVMF, Debian's `ovmf`) with a
//! variable store of its own, and a TPM 2.0 (swtpm, Debian's `swtpm`), one per machine, its
//! state in the machine's folder, ended with the machine.

use super::process::GroupChild;
use super::qemu::Uefi;
use super::MachineError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian's ovmf puts its builds (4 MiB flash: code, and the variable store template).
pub const OVMF_DIR: &str = "/usr/share/OVMF";

/// A machine's wish: plain BIOS, UEFI, UEFI with Secure Boot; and a TPM or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Hardware {
    pub uefi: bool,
    pub secure_boot: bool,
    pub tpm: bool,
}

/// OVMF's code and a fresh copy of its variable store in `dir` (for Secure Boot: the build
/// that enforces it, and the store with Microsoft's and Debian's usual keys enrolled).
pub fn uefi(ovmf: &Path, dir: &Path, secure_boot: bool) -> Result<Uefi, MachineError> {
    let (code, vars) = if secure_boot {
        ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd")
    } else {
        ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")
    };
    let (code, template) = (ovmf.join(code), ovmf.join(vars));
    for f in [&code, &template] {
        if !f.is_file() {
            return Err(MachineError::Infra(format!(
                "UEFI firmware {} is missing; expected Debian's ovmf package (scripts/install-deps.sh installs it)",
                f.display()
            )));
        }
    }
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(&template, &vars)
        .map_err(|e| MachineError::Infra(format!("copying {}: {e}", template.display())))?;
    Ok(Uefi {
        code,
        vars,
        secure_boot,
    })
}

/// A machine's TPM: swtpm's state folder and control socket.
#[derive(Debug, Clone)]
pub struct Tpm {
    pub state: PathBuf,
    pub socket: PathBuf,
}

impl Tpm {
    pub fn new(dir: &Path, sock_dir: &Path, name: &str) -> Result<Tpm, MachineError> {
        let state = dir.join("tpm");
        crate::private::dir(&state).map_err(MachineError::infra)?;
        Ok(Tpm {
            state,
            socket: sock_dir.join(format!("{name}.tpm")),
        })
    }

    /// Starts swtpm for one QEMU run: it ends when QEMU closes the socket (`--terminate`), or
    /// with Aviary (its process group). Waits until the socket is there.
    pub async fn start(&self, log: &Path) -> Result<GroupChild, MachineError> {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(MachineError::infra)?;
        let mut cmd = tokio::process::Command::new("swtpm");
        cmd.args(["socket", "--tpm2", "--terminate", "--tpmstate"])
            .arg(format!("dir={}", self.state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", self.socket.display()))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(MachineError::infra)?)
            .stderr(log);
        let mut child = GroupChild::spawn(cmd).map_err(|e| {
            MachineError::Infra(format!("cannot start swtpm: {e} (is swtpm installed?)"))
        })?;
        // Poll for the socket inside a deadline: swtpm makes it within milliseconds.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.socket.exists() {
            if let Ok(Some(st)) = child.child.try_wait() {
                return Err(MachineError::Infra(format!("swtpm exited at start ({st})")));
            }
            if tokio::time::Instant::now() > deadline {
                child.kill().await;
                return Err(MachineError::Infra("swtpm made no socket in 10 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_machine_gets_its_own_variable_store() {
        let ovmf = tempfile::tempdir().unwrap();
        for f in ["OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"] {
            std::fs::write(ovmf.path().join(f), f).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let u = uefi(ovmf.path(), dir.path(), false).unwrap();
        assert_eq!(u.code, ovmf.path().join("OVMF_CODE_4M.fd"));
        assert_eq!(u.vars, dir.path().join("OVMF_VARS.fd"));
        assert_eq!(std::fs::read_to_string(&u.vars).unwrap(), "OVMF_VARS_4M.fd");
        let e = uefi(ovmf.path(), dir.path(), true).unwrap_err();
        assert!(
            e.to_string().contains("OVMF_CODE_4M.secboot.fd is missing"),
            "{e}"
        );
    }
}
