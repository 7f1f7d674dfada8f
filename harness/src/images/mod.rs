//! Reference candidate images: the manifest, the recipe, the cache, and resolving what a test names.

pub mod cache;
pub mod manifest;

use crate::profile::{self, Profile, Profiles};
use crate::suite::ImageRef;
use anyhow::{bail, Context, Result};
use manifest::{DiskRecord, Manifest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The repository layout Aviary works in.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    /// The releases' manifest when not images/channels.yaml (`$AVIARY_MANIFEST`, a repro
    /// bundle's).
    manifest: Option<PathBuf>,
}

impl Workspace {
    /// The nearest folder upwards holding images/channels.yaml, else the one Aviary was built from.
    pub fn discover() -> Workspace {
        let mut dir = std::env::current_dir().ok();
        while let Some(d) = dir {
            if d.join("images/channels.yaml").is_file() {
                return Workspace::at(d);
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
    }

    /// The workspace at `root`, its manifest `$AVIARY_MANIFEST` when set.
    pub fn at(root: PathBuf) -> Workspace {
        Workspace {
            root,
            manifest: std::env::var_os("AVIARY_MANIFEST").map(PathBuf::from),
        }
    }

    /// The same workspace reading its releases from `manifest` (a repro bundle's).
    pub fn with_manifest(self, manifest: PathBuf) -> Workspace {
        Workspace {
            manifest: Some(manifest),
            ..self
        }
    }
    /// images/channels.yaml, or `$AVIARY_MANIFEST` (e.g. a manifest whose beta is a broken
    /// variant, to prove a suite catches it).
    pub fn manifest_path(&self) -> PathBuf {
        self.manifest
            .clone()
            .unwrap_or_else(|| self.root.join("images/channels.yaml"))
    }
    pub fn recipe_dir(&self) -> PathBuf {
        self.root.join("images/recipe")
    }
    /// images/profiles: one OS profile a file (`crate::profile`).
    pub fn profiles_dir(&self) -> PathBuf {
        self.root.join("images/profiles")
    }
    pub fn reports_dir(&self) -> PathBuf {
        self.root.join("reports")
    }
}

/// What the cache records beside each built image (`aviary-image.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltRecord {
    pub channel: String,
    pub version: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub kernel_version: String,
    pub recipe: String,
    pub sha256: String,
    pub size: u64,
    pub build_seconds: f64,
    #[serde(default)]
    pub payload_sha256: Option<String>,
    #[serde(default)]
    pub payload_size: Option<u64>,
}

/// What build.sh writes as image.json.
#[derive(Debug, Deserialize)]
struct RecipeOutput {
    kernel_release: String,
    kernel_version: String,
}

/// An image ready to boot: verified against its recorded digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolvedImage {
    /// Channel name, or the file name for a path image.
    pub name: String,
    pub channel: Option<String>,
    pub version: String,
    pub kernel_release: String,
    pub kernel_version: String,
    pub disk: PathBuf,
    pub sha256: String,
    /// The slot kernel, kept beside the disk for the accelerator probe.
    pub vmlinuz: Option<PathBuf>,
    pub fw_cfg_name: String,
    /// What the image's OS stack means by slots, updates and faults (reports written before
    /// profiles read back as the reference family's).
    #[serde(default)]
    pub profile: Arc<Profile>,
    /// The signed update payload (RAUC bundle) of this release's root slot.
    pub payload: Option<PathBuf>,
    pub payload_sha256: Option<String>,
    pub payload_size: Option<u64>,
}

impl ResolvedImage {
    pub fn field(&self, name: &str) -> Option<String> {
        Some(match name {
            "version" => self.version.clone(),
            "channel" => self.channel.clone().unwrap_or_default(),
            "kernel_release" => self.kernel_release.clone(),
            "kernel_version" => self.kernel_version.clone(),
            "digest" => self.sha256.clone(),
            _ => return None,
        })
    }
}

pub struct Images {
    pub ws: Workspace,
    pub manifest: Manifest,
    pub cache: PathBuf,
    pub profiles: Profiles,
}

impl Images {
    /// Reads the manifest and every profile its releases name (an unknown or invalid one is
    /// a `ManifestError` at the release's `profile:`).
    pub fn open(ws: Workspace) -> Result<Images> {
        let path = ws.manifest_path();
        let manifest = Manifest::load(&path)?;
        let profiles = Profiles::new(ws.profiles_dir());
        for (ch, r) in &manifest.channels {
            let name = r.profile.as_deref().unwrap_or(profile::DEFAULT);
            if let Err(message) = profiles.get(name) {
                return Err(
                    manifest::ManifestError::at_field(&path, ch, "profile", message).into(),
                );
            }
        }
        Ok(Images {
            ws,
            manifest,
            cache: cache::cache_root(),
            profiles,
        })
    }

    /// The profile of the image a machine names, without building it: a channel's from the
    /// manifest; a path image's from the image.json beside it (`profile`), else the reference
    /// family's.
    pub fn profile_for(&self, image: &ImageRef) -> Result<Arc<Profile>> {
        let p = match image {
            ImageRef::Channel(ch) => return self.profile_of(ch),
            ImageRef::Path(p) => p,
        };
        let meta: Option<serde_json::Value> = p
            .parent()
            .map(|d| d.join("image.json"))
            .and_then(|j| std::fs::read_to_string(j).ok())
            .and_then(|t| serde_json::from_str(&t).ok());
        let name = meta
            .as_ref()
            .and_then(|m| m.get("profile").and_then(|v| v.as_str()))
            .unwrap_or(profile::DEFAULT);
        self.profiles
            .get(name)
            .map_err(|e| anyhow::anyhow!("image {}: {e}", p.display()))
    }

    /// The profile of a channel's release.
    pub fn profile_of(&self, channel: &str) -> Result<Arc<Profile>> {
        let name = self
            .release(channel)?
            .profile
            .as_deref()
            .unwrap_or(profile::DEFAULT);
        self.profiles.get(name).map_err(|e| anyhow::anyhow!(e))
    }

    fn release(&self, channel: &str) -> Result<&manifest::Release> {
        self.manifest.channels.get(channel).with_context(|| {
            format!(
                "unknown channel `{channel}`; {} lists: {}",
                self.ws.manifest_path().display(),
                self.manifest.channel_names().join(", ")
            )
        })
    }

    /// The cache key of a channel's image under the current recipe.
    pub fn recipe_key(&self, channel: &str) -> Result<String> {
        let r = self.release(channel)?;
        let dir = self.ws.recipe_dir();
        let mut params = vec![
            ("channel", r.built_as.as_deref().unwrap_or(channel)),
            ("version", r.version.as_str()),
            ("kernel_package", r.kernel_package.as_str()),
        ];
        if let Some(v) = &r.variant {
            params.push(("variant", v.as_str()));
        }
        // A variant's script is part of that variant's recipe only: adding or changing one
        // variant does not rebuild every other image.
        let variant_file = r.variant.as_ref().map(|v| format!("variants/{v}.sh"));
        let include = |f: &str| !f.starts_with("variants/") || Some(f) == variant_file.as_deref();
        cache::recipe_hash(&dir, &params, include)
            .with_context(|| format!("reading recipe {}", dir.display()))
    }

    pub fn image_dir(&self, channel: &str) -> Result<PathBuf> {
        let r = self.release(channel)?;
        let key = self.recipe_key(channel)?;
        let variant = r
            .variant
            .as_ref()
            .map(|v| format!("-{v}"))
            .unwrap_or_default();
        Ok(self.cache.join("images").join(format!(
            "{}-{}{variant}-{}",
            r.built_as.as_deref().unwrap_or(channel),
            r.version,
            &key[..16]
        )))
    }

    fn built(&self, channel: &str) -> Result<Option<(PathBuf, BuiltRecord)>> {
        let dir = self.image_dir(channel)?;
        let rec = dir.join("aviary-image.json");
        if !rec.is_file() || !dir.join("disk.qcow2").is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&rec)?;
        let r: BuiltRecord = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a build record", rec.display()))?;
        Ok(Some((dir, r)))
    }

    /// The cached build for the current recipe (recorded in the manifest), unless `force`.
    fn cached(&mut self, channel: &str, force: bool) -> Result<Option<BuiltRecord>> {
        if force {
            return Ok(None);
        }
        let Some((_, rec)) = self.built(channel)? else {
            return Ok(None);
        };
        tracing::info!(channel, sha256 = %rec.sha256, "image is cached for this recipe");
        self.record(channel, &rec)?;
        Ok(Some(rec))
    }

    /// Builds a channel's image unless the cache holds one for the current recipe.
    pub fn build(&mut self, channel: &str, force: bool) -> Result<BuiltRecord> {
        if let Some(rec) = self.cached(channel, force)? {
            return Ok(rec);
        }
        let r = self.release(channel)?.clone();
        let dir = self.image_dir(channel)?;
        let images_dir = self.cache.join("images");
        std::fs::create_dir_all(&images_dir)
            .with_context(|| format!("creating cache {}", images_dir.display()))?;
        let _lock = FileLock::take(&images_dir.join(".build.lock"))?;
        // Another process may have built it while this one waited for the lock.
        if let Some(rec) = self.cached(channel, force)? {
            return Ok(rec);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(&images_dir)?;
        let log_path = images_dir.join(format!("{channel}-build.log"));
        let log = std::fs::File::create(&log_path)?;
        let script = self.ws.recipe_dir().join("build.sh");
        eprintln!(
            "aviary: building image `{channel}` {} ({}); log: {}",
            r.version,
            r.kernel_package,
            log_path.display()
        );
        let started = Instant::now();
        let status = std::process::Command::new("bash")
            .arg(&script)
            .args(["--channel", r.built_as.as_deref().unwrap_or(channel)])
            .args(["--version", &r.version])
            .args(["--kernel-package", &r.kernel_package])
            .args(r.variant.iter().flat_map(|v| ["--variant", v.as_str()]))
            .arg("--out")
            .arg(tmp.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "image build for `{channel}` failed ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail.join("\n")
            );
        }
        let out: RecipeOutput = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("image.json"))
                .context("build.sh wrote no image.json")?,
        )
        .context("build.sh wrote an invalid image.json")?;
        let disk = tmp.path().join("disk.qcow2");
        let rec = BuiltRecord {
            channel: channel.to_string(),
            version: r.version.clone(),
            kernel_package: r.kernel_package.clone(),
            kernel_release: out.kernel_release,
            kernel_version: out.kernel_version,
            recipe: self.recipe_key(channel)?,
            sha256: cache::sha256_file(&disk)?,
            size: std::fs::metadata(&disk)?.len(),
            build_seconds: started.elapsed().as_secs_f64(),
            payload_sha256: None,
            payload_size: None,
        };
        let payload = tmp.path().join("payload.raucb");
        let rec = if payload.is_file() {
            BuiltRecord {
                payload_sha256: Some(cache::sha256_file(&payload)?),
                payload_size: Some(std::fs::metadata(&payload)?.len()),
                ..rec
            }
        } else {
            rec
        };
        // The slot's kernel, beside the disk: the accelerator probe boots it.
        let kernel = crate::disk::read_file(
            &disk,
            "ROOT-A",
            &format!("/boot/vmlinuz-{}", rec.kernel_release),
        )
        .context("extracting the kernel for the accelerator probe")?;
        if kernel.is_empty() {
            anyhow::bail!(
                "the built image's ROOT-A has an empty /boot/vmlinuz-{}",
                rec.kernel_release
            );
        }
        std::fs::write(tmp.path().join("vmlinuz"), kernel)?;
        std::fs::write(
            tmp.path().join("aviary-image.json"),
            serde_json::to_string_pretty(&rec)?,
        )?;
        // Base images are read-only inputs.
        set_readonly(&disk)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(tmp.keep(), &dir)?;
        eprintln!(
            "aviary: built `{channel}` in {:.0}s: {} ({} MiB, sha256 {})",
            rec.build_seconds,
            dir.join("disk.qcow2").display(),
            rec.size >> 20,
            rec.sha256
        );
        self.record(channel, &rec)?;
        Ok(rec)
    }

    /// Writes a build's facts into channels.yaml (only when they changed).
    fn record(&mut self, channel: &str, rec: &BuiltRecord) -> Result<()> {
        let entry = self
            .manifest
            .channels
            .get_mut(channel)
            .expect("known channel");
        let disk = Some(DiskRecord {
            sha256: rec.sha256.clone(),
            size: rec.size,
        });
        let payload = match (&rec.payload_sha256, rec.payload_size) {
            (Some(sha256), Some(size)) => Some(DiskRecord {
                sha256: sha256.clone(),
                size,
            }),
            _ => None,
        };
        let changed = entry.kernel_release.as_deref() != Some(&rec.kernel_release)
            || entry.kernel_version.as_deref() != Some(&rec.kernel_version)
            || entry.recipe.as_deref() != Some(&rec.recipe)
            || entry.disk != disk
            || entry.payload != payload;
        if changed {
            entry.kernel_release = Some(rec.kernel_release.clone());
            entry.kernel_version = Some(rec.kernel_version.clone());
            entry.recipe = Some(rec.recipe.clone());
            entry.disk = disk;
            entry.payload = payload;
            self.manifest.save(&self.ws.manifest_path())?;
        }
        Ok(())
    }

    /// Finds (building if needed) and verifies the image a test names.
    pub fn resolve(&mut self, image: &ImageRef) -> Result<ResolvedImage> {
        match image {
            ImageRef::Channel(ch) => {
                let dir = self.image_dir(ch)?;
                let disk = dir.join("disk.qcow2");
                // A build record whose disk is gone: the cache was damaged (a disk removed to
                // free space). Say so rather than rebuilding over it behind the user's back.
                if dir.join("aviary-image.json").is_file() && !disk.is_file() {
                    bail!(
                        "image `{ch}`: its cached disk {} is missing (its build record {} is there); expected the disk built for the current recipe\n  hint: rebuild it with `aviary images build {ch}`",
                        disk.display(),
                        dir.join("aviary-image.json").display()
                    );
                }
                let rec = match self.built(ch)? {
                    Some((_, rec)) => rec,
                    None => self.build(ch, false)?,
                };
                let seen = cache::sha256_file_remembered(&disk)
                    .with_context(|| format!("reading {}", disk.display()))?;
                if seen != rec.sha256 {
                    bail!(
                        "image `{ch}` at {} does not match its recorded digest (expected sha256 {}, found {}): it was modified after it was built; refusing to use it\n  hint: rebuild it with `aviary images build {ch} --force`",
                        disk.display(),
                        rec.sha256,
                        seen
                    );
                }
                let vmlinuz = dir.join("vmlinuz");
                let payload = dir.join("payload.raucb");
                let payload = payload.is_file().then_some(payload);
                if let (Some(p), Some(want)) = (&payload, &rec.payload_sha256) {
                    let seen = cache::sha256_file_remembered(p)?;
                    if &seen != want {
                        bail!(
                            "update payload {} does not match its recorded digest (expected sha256 {want}, found {seen}); refusing to use it",
                            p.display()
                        );
                    }
                }
                let profile = self.profile_of(ch)?;
                Ok(ResolvedImage {
                    fw_cfg_name: profile.ignition_fw_cfg.clone(),
                    profile,
                    payload,
                    payload_sha256: rec.payload_sha256.clone(),
                    payload_size: rec.payload_size,
                    name: ch.clone(),
                    channel: Some(ch.clone()),
                    version: rec.version,
                    kernel_release: rec.kernel_release,
                    kernel_version: rec.kernel_version,
                    disk,
                    sha256: seen,
                    vmlinuz: vmlinuz.is_file().then_some(vmlinuz),
                })
            }
            ImageRef::Path(p) => {
                if !p.is_file() {
                    bail!(
                        "image file {} does not exist; expected a qcow2 disk image (a path given to --image or a suite's `image:`, or a channel of {})",
                        p.display(),
                        self.ws.manifest_path().display()
                    );
                }
                let sha256 =
                    cache::sha256_file(p).with_context(|| format!("reading {}", p.display()))?;
                // A path image may carry the recipe's image.json beside it.
                let meta: Option<serde_json::Value> = p
                    .parent()
                    .map(|d| d.join("image.json"))
                    .and_then(|j| std::fs::read_to_string(j).ok())
                    .and_then(|t| serde_json::from_str(&t).ok());
                let get = |k: &str| {
                    meta.as_ref()
                        .and_then(|m| m.get(k))
                        .and_then(|v| v.as_str())
                        .unwrap_or("unknown")
                        .to_string()
                };
                let vmlinuz = p.with_file_name("vmlinuz");
                let profile = self.profile_for(image)?;
                Ok(ResolvedImage {
                    fw_cfg_name: profile.ignition_fw_cfg.clone(),
                    profile,
                    payload: None,
                    payload_sha256: None,
                    payload_size: None,
                    name: p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    channel: meta
                        .as_ref()
                        .and_then(|m| m.get("channel").and_then(|v| v.as_str()).map(String::from)),
                    version: get("version"),
                    kernel_release: get("kernel_release"),
                    kernel_version: get("kernel_version"),
                    disk: p.canonicalize()?,
                    sha256,
                    vmlinuz: vmlinuz.is_file().then_some(vmlinuz),
                })
            }
        }
    }

    /// One line per channel: version, kernel, build state.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (ch, r) in &self.manifest.channels {
            let state = match self.built(ch)? {
                Some((dir, rec)) => format!(
                    "built {} ({} MiB)",
                    dir.join("disk.qcow2").display(),
                    rec.size >> 20
                ),
                None => "not built for the current recipe".into(),
            };
            out.push(format!(
                "{ch:<8} {:<10} {:<34} {}",
                r.version,
                r.kernel_release.as_deref().unwrap_or(&r.kernel_package),
                state
            ));
        }
        Ok(out)
    }
}

fn set_readonly(p: &Path) -> Result<()> {
    let mut perm = std::fs::metadata(p)?.permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(p, perm)?;
    Ok(())
}

/// An exclusive advisory lock held for its lifetime.
struct FileLock(std::fs::File);

impl FileLock {
    fn take(path: &Path) -> Result<FileLock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock {}", path.display()))?;
        // SAFETY: flock on a valid open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
