//! cloud-init's NoCloud seed for images that provision with cloud-init (their OS profile says
//! `provisioning: cloud-init`): a small FAT disk labelled CIDATA with `user-data` (the
//! machine's `cloud_init:`, or an empty cloud-config) and `meta-data` (instance id, the
//! machine's hostname and the run's SSH key for the image's default user). Made as a plain
//! file with mkfs.fat and mtools: no mount, no root.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a seed says besides the user's user-data.
pub struct Seed<'a> {
    pub instance_id: &'a str,
    pub hostname: &'a str,
    pub ssh_pubkey: &'a str,
    /// The machine's `cloud_init:` user-data; None: `#cloud-config` with nothing in it.
    pub user_data: Option<&'a str>,
}

/// Whether `text` is user-data cloud-init acts on: a cloud-config or a script.
pub fn user_data_kind_ok(text: &str) -> bool {
    text.starts_with("#cloud-config") || text.starts_with("#!")
}

/// The meta-data document (YAML; every value quoted).
pub fn meta_data(s: &Seed) -> String {
    let q = |v: &str| serde_json::to_string(v).unwrap_or_default();
    format!(
        "instance-id: {}\nlocal-hostname: {}\npublic-keys:\n  - {}\n",
        q(s.instance_id),
        q(s.hostname),
        q(s.ssh_pubkey.trim())
    )
}

/// Writes `dir/user-data`, `dir/meta-data` and the seed disk `dir/seed.img` made of them.
pub fn write(dir: &Path, s: &Seed) -> Result<PathBuf> {
    let user = dir.join("user-data");
    let meta = dir.join("meta-data");
    crate::private::write(&user, s.user_data.unwrap_or("#cloud-config\n{}\n"))?;
    crate::private::write(&meta, meta_data(s))?;
    let img = dir.join("seed.img");
    let _ = std::fs::remove_file(&img);
    run(Command::new("mkfs.fat")
        .args(["-C", "-n", "CIDATA"])
        .arg(&img)
        .arg("1024"))?;
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&img)
        .arg(&user)
        .arg(&meta)
        .arg("::/"))?;
    Ok(img)
}

fn run(cmd: &mut Command) -> Result<()> {
    let name = cmd.get_program().to_string_lossy().to_string();
    let out = cmd
        .output()
        .with_context(|| format!("running {name} (install dosfstools and mtools)"))?;
    if !out.status.success() {
        bail!(
            "{name} failed making the cloud-init seed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed<'a>(user_data: Option<&'a str>) -> Seed<'a> {
        Seed {
            instance_id: "aviary-s-t-node",
            hostname: "node",
            ssh_pubkey: "ssh-ed25519 AAAAC3Nz aviary-run\n",
            user_data,
        }
    }

    #[test]
    fn meta_data_names_the_instance_host_and_key() {
        assert_eq!(
            meta_data(&seed(None)),
            "instance-id: \"aviary-s-t-node\"\nlocal-hostname: \"node\"\npublic-keys:\n  - \"ssh-ed25519 AAAAC3Nz aviary-run\"\n"
        );
        assert!(user_data_kind_ok("#cloud-config\nruncmd: []\n"));
        assert!(user_data_kind_ok("#!/bin/sh\ntrue\n"));
        assert!(!user_data_kind_ok("runcmd: []\n"));
    }

    /// The seed is a FAT disk labelled CIDATA holding both files, read back with mtools.
    #[test]
    fn the_seed_is_a_cidata_fat_disk_with_both_files() {
        let d = tempfile::tempdir().unwrap();
        let ud = "#cloud-config\nwrite_files: [{path: /etc/x, content: hi}]\n";
        let img = write(d.path(), &seed(Some(ud))).unwrap();
        let mtype = |f: &str| {
            let out = Command::new("mtype")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(&img)
                .arg(format!("::/{f}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(mtype("user-data"), ud);
        assert!(mtype("meta-data").contains("local-hostname: \"node\""));
        let label = Command::new("mlabel")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-i"])
            .arg(&img)
            .arg("::")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&label.stdout).contains("CIDATA"));
    }
}
