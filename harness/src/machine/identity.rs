//! What makes a clone restored from a boot-once snapshot a machine of its own: a fresh
//! machine-id, host entropy, a new SSH host key, and the clock (see `QemuMachine::boot`).

use std::path::Path;

/// What makes a restored clone a machine of its own.
pub struct Identity {
    pub machine_id: String,
    /// Host randomness for the guest's pool, base64.
    pub entropy_b64: String,
    /// A new ed25519 host key pair made on the host (a guest under TCG takes seconds to make
    /// its own): the private key base64, the public key line.
    pub host_key_b64: String,
    pub host_pub: String,
}

impl Identity {
    /// A fresh machine-id (32 lowercase hex digits), 64 bytes of entropy, and a host key made
    /// with ssh-keygen in `scratch`.
    pub fn fresh(scratch: &Path) -> anyhow::Result<Identity> {
        use base64::Engine;
        let mut b = [0u8; 80];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        }
        let key = scratch.join("ssh_host_ed25519_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        crate::ssh::generate_key(&key)?;
        let private = std::fs::read(&key)?;
        let public = std::fs::read_to_string(scratch.join("ssh_host_ed25519_key.pub"))?;
        let _ = std::fs::remove_file(&key);
        Ok(Identity {
            machine_id: b[..16].iter().map(|x| format!("{x:02x}")).collect(),
            entropy_b64: base64::engine::general_purpose::STANDARD.encode(&b[16..]),
            host_key_b64: base64::engine::general_purpose::STANDARD.encode(private),
            host_pub: public.trim().to_string(),
        })
    }

    /// The commands a restored guest runs, as root: the clock from the host (a snapshot's
    /// clock stopped when it was saved), host entropy mixed into the kernel's pool (clones
    /// share the saved RNG state), the new machine-id (journald restarted to write under it),
    /// and the new SSH host key in place of every old one (sshd reloaded; open sessions live on).
    ///
    /// The other A/B slot gets the same machine-id and host key when it holds a root
    /// filesystem: a template saved after an update (`setup:`) carries the template's identity
    /// into the new slot (the update agent copies it there), and the clone boots that slot next.
    pub fn script(&self, epoch: std::time::Duration) -> String {
        format!(
            "set -e\n\
             date -u -s @{}.{:09} >/dev/null\n\
             echo {} | base64 -d > /dev/urandom\n\
             echo {} > /etc/machine-id\n\
             systemctl restart systemd-journald\n\
             rm -f /etc/ssh/ssh_host_*\n\
             umask 077\n\
             echo {} | base64 -d > /etc/ssh/ssh_host_ed25519_key\n\
             echo '{}' > /etc/ssh/ssh_host_ed25519_key.pub\n\
             chmod 644 /etc/ssh/ssh_host_ed25519_key.pub\n\
             systemctl reload-or-restart ssh\n\
             other=\n\
             for a in $(cat /proc/cmdline); do\n\
             case $a in rauc.slot=A) other=B ;; rauc.slot=B) other=A ;; esac\n\
             done\n\
             dev=/dev/disk/by-partlabel/ROOT-$other\n\
             mnt=/run/aviary-identity\n\
             if [ -n \"$other\" ] && [ -b \"$dev\" ] && mkdir -p $mnt && mount -t ext4 \"$dev\" $mnt 2>/dev/null; then\n\
             if [ -d $mnt/etc/ssh ]; then\n\
             cp /etc/machine-id $mnt/etc/machine-id\n\
             rm -f $mnt/etc/ssh/ssh_host_*\n\
             cp -a /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub $mnt/etc/ssh/\n\
             echo \"identity also written to slot $other\"\n\
             fi\n\
             umount $mnt\n\
             fi\n",
            epoch.as_secs(),
            epoch.subsec_nanos(),
            self.entropy_b64,
            self.machine_id,
            self.host_key_b64,
            self.host_pub.replace('\'', ""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_fresh_and_well_formed() {
        let d = tempfile::tempdir().unwrap();
        let a = Identity::fresh(d.path()).unwrap();
        let b = Identity::fresh(d.path()).unwrap();
        assert_eq!(a.machine_id.len(), 32);
        assert!(a
            .machine_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a.machine_id, b.machine_id);
        assert_ne!(a.host_pub, b.host_pub);
        assert!(a.host_pub.starts_with("ssh-ed25519 "), "{}", a.host_pub);
        assert!(a.entropy_b64.len() >= 80);
        // The private key does not stay on the host.
        assert!(!d.path().join("ssh_host_ed25519_key").exists());
        let s = a.script(std::time::Duration::new(1_700_000_000, 5));
        assert!(s.starts_with("set -e\n"));
        assert!(s.contains("date -u -s @1700000000.000000005"), "{s}");
        assert!(s.contains(&format!("echo {} > /etc/machine-id", a.machine_id)));
        assert!(s.contains("rm -f /etc/ssh/ssh_host_*\n"));
        // The other slot's copy (a pending update's) gets the same identity, when it mounts.
        assert!(
            s.contains("rauc.slot=A) other=B ;; rauc.slot=B) other=A"),
            "{s}"
        );
        assert!(
            s.contains("cp /etc/machine-id $mnt/etc/machine-id\n"),
            "{s}"
        );
        assert!(s.ends_with("umount $mnt\nfi\n"), "{s}");
        assert!(s.contains(&format!(
            "echo '{}' > /etc/ssh/ssh_host_ed25519_key.pub",
            a.host_pub
        )));
    }
}
