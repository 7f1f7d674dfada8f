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
}
