//! `--promote`: the release moves to the next channel in channels.yaml (atomically) and the
//! move is appended to promotions.log beside it.

use crate::images::manifest::Manifest;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The line appended to promotions.log, and where.
#[derive(Debug)]
pub struct Promotion {
    pub log: PathBuf,
    pub line: String,
}

/// Copies the `from` channel's release (same image, same digests) into `to`, recording when it
/// entered `to` and which channel it was built for.
pub fn promote(
    manifest_path: &Path,
    from: &str,
    to: &str,
    release: &str,
    verdict_sha256: &str,
    now: i64,
) -> Result<Promotion> {
    let mut m = Manifest::load(manifest_path)?;
    let Some(src) = m.channels.get(from).cloned() else {
        bail!("{}: no channel `{from}`", manifest_path.display());
    };
    if src.version != release {
        bail!(
            "{}: {from} is {} now, not {release}; not promoted",
            manifest_path.display(),
            src.version
        );
    }
    let Some(disk) = src.disk.clone() else {
        bail!(
            "{}: {from} {release} records no disk digest (build it first); not promoted",
            manifest_path.display()
        );
    };
    let when = crate::clock::rfc3339(now);
    let mut entry = src.clone();
    entry.built_as = Some(src.built_as.clone().unwrap_or_else(|| from.to_string()));
    entry.entered = Some(when.clone());
    m.channels.insert(to.to_string(), entry);
    m.save(manifest_path)?;
    let log = manifest_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("promotions.log");
    let line = format!(
        "{when} release={release} digest=sha256:{} from={from} to={to} verdict=sha256:{verdict_sha256}",
        disk.sha256
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    writeln!(f, "{line}").with_context(|| format!("appending to {}", log.display()))?;
    f.sync_all()?;
    Ok(Promotion { log, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "# reference releases\nchannels:\n  beta:\n    version: 1001.0.0\n    kernel_package: linux-image-6.1.0-53-cloud-amd64\n    disk: { sha256: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, size: 10 }\n  stable:\n    version: 1000.0.0\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n";

    #[test]
    fn moves_the_same_release_and_logs_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("channels.yaml");
        std::fs::write(&p, MANIFEST).unwrap();
        let now = crate::clock::parse_timestamp("2026-12-02T10:00:00Z").unwrap();
        let pr = promote(&p, "beta", "stable", "1001.0.0", "ff", now).unwrap();
        let m = Manifest::load(&p).unwrap();
        let s = &m.channels["stable"];
        assert_eq!(s.version, "1001.0.0");
        assert_eq!(s.disk, m.channels["beta"].disk);
        assert_eq!(s.built_as.as_deref(), Some("beta"));
        assert_eq!(s.entered.as_deref(), Some("2026-12-02T10:00:00Z"));
        assert_eq!(m.channels["beta"].built_as, None);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("# reference releases\n"));
        let log = std::fs::read_to_string(&pr.log).unwrap();
        assert_eq!(
            log,
            format!("2026-12-02T10:00:00Z release=1001.0.0 digest=sha256:{} from=beta to=stable verdict=sha256:ff\n", "b".repeat(64))
        );
        // A second promotion appends; no temporary file is left.
        promote(&p, "stable", "beta", "1001.0.0", "ee", now).unwrap();
        assert_eq!(std::fs::read_to_string(&pr.log).unwrap().lines().count(), 2);
        assert_eq!(
            Manifest::load(&p).unwrap().channels["beta"]
                .built_as
                .as_deref(),
            Some("beta")
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn refuses_a_release_that_is_not_the_channels() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("channels.yaml");
        std::fs::write(&p, MANIFEST).unwrap();
        let e = promote(&p, "beta", "stable", "1002.0.0", "ff", 0).unwrap_err();
        assert!(
            e.to_string().contains("beta is 1001.0.0 now, not 1002.0.0"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), MANIFEST);
        assert!(!d.path().join("promotions.log").exists());
    }
}
