//! Boot-once snapshots: the first machine of a run with a given image and provisioning config
//! boots cold to SSH, passes the console, journal and failed-unit checks, and is saved (its
//! overlay frozen, its RAM and device state migrated to a file). Every later machine with the
//! same key starts from it: a fresh overlay on the frozen one, `-incoming defer`, and a new
//! identity (machine-id, SSH host keys, clock, entropy), see `machine::identity`.
//!
//! The key covers everything the guest can see: the image's digest, the Ignition config's
//! bytes (hostname, user key, files, units), memory, vCPUs, the NICs and their MAC, the fw_cfg
//! name and the accelerator. Templates live in the run's private socket folder and go with it.

use crate::failure::{Cause, Failure};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// A saved machine: its frozen disk and its state file.
#[derive(Debug)]
pub struct Template {
    pub key: String,
    pub disk: PathBuf,
    pub state: PathBuf,
    /// Cold boot to SSH login of the template, and the save.
    pub boot_s: f64,
    pub save_s: f64,
    pub state_bytes: u64,
    /// A template saved after a test's setup steps: their log (see `runner::template::setup_key`).
    pub setup: Option<String>,
    /// The setup's `update` steps.
    pub updates: Vec<super::result::UpdateRecord>,
}

/// What decides a snapshot's identity (see the module comment).
pub struct KeyParts<'a> {
    pub image_sha256: &'a str,
    pub ignition: &'a [u8],
    pub memory_mib: u32,
    pub cpus: u32,
    pub cluster_mac: Option<&'a str>,
    pub fw_cfg_name: &'a str,
    pub accel: &'a str,
}

impl KeyParts<'_> {
    pub fn key(&self) -> String {
        digest([
            self.image_sha256.as_bytes(),
            self.ignition,
            self.memory_mib.to_string().as_bytes(),
            self.cpus.to_string().as_bytes(),
            self.cluster_mac.unwrap_or("-").as_bytes(),
            self.fw_cfg_name.as_bytes(),
            self.accel.as_bytes(),
        ])
    }
}

/// 16 hex digits of the SHA-256 of `parts`, each length-prefixed so that no two different part
/// lists hash alike.
pub fn digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a template could not be made, and whose fault that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The candidate did not boot (a definite boot failure, or SSH never came up).
    Boot(Failure),
    /// It booted, and the console, journal or failed-unit checks found a problem.
    Checks(String),
    /// The shared setup's steps (or the checks after them) failed on the candidate.
    Setup(Failure),
    /// The harness or host failed (QEMU, disk, saving the state): no verdict on the candidate.
    Harness(String),
}

impl TemplateError {
    /// What went wrong, for the tests that fail with it.
    pub fn cause(&self) -> Cause {
        match self {
            TemplateError::Boot(f) | TemplateError::Setup(f) => f.cause,
            TemplateError::Checks(_) => Cause::Checks,
            TemplateError::Harness(_) => Cause::Host,
        }
    }

    /// Whether a test waiting on this template fails with its cause (the candidate's fault),
    /// instead of booting cold. A failed check fails only tests that keep every check on.
    pub fn fails(&self, checks: crate::suite::Checks) -> bool {
        match self {
            TemplateError::Boot(_) | TemplateError::Setup(_) => true,
            TemplateError::Checks(_) => checks == crate::suite::Checks::default(),
            TemplateError::Harness(_) => false,
        }
    }
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Boot(b) => f.write_str(&b.detail),
            TemplateError::Harness(m) => f.write_str(m),
            TemplateError::Checks(m) => write!(f, "its first boot did not pass the checks: {m}"),
            TemplateError::Setup(s) => write!(f, "the setup failed: {}", s.message),
        }
    }
}

type Slot = Arc<OnceCell<Result<Arc<Template>, TemplateError>>>;

/// The run's templates, made once per key even when tests run at once.
pub struct Cache {
    dir: PathBuf,
    slots: Mutex<HashMap<String, Slot>>,
    /// Keys that two or more machines of the plan share: only those are worth a template
    /// (making one costs a cold boot, checks and a save; a key used once boots cold).
    shared_keys: std::collections::HashSet<String>,
}

impl Cache {
    /// `planned`: the key of every machine of the plan that may start from a snapshot.
    pub fn new(dir: PathBuf, planned: impl IntoIterator<Item = String>) -> Cache {
        let mut count: HashMap<String, usize> = HashMap::new();
        for k in planned {
            *count.entry(k).or_default() += 1;
        }
        Cache {
            dir,
            slots: Mutex::new(HashMap::new()),
            shared_keys: count
                .into_iter()
                .filter(|(_, n)| *n >= 2)
                .map(|(k, _)| k)
                .collect(),
        }
    }

    /// Whether machines with this key start from a template.
    pub fn worth(&self, key: &str) -> bool {
        self.shared_keys.contains(key)
    }

    /// How many keys of the plan get a template.
    pub fn templates_planned(&self) -> usize {
        self.shared_keys.len()
    }

    /// Where the template of `key` keeps its overlay, state file and logs.
    pub fn dir_of(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The template of `key`, made by `make` if no test made it yet; a failed make is
    /// remembered (the next machine with that key boots cold instead of failing the same way).
    pub async fn get_or_make<F, Fut>(
        &self,
        key: &str,
        make: F,
    ) -> Result<Arc<Template>, TemplateError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<Template, TemplateError>>,
    {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let dir = self.dir_of(key);
        slot.get_or_init(|| async move { make(dir).await.map(Arc::new) })
            .await
            .clone()
    }

    /// Whether a template was tried for `key` and failed (its machines then boot cold).
    pub fn failed(&self, key: &str) -> Option<TemplateError> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(key)?.get()? {
            Err(e) => Some(e.clone()),
            Ok(_) => None,
        }
    }
}

/// Copies a template's logs next to the run's reports (its folder goes with the socket dir).
pub fn keep_logs(template_dir: &Path, run_dir: &Path, key: &str) {
    let to = run_dir.join("snapshots").join(key);
    if std::fs::create_dir_all(&to).is_err() {
        return;
    }
    for f in [
        "console.log",
        "journal.txt",
        "qemu-cmdline.txt",
        "qemu-stderr.log",
        "setup.log",
    ] {
        let _ = std::fs::copy(template_dir.join(f), to.join(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts<'static> {
        KeyParts {
            image_sha256: "abc",
            ignition: b"{\"ignition\":{}}",
            memory_mib: 1024,
            cpus: 2,
            cluster_mac: None,
            fw_cfg_name: "opt/com.coreos/config",
            accel: "tcg",
        }
    }

    #[test]
    fn the_key_changes_with_everything_the_guest_sees() {
        let k = parts().key();
        assert_eq!(k.len(), 16);
        assert_eq!(k, parts().key());
        let variants = [
            KeyParts {
                image_sha256: "abd",
                ..parts()
            },
            KeyParts {
                ignition: b"{\"ignition\":{ }}",
                ..parts()
            },
            KeyParts {
                memory_mib: 2048,
                ..parts()
            },
            KeyParts { cpus: 1, ..parts() },
            KeyParts {
                cluster_mac: Some("52:54:00:a7:00:01"),
                ..parts()
            },
            KeyParts {
                fw_cfg_name: "opt/org.flatcar-linux/config",
                ..parts()
            },
            KeyParts {
                accel: "kvm",
                ..parts()
            },
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(k);
        for v in variants {
            assert!(seen.insert(v.key()), "a part did not change the key");
        }
    }

    #[tokio::test]
    async fn a_template_is_made_once_per_key_even_when_asked_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::new(
            dir.path().to_path_buf(),
            ["k1", "k1", "k2", "k3"].map(String::from),
        ));
        assert!(cache.worth("k1") && !cache.worth("k2") && cache.templates_planned() == 1);
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (cache, made) = (cache.clone(), made.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_make("k1", |d| async move {
                        made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok(Template {
                            key: "k1".into(),
                            disk: d.join("overlay.qcow2"),
                            state: d.join("state"),
                            boot_s: 1.0,
                            save_s: 0.5,
                            state_bytes: 1,
                            setup: None,
                            updates: vec![],
                        })
                    })
                    .await
            }));
        }
        for t in tasks {
            let t = t.await.unwrap().unwrap();
            assert_eq!(t.disk, dir.path().join("k1/overlay.qcow2"));
        }
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
        let no_banner = || TemplateError::Boot(Failure::candidate(Cause::Timeout, "no banner"));
        let e = cache
            .get_or_make("k2", |_| async { Err(no_banner()) })
            .await;
        assert_eq!(e.unwrap_err(), no_banner());
        // Every later machine with that key gets the same failure at once, without a boot.
        let again = cache
            .get_or_make("k2", |_| async { panic!("made twice") })
            .await;
        assert_eq!(again.unwrap_err(), no_banner());
        assert_eq!(cache.failed("k2"), Some(no_banner()));
        assert_eq!(cache.failed("k1"), None);
    }

    #[test]
    fn a_template_failure_fails_waiting_tests_only_when_the_candidate_is_at_fault() {
        use crate::suite::Checks;
        let all = Checks::default();
        let quiet = Checks {
            console: false,
            journal: false,
            failed_units: false,
        };
        let x = || Failure::candidate(Cause::Timeout, "x");
        assert!(TemplateError::Boot(x()).fails(quiet));
        assert!(TemplateError::Setup(x()).fails(all));
        assert!(TemplateError::Checks("x".into()).fails(all));
        assert!(!TemplateError::Checks("x".into()).fails(quiet));
        assert!(!TemplateError::Harness("x".into()).fails(all));
    }
}
