//! How QEMU is invoked: its binary, the accelerator flag, and the command line, built from a
//! plain description so it can be tested without QEMU.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// Which accelerator QEMU runs the guest with (`accel.rs` decides which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.qemu_name())
    }
}

/// Everything that decides one QEMU invocation.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub name: String,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The per-VM copy-on-write overlay; the base image is its backing file, never written.
    pub overlay: PathBuf,
    pub qmp_socket: PathBuf,
    /// SSH is forwarded from 127.0.0.1:ssh_port on the host to port 22 in the guest.
    pub ssh_port: u16,
    /// Ignition config handed over fw_cfg under `fw_cfg_name`.
    pub ignition: Option<PathBuf>,
    pub fw_cfg_name: String,
    /// A cloud-init NoCloud seed disk (label CIDATA), attached read-only after the disk.
    pub seed: Option<PathBuf>,
    /// An explicit guest→host forward (the update server), e.g. `guestfwd=tcp:10.0.2.100:80-cmd:…`.
    pub guestfwd: Option<String>,
    /// A second NIC on the test's private segment: (`-netdev` value, MAC address).
    pub cluster_nic: Option<(String, String)>,
    /// Start paused, waiting for a saved state (`-incoming defer`, then QMP `migrate-incoming`).
    /// Everything else must match the command line the state was saved from.
    pub incoming: bool,
    /// UEFI firmware (OVMF) instead of SeaBIOS.
    pub uefi: Option<Uefi>,
    /// A TPM 2.0: the control socket of this machine's swtpm (`tpm.rs`).
    pub tpm: Option<PathBuf>,
}

/// OVMF: its code, read-only and shared, and this machine's own variable store (boot entries,
/// Secure Boot keys and state), kept across the machine's reboots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uefi {
    pub code: PathBuf,
    pub vars: PathBuf,
    /// Secure Boot: SMM on and the flash writable only from SMM, as OVMF's secure build wants.
    pub secure_boot: bool,
}

impl QemuConfig {
    /// Arguments after the binary. User networking is always sealed with `restrict=on`;
    /// the serial console goes to stdout, which Aviary reads.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        push(&[
            "-name",
            &format!("aviary-{},process=aviary-{}", self.name, self.name),
        ]);
        let secure = self.uefi.as_ref().is_some_and(|u| u.secure_boot);
        let machine = if secure { "q35,smm=on" } else { "q35" };
        push(&["-machine", machine, "-accel", self.accel.qemu_name()]);
        if let Some(u) = &self.uefi {
            if secure {
                push(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
            }
            push(&[
                "-drive",
                &format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    u.code.display()
                ),
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", u.vars.display()),
            ]);
        }
        if let Some(sock) = &self.tpm {
            push(&[
                "-chardev",
                &format!("socket,id=chrtpm,path={}", sock.display()),
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                "tpm-crb,tpmdev=tpm0",
            ]);
        }
        push(&[
            "-smp",
            &self.cpus.to_string(),
            "-m",
            &self.memory_mib.to_string(),
        ]);
        push(&["-nodefaults", "-display", "none", "-no-user-config"]);
        push(&[
            "-chardev",
            "stdio,id=console,signal=off",
            "-serial",
            "chardev:console",
        ]);
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", self.qmp_socket.display()),
        ]);
        push(&["-device", "virtio-rng-pci"]);
        push(&[
            "-drive",
            &format!(
                "if=none,id=disk0,format=qcow2,file={}",
                self.overlay.display()
            ),
            "-device",
            "virtio-blk-pci,drive=disk0,bootindex=0",
        ]);
        if let Some(seed) = &self.seed {
            push(&[
                "-drive",
                &format!(
                    "if=none,id=seed,format=raw,readonly=on,file={}",
                    seed.display()
                ),
                "-device",
                "virtio-blk-pci,drive=seed",
            ]);
        }
        let mut netdev = format!(
            "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{}-:22",
            self.ssh_port
        );
        if let Some(g) = &self.guestfwd {
            netdev.push(',');
            netdev.push_str(g);
        }
        push(&["-netdev", &netdev, "-device", "virtio-net-pci,netdev=net0"]);
        if let Some((netdev, mac)) = &self.cluster_nic {
            push(&[
                "-netdev",
                netdev,
                "-device",
                &format!("virtio-net-pci,netdev=net1,mac={mac}"),
            ]);
        }
        if let Some(ign) = &self.ignition {
            push(&[
                "-fw_cfg",
                &format!("name={},file={}", self.fw_cfg_name, ign.display()),
            ]);
        }
        // A guest reboot ends this QEMU; Aviary starts a fresh one (see notes-measured.md).
        push(&["-no-reboot"]);
        if self.incoming {
            push(&["-incoming", "defer"]);
        }
        a
    }

    /// The whole command line as one shell-quoted string, for artifacts and repro.
    pub fn shell_line(&self) -> String {
        std::iter::once(QEMU_BINARY.to_string())
            .chain(self.args())
            .map(|s| shell_quote(&s))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> QemuConfig {
        QemuConfig {
            name: "node".into(),
            accel: Accel::Tcg,
            memory_mib: 1024,
            cpus: 2,
            overlay: "/run/t/node.qcow2".into(),
            qmp_socket: "/tmp/a/qmp.sock".into(),
            ssh_port: 40022,
            ignition: Some("/run/t/config.ign".into()),
            fw_cfg_name: "opt/com.coreos/config".into(),
            seed: None,
            guestfwd: None,
            cluster_nic: None,
            incoming: false,
            uefi: None,
            tpm: None,
        }
    }

    fn value_of(args: &[String], flag: &str) -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    }

    #[test]
    fn user_networking_is_always_restricted_and_on_loopback() {
        for accel in [Accel::Tcg, Accel::Kvm] {
            let mut c = cfg();
            c.accel = accel;
            let args = c.args();
            let netdevs = value_of(&args, "-netdev");
            assert_eq!(netdevs.len(), 1);
            for n in &netdevs {
                assert!(n.starts_with("user,"), "{n}");
                assert!(n.split(',').any(|p| p == "restrict=on"), "{n}");
                assert!(n.contains("hostfwd=tcp:127.0.0.1:40022-:22"), "{n}");
            }
            assert!(!args.iter().any(|a| a.contains("restrict=off")));
        }
    }

    #[test]
    fn disk_is_the_overlay_and_ignition_goes_through_fw_cfg() {
        let args = cfg().args();
        assert_eq!(
            value_of(&args, "-drive"),
            vec!["if=none,id=disk0,format=qcow2,file=/run/t/node.qcow2"]
        );
        assert_eq!(
            value_of(&args, "-fw_cfg"),
            vec!["name=opt/com.coreos/config,file=/run/t/config.ign"]
        );
        assert_eq!(value_of(&args, "-accel"), vec!["tcg"]);
        assert!(args.contains(&"-no-reboot".to_string()));
        assert!(value_of(&args, "-qmp")[0].starts_with("unix:/tmp/a/qmp.sock,server=on"));
    }

    #[test]
    fn fw_cfg_name_is_a_setting_and_ignition_optional() {
        let mut c = cfg();
        c.fw_cfg_name = "opt/org.flatcar-linux/config".into();
        assert!(value_of(&c.args(), "-fw_cfg")[0].starts_with("name=opt/org.flatcar-linux/config,"));
        c.ignition = None;
        assert!(value_of(&c.args(), "-fw_cfg").is_empty());
    }

    #[test]
    fn a_cluster_nic_is_a_unix_dgram_port_and_the_user_nic_stays_sealed() {
        let mut c = cfg();
        c.cluster_nic = Some((
            "dgram,id=net1,local.type=unix,local.path=/s/a.sock,remote.type=unix,remote.path=/s/switch.sock".into(),
            "52:54:00:a7:00:01".into(),
        ));
        let a = c.args();
        let n = value_of(&a, "-netdev");
        assert_eq!(n.len(), 2);
        assert!(n[0].starts_with("user,id=net0,restrict=on,"), "{}", n[0]);
        assert!(
            n[1].starts_with("dgram,id=net1,local.type=unix,"),
            "{}",
            n[1]
        );
        let d = value_of(&a, "-device");
        assert!(
            d.contains(&"virtio-net-pci,netdev=net1,mac=52:54:00:a7:00:01".to_string()),
            "{d:?}"
        );
    }

    #[test]
    fn guestfwd_keeps_the_netdev_restricted() {
        let mut c = cfg();
        c.guestfwd =
            Some("guestfwd=tcp:10.0.2.100:80-cmd:/bin/aviary guestfwd-proxy 127.0.0.1:9".into());
        let n = &value_of(&c.args(), "-netdev")[0];
        assert!(n.starts_with("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22,guestfwd=tcp:10.0.2.100:80-cmd:"), "{n}");
    }

    #[test]
    fn a_restore_differs_from_its_cold_boot_only_by_incoming_defer() {
        let cold = cfg().args();
        let mut c = cfg();
        c.incoming = true;
        let warm = c.args();
        assert_eq!(&warm[..cold.len()], &cold[..]);
        assert_eq!(&warm[cold.len()..], &["-incoming", "defer"]);
        assert!(!cold.iter().any(|a| a == "-incoming"));
    }

    #[test]
    fn uefi_is_two_flash_drives_and_a_tpm_is_an_emulator_on_its_socket() {
        let bios = cfg().args();
        assert!(!bios
            .iter()
            .any(|a| a.contains("pflash") || a.contains("tpm")));
        let mut c = cfg();
        c.uefi = Some(Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/run/t/node/OVMF_VARS.fd".into(),
            secure_boot: false,
        });
        c.tpm = Some("/tmp/a/node-tpm.sock".into());
        let a = c.args();
        assert_eq!(value_of(&a, "-machine"), vec!["q35"]);
        let drives = value_of(&a, "-drive");
        assert_eq!(
            drives[0],
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        );
        assert_eq!(
            drives[1],
            "if=pflash,format=raw,unit=1,file=/run/t/node/OVMF_VARS.fd"
        );
        assert!(value_of(&a, "-chardev")
            .contains(&"socket,id=chrtpm,path=/tmp/a/node-tpm.sock".to_string()));
        assert_eq!(
            value_of(&a, "-tpmdev"),
            vec!["emulator,id=tpm0,chardev=chrtpm"]
        );
        assert!(value_of(&a, "-device").contains(&"tpm-crb,tpmdev=tpm0".to_string()));
        assert!(value_of(&a, "-global").is_empty());
        c.uefi.as_mut().unwrap().secure_boot = true;
        let a = c.args();
        assert_eq!(value_of(&a, "-machine"), vec!["q35,smm=on"]);
        assert_eq!(
            value_of(&a, "-global"),
            vec!["driver=cfi.pflash01,property=secure,value=on"]
        );
        // The user network stays sealed whatever the firmware.
        assert!(value_of(&a, "-netdev")[0].contains("restrict=on"));
    }

    #[test]
    fn a_cloud_init_seed_is_a_second_read_only_disk_and_no_fw_cfg() {
        let mut c = cfg();
        c.ignition = None;
        c.seed = Some("/run/t/node/seed.img".into());
        let a = c.args();
        assert_eq!(
            value_of(&a, "-drive"),
            vec![
                "if=none,id=disk0,format=qcow2,file=/run/t/node.qcow2",
                "if=none,id=seed,format=raw,readonly=on,file=/run/t/node/seed.img"
            ]
        );
        assert!(value_of(&a, "-device").contains(&"virtio-blk-pci,drive=seed".to_string()));
        assert!(value_of(&a, "-fw_cfg").is_empty());
    }

    #[test]
    fn shell_line_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert!(cfg().shell_line().starts_with("qemu-system-x86_64 -name "));
    }
}
