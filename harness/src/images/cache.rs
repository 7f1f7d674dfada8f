//! The image cache outside git: built images keyed by the recipe's hash.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// `$AVIARY_CACHE`, else /var/cache/aviary for root, else ~/.cache/aviary.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("AVIARY_CACHE") {
        return PathBuf::from(p);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/aviary");
    }
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    home.join("aviary")
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_reader(&mut std::fs::File::open(path)?).map(|(digest, _)| digest)
}

/// What says a file was not written since it was hashed: device, inode, size, and mtime and
/// ctime in nanoseconds (any write moves ctime, and nothing but the clock sets it back).
fn stamp(path: &Path) -> std::io::Result<(String, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    let ctime = std::time::UNIX_EPOCH
        + std::time::Duration::new(
            m.ctime().max(0) as u64,
            m.ctime_nsec().clamp(0, 999_999_999) as u32,
        );
    Ok((
        format!(
            "{} {} {} {}.{:09} {}.{:09}",
            m.dev(),
            m.ino(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ),
        ctime,
    ))
}

/// sha256 of a file that must not change once built (a cached base image, its update payload),
/// remembered in `.NAME.sha256` beside it together with the file's stamp (device, inode, size,
/// mtime, ctime): a later call whose stamp is the same reads the digest from there instead of
/// the whole file (0.5 s for a 660 MB image, on every run's first command). Any write to the
/// file moves its ctime, so it is hashed again and a tampered image is still refused. A file
/// changed less than 2 s before it is hashed is not remembered (a write in the same clock tick
/// could leave the stamp alike); nor is anything when its folder is read-only.
pub fn sha256_file_remembered(path: &Path) -> std::io::Result<String> {
    remembered_at(path, std::time::SystemTime::now())
}

/// `sha256_file_remembered`, with `now` the time the file's age is measured against.
fn remembered_at(path: &Path, now: std::time::SystemTime) -> std::io::Result<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let memo = path.with_file_name(format!(".{name}.sha256"));
    let (before, ctime) = stamp(path)?;
    if let Ok(text) = std::fs::read_to_string(&memo) {
        if let Some((seen, digest)) = text.trim_end().rsplit_once(' ') {
            if seen == before && digest.len() == 64 {
                return Ok(digest.to_string());
            }
        }
    }
    let digest = sha256_file(path)?;
    let settled = now
        .duration_since(ctime)
        .is_ok_and(|age| age >= std::time::Duration::from_secs(2));
    if settled && stamp(path)?.0 == before {
        let tmp = memo.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, format!("{before} {digest}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &memo);
        }
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(digest)
}

/// The sha256 of everything `r` yields, and how many bytes that was (read in 1 MiB pieces).
pub fn sha256_reader(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&h.finalize()), len))
}

pub fn sha256_bytes(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of the recipe folder's files that `include` takes (sorted relative paths, contents, exec
/// bits) plus the release parameters: the cache key of a built image.
pub fn recipe_hash(
    recipe_dir: &Path,
    params: &[(&str, &str)],
    include: impl Fn(&str) -> bool,
) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect(recipe_dir, recipe_dir, &mut files)?;
    files.retain(|f| include(f));
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        let p = recipe_dir.join(&rel);
        let meta = std::fs::metadata(&p)?;
        use std::os::unix::fs::PermissionsExt;
        h.update(rel.as_bytes());
        h.update([0, (meta.permissions().mode() & 0o111 != 0) as u8]);
        h.update(std::fs::read(&p)?);
        h.update([0]);
    }
    for (k, v) in params {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update([0]);
    }
    Ok(hex(&h.finalize()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect(root, &p, out)?;
        } else if ft.is_file() || ft.is_symlink() {
            out.push(
                p.strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn recipe_hash_tracks_content_and_params() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a"), "1").unwrap();
        std::fs::write(d.path().join("sub/b"), "2").unwrap();
        let h1 = recipe_hash(d.path(), &[("version", "1")], all).unwrap();
        assert_eq!(h1, recipe_hash(d.path(), &[("version", "1")], all).unwrap());
        assert_ne!(h1, recipe_hash(d.path(), &[("version", "2")], all).unwrap());
        std::fs::write(d.path().join("sub/b"), "3").unwrap();
        assert_ne!(h1, recipe_hash(d.path(), &[("version", "1")], all).unwrap());
        // Files left out do not count.
        let no_sub = |f: &str| !f.starts_with("sub/");
        let h2 = recipe_hash(d.path(), &[("version", "1")], no_sub).unwrap();
        std::fs::write(d.path().join("sub/c"), "4").unwrap();
        assert_eq!(
            h2,
            recipe_hash(d.path(), &[("version", "1")], no_sub).unwrap()
        );
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_bytes(b"abc"));
    }

    #[test]
    fn a_remembered_digest_is_used_only_while_the_file_is_unwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("disk.qcow2");
        let memo = d.path().join(".disk.qcow2.sha256");
        std::fs::write(&p, b"abc").unwrap();
        // Just written: hashed, not remembered.
        assert_eq!(sha256_file_remembered(&p).unwrap(), sha256_bytes(b"abc"));
        assert!(!memo.exists());
        // A settled file: remembered, and the memo is what later calls read.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let (stamp_now, _) = stamp(&p).unwrap();
        std::fs::write(&memo, format!("{stamp_now} {}\n", "0".repeat(64))).unwrap();
        assert_eq!(sha256_file_remembered(&p).unwrap(), "0".repeat(64));
        // A write (same size, even with the old mtime put back) moves ctime: hashed again.
        // Not a wait: the kernel's file clock ticks every few ms, and two writes in one tick
        // would share a ctime (the case the 2 s rule above keeps out of the memo).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"abd").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(sha256_file_remembered(&p).unwrap(), sha256_bytes(b"abd"));
        // A stale memo is not rewritten while the file is fresh; once settled, it is.
        assert!(std::fs::read_to_string(&memo)
            .unwrap()
            .contains(&"0".repeat(64)));
        std::fs::remove_file(&memo).unwrap();
        let settled = d.path().join("payload.raucb");
        std::fs::write(&settled, b"xyz").unwrap();
        // Hashed 2.1 s after its last change (the clock passed in, not slept).
        let later = std::time::SystemTime::now() + std::time::Duration::from_millis(2100);
        assert_eq!(
            remembered_at(&settled, later).unwrap(),
            sha256_bytes(b"xyz")
        );
        let text = std::fs::read_to_string(d.path().join(".payload.raucb.sha256")).unwrap();
        assert!(
            text.ends_with(&format!(" {}\n", sha256_bytes(b"xyz"))),
            "{text}"
        );
        assert_eq!(
            sha256_file_remembered(&settled).unwrap(),
            sha256_bytes(b"xyz")
        );
    }
}
