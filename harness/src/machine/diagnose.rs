//! What the candidate's own disk says about a login it refused: read offline from the
//! machine's overlay (QEMU paused, no mount, no root), so the failure names its cause.

use super::boot_watch::BootFailure;

/// Where Ignition puts the `core` user's keys (an sshd_config drop-in must point sshd at it).
pub const IGNITION_KEYS: &str = "/home/core/.ssh/authorized_keys.d/ignition";

/// The slot GRUB said it booted ("aviary: booting slot B"), if the console says.
pub fn booted_slot(console: &str) -> Option<char> {
    console.lines().rev().find_map(|l| {
        let rest = l.split("booting slot ").nth(1)?;
        rest.chars().next().filter(|c| c.is_ascii_uppercase())
    })
}

/// The partition of the root GRUB said it booted ("ROOT-B"), if the console says.
pub fn booted_root(console: &str) -> Option<String> {
    booted_slot(console).map(|slot| format!("ROOT-{slot}"))
}

/// Turns a refused key into the failure it proves. `keys` is the run's public key line;
/// `read` reads a file of a partition (label, path) of the machine's disk. On a first boot with
/// an Ignition config, a root with no Ignition key file means Ignition never ran; a key file
/// holding the run's key means sshd does not read it. With no slot on the console or an
/// unreadable disk, the refusal stands as it is (saying why the disk told nothing).
pub fn key_refusal(
    refused: BootFailure,
    console: &str,
    pubkey: &str,
    first_boot_with_config: bool,
    read: impl FnOnce(&str, &str) -> anyhow::Result<Vec<u8>>,
) -> BootFailure {
    let BootFailure::KeyRefused { methods, tries, .. } = refused else {
        return refused;
    };
    let Some(label) = booted_root(console) else {
        return BootFailure::KeyRefused {
            methods,
            tries,
            diagnosis: None,
        };
    };
    let key_body = pubkey.split_whitespace().nth(1).unwrap_or("");
    let diagnosis = match read(&label, IGNITION_KEYS) {
        Ok(bytes) if bytes.is_empty() => format!(
            "{label}:{IGNITION_KEYS} exists, but its data was still not on the disk after the guest ran on for its writeback, so which key it holds is unknown"
        ),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            if !key_body.is_empty() && text.contains(key_body) {
                format!("the booted root ({label}) holds the run's key in {IGNITION_KEYS}, so Ignition provisioned it and sshd does not accept it from there (does sshd's AuthorizedKeysFile list that file?)")
            } else {
                format!("{label}:{IGNITION_KEYS} exists but holds another key than this run's")
            }
        }
        Err(e) if first_boot_with_config && is_missing(&e) => {
            return BootFailure::IgnitionNeverRan {
                evidence: format!(
                    "sshd answered and refused the run's key (it offered: {methods}), and the booted root ({label}) has no {IGNITION_KEYS}: the config's user and key were never written"
                ),
            };
        }
        Err(e) if is_missing(&e) => format!("the booted root ({label}) has no {IGNITION_KEYS}"),
        Err(e) => {
            format!("reading {label}:{IGNITION_KEYS} from the disk to tell why failed: {e:#}")
        }
    };
    BootFailure::KeyRefused {
        methods,
        tries,
        diagnosis: Some(diagnosis),
    }
}

/// debugfs's answer for a path that is not there.
fn is_missing(e: &anyhow::Error) -> bool {
    let t = format!("{e:#}");
    t.contains("File not found") || t.contains("not found by ext2_lookup")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRUNKEY aviary-run";

    fn refused() -> BootFailure {
        BootFailure::KeyRefused {
            methods: "publickey".into(),
            tries: 3,
            diagnosis: None,
        }
    }

    const CONSOLE: &str = "  Booting `Slot A (OK=1 TRY=1)'\naviary: booting slot A\nnode login: ";

    #[test]
    fn a_missing_key_file_on_a_first_boot_means_ignition_never_ran() {
        let missing = |_: &str, p: &str| -> anyhow::Result<Vec<u8>> {
            Err(anyhow!(
                "x: cannot read {p} from partition ROOT-A: {p}: File not found by ext2_lookup"
            ))
        };
        let f = key_refusal(refused(), CONSOLE, KEY, true, missing);
        assert_eq!(
            f.to_string(),
            "boot failed at the initramfs stage: Ignition never ran on this first boot with a config: sshd answered and refused the run's key (it offered: publickey), and the booted root (ROOT-A) has no /home/core/.ssh/authorized_keys.d/ignition: the config's user and key were never written"
        );
        // Not a first boot: the refusal stands, with what the disk says.
        let f = key_refusal(refused(), CONSOLE, KEY, false, missing);
        assert!(
            f.to_string().contains("the booted root (ROOT-A) has no"),
            "{f}"
        );
    }

    #[test]
    fn a_provisioned_key_that_sshd_refuses_says_so() {
        let seen = std::cell::RefCell::new(Vec::new());
        let has_key = |l: &str, p: &str| -> anyhow::Result<Vec<u8>> {
            seen.borrow_mut().push(format!("{l}:{p}"));
            Ok(format!("{KEY}\n").into_bytes())
        };
        let f = key_refusal(refused(), CONSOLE, KEY, true, has_key);
        assert_eq!(
            seen.borrow().as_slice(),
            ["ROOT-A:/home/core/.ssh/authorized_keys.d/ignition"]
        );
        let text = f.to_string();
        assert!(text.starts_with("boot failed at the login stage: sshd answered but refused the run's key (3 tries; the server offered: publickey); the booted root (ROOT-A) holds the run's key"), "{text}");
    }

    #[test]
    fn without_a_slot_or_a_readable_disk_the_refusal_stands_and_says_why() {
        let unreadable = |_: &str, _: &str| -> anyhow::Result<Vec<u8>> { Err(anyhow!("no GPT")) };
        assert_eq!(
            key_refusal(refused(), "no grub here", KEY, true, unreadable),
            refused()
        );
        let f = key_refusal(refused(), CONSOLE, KEY, true, unreadable).to_string();
        assert!(
            f.ends_with("reading ROOT-A:/home/core/.ssh/authorized_keys.d/ignition from the disk to tell why failed: no GPT"),
            "{f}"
        );
        assert_eq!(booted_slot("aviary: booting slot B\n"), Some('B'));
        assert_eq!(
            booted_root("aviary: booting slot B\n").as_deref(),
            Some("ROOT-B")
        );
    }

    #[test]
    fn a_key_file_whose_data_never_reached_the_disk_says_so() {
        let empty = |_: &str, _: &str| -> anyhow::Result<Vec<u8>> { Ok(Vec::new()) };
        let f = key_refusal(refused(), CONSOLE, KEY, true, empty).to_string();
        assert!(
            f.ends_with("ROOT-A:/home/core/.ssh/authorized_keys.d/ignition exists, but its data was still not on the disk after the guest ran on for its writeback, so which key it holds is unknown"),
            "{f}"
        );
    }
}
