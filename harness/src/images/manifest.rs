//! images/channels.yaml: the releases per channel, with their kernels and digests.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub channels: BTreeMap<String, Release>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    /// Debian package of the kernel, e.g. linux-image-6.1.0-47-cloud-amd64.
    pub kernel_package: String,
    /// The OS profile of the release (images/profiles/NAME.yaml): firmware, the Ignition
    /// fw_cfg key, slots, update and faults. Absent: `aviary-rauc`, the reference family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A deliberately broken candidate: images/recipe/variants/NAME.sh runs in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The channel this release was built for, when it was promoted from there: a promoted
    /// release is the very same image (same cache entry, same digests), not a rebuild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_as: Option<String>,
    /// When the release entered this channel (RFC 3339 UTC), set by `aviary gate --promote`:
    /// the promotion gate's soak time counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered: Option<String>,
    /// Recorded by `aviary images build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskRecord>,
    /// The signed update payload (RAUC bundle) of the release's root slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<DiskRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskRecord {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}:{line}:{column}: channel `{channel}`: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        channel: String,
        message: String,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

const HEADER: &str = "# Reference releases, one per channel (alpha -> beta -> stable).\n\
# version and kernel_package are inputs; kernel_release, kernel_version, recipe and disk\n\
# are recorded by `aviary images build` (the image itself lives in the cache, never in git).\n";

impl ManifestError {
    /// A problem with one release's `key` that the manifest alone cannot see (its profile).
    pub fn at_field(path: &Path, channel: &str, key: &'static str, message: String) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let (line, column) = place(&text, channel, Some(key));
        ManifestError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            channel: channel.to_string(),
            message,
        }
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_saphyr::from_str(text).map_err(|e| {
            let err = crate::suite::LoadError::yaml(path, &e);
            let message = match err.hint {
                Some(h) => format!("{}\n  hint: {h}", err.message),
                None => err.message,
            };
            ManifestError::Parse {
                path: path.to_path_buf(),
                line: err.loc.line,
                column: err.loc.column,
                message,
            }
        })?;
        if let Err((channel, key, message)) = m.check() {
            let (line, column) = place(text, &channel, key);
            return Err(ManifestError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                channel,
                message,
            });
        }
        Ok(m)
    }

    /// The first invalid channel: its name, the key at fault (None: the name itself) and why.
    fn check(&self) -> Result<(), (String, Option<&'static str>, String)> {
        for (name, r) in &self.channels {
            let invalid = |key, message: String| (name.clone(), key, message);
            if !recipe_variant_name_ok(name) {
                return Err(invalid(
                    None,
                    "channel names use lowercase letters, digits and '-'".into(),
                ));
            }
            if !is_version(&r.version) {
                return Err(invalid(
                    Some("version"),
                    format!("version `{}` is not MAJOR.MINOR.PATCH", r.version),
                ));
            }
            if !r.kernel_package.starts_with("linux-image-") {
                return Err(invalid(
                    Some("kernel_package"),
                    format!(
                        "kernel_package `{}` is not a linux-image-* package",
                        r.kernel_package
                    ),
                ));
            }
            if let Some(v) = &r.variant {
                if !recipe_variant_name_ok(v) {
                    return Err(invalid(
                        Some("variant"),
                        format!("variant `{v}` is not a name (lowercase letters, digits, '-')"),
                    ));
                }
            }
            if let Some(b) = &r.built_as {
                if !recipe_variant_name_ok(b) {
                    return Err(invalid(
                        Some("built_as"),
                        format!(
                            "built_as `{b}` is not a channel name (lowercase letters, digits, '-')"
                        ),
                    ));
                }
            }
            if let Some(e) = &r.entered {
                crate::clock::parse_timestamp(e)
                    .map_err(|m| invalid(Some("entered"), format!("entered: {m}")))?;
            }
            if let Some(d) = &r.disk {
                if d.sha256.len() != 64 || !d.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid(
                        Some("disk"),
                        "disk.sha256 is not a sha256 hex digest".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes atomically: a temporary file beside it, then rename.
    pub fn save(&self, path: &Path) -> Result<(), ManifestError> {
        let body = serde_saphyr::to_string(self).map_err(|e| ManifestError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let tmp = path.with_extension("yaml.tmp");
        let write = || -> std::io::Result<()> {
            // Keep the file's own leading comment (a fixture says what it is for).
            let kept: String = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .take_while(|l| l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            let header = if kept.is_empty() { HEADER } else { &kept };
            std::fs::write(&tmp, format!("{header}{body}"))?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|source| ManifestError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn channel_names(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }
}

/// Where channel `channel` (or its `key`) is written in `text`, which parsed as a manifest.
/// The manifest types carry no spans (they are also written back); a second, loose reading
/// finds the place. Line 1, column 1 if even that fails.
fn place(text: &str, channel: &str, key: Option<&str>) -> (u64, u64) {
    #[derive(Deserialize)]
    struct Places {
        channels: HashMap<Spanned<String>, Spanned<HashMap<String, Spanned<IgnoredAny>>>>,
    }
    let at = |l: &serde_saphyr::Location| (l.line().max(1), l.column().max(1));
    let Ok(places) = serde_saphyr::from_str::<Places>(text) else {
        return (1, 1);
    };
    let Some((name, keys)) = places.channels.iter().find(|(n, _)| n.value == channel) else {
        return (1, 1);
    };
    match key.and_then(|k| keys.value.get(k)) {
        Some(v) => at(&v.referenced),
        None => at(&name.referenced),
    }
}

fn recipe_variant_name_ok(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "channels:\n  stable:\n    version: 1000.0.0\n    kernel_package: linux-image-6.1.0-47-cloud-amd64\n";

    #[test]
    fn parses_and_round_trips() {
        let m = Manifest::parse(Path::new("c.yaml"), GOOD).unwrap();
        assert_eq!(m.channels["stable"].version, "1000.0.0");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("channels.yaml");
        m.save(&p).unwrap();
        assert_eq!(Manifest::load(&p).unwrap(), m);
        assert!(!p.with_extension("yaml.tmp").exists());
        assert!(std::fs::read_to_string(&p).unwrap().starts_with(HEADER));
        // A manifest's own leading comment survives a save.
        std::fs::write(&p, format!("# a seeded bad candidate\n# (fixture)\n{GOOD}")).unwrap();
        m.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# a seeded bad candidate\n# (fixture)\nchannels"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_place_and_field() {
        let e = Manifest::parse(Path::new("c.yaml"), &GOOD.replace("version:", "verzion:"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:3:5: "), "{e}");
        assert!(e.contains("verzion"), "{e}");
        let e = Manifest::parse(Path::new("c.yaml"), &GOOD.replace("1000.0.0", "1000"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml:3:14: channel `stable`: ") && e.contains("MAJOR.MINOR.PATCH"),
            "{e}"
        );
        // A bad channel name points at the name.
        let e = Manifest::parse(Path::new("c.yaml"), &GOOD.replace("stable:", "Stable:"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:2:3: channel `Stable`: "), "{e}");
    }
}
