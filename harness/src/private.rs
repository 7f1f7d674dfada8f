//! Folders and files only their owner may read: run folders (they hold the run's SSH key and
//! each machine's Ignition config, which may carry a suite's secrets), key folders, configs.

use std::io::Write;
use std::path::Path;

/// Creates `p` and any missing parents with mode 0700, and makes `p` itself 0700 if it
/// already existed.
pub fn dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

/// Writes `data` to `p` (created or truncated) with mode 0600.
pub fn write(p: &Path, data: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(p)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data.as_ref())
}

/// Copies `from` to `to` with mode 0600.
pub fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    write(to, std::fs::read(from)?)
}

/// Proves a folder takes files: writes and syncs a small probe, then removes it. A read-only
/// or full filesystem fails here rather than halfway through a run.
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let p = dir.join(".aviary-write-probe");
    let r = (|| {
        let mut f = std::fs::File::create(&p)?;
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&p);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_are_0700_and_files_0600() {
        let d = tempfile::tempdir().unwrap();
        let nested = d.path().join("a/b");
        dir(&nested).unwrap();
        assert_eq!(mode(&d.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        // An existing open folder is closed.
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        let f = nested.join("config.ign");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, "{}").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{}");
        let g = nested.join("copy.ign");
        copy(&f, &g).unwrap();
        assert_eq!(mode(&g), 0o600);
        probe_writable(&nested).unwrap();
        assert_eq!(
            std::fs::read_dir(&nested).unwrap().count(),
            2,
            "probe removed"
        );
        assert!(probe_writable(&d.path().join("missing")).is_err());
    }
}
