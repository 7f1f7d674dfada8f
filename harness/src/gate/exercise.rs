//! Evidence bound to the release: a passing test counts toward a release only if it exercised
//! that release, the way the policy asks for its suite (booted it, updated into it, or offered
//! it an update). The reports record, per test, every machine's image digest and every
//! `update` step's release digest and outcome; this module decides from those alone.

use crate::runner::result::{UpdateOutcome, UpdateRecord};
use std::fmt;

/// What a test must have done with the release for its pass to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `update` for a test that has update steps, else `boot` (the default).
    Auto,
    /// A machine of the test booted the release's image.
    Boot,
    /// An `update` step of the test installed the release.
    Update,
    /// Either of the two.
    BootOrUpdate,
    /// An `update` step offered the release, whatever became of it (a refused payload).
    Offer,
}

impl Mode {
    pub const NAMES: &'static str = "auto, boot, update, boot-or-update, offer";

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "auto" => Mode::Auto,
            "boot" => Mode::Boot,
            "update" => Mode::Update,
            "boot-or-update" => Mode::BootOrUpdate,
            "offer" => Mode::Offer,
            _ => return None,
        })
    }

    /// `Auto` made definite for one test's evidence.
    pub fn resolve(self, e: &Exercise) -> Mode {
        match self {
            Mode::Auto if e.updates.is_empty() => Mode::Boot,
            Mode::Auto => Mode::Update,
            m => m,
        }
    }

    /// What the mode asks for, of `release` ("beta 1001.0.0").
    pub fn needs(self, release: &str) -> String {
        match self {
            Mode::Auto | Mode::Boot => format!("a machine booting {release}"),
            Mode::Update => format!("an update step installing {release}"),
            Mode::BootOrUpdate => format!("a boot of {release} or an update into it"),
            Mode::Offer => format!("an update step offering {release}"),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Boot => "boot",
            Mode::Update => "update",
            Mode::BootOrUpdate => "boot-or-update",
            Mode::Offer => "offer",
        })
    }
}

/// The policy's `evidence:` of one transition: a mode per test glob (first match wins), per
/// suite, and for the rest.
#[derive(Debug, Clone)]
pub struct EvidencePolicy {
    pub default: Mode,
    pub suites: Vec<(String, Mode)>,
    pub tests: Vec<(globset::GlobMatcher, Mode)>,
}

impl Default for EvidencePolicy {
    fn default() -> Self {
        EvidencePolicy {
            default: Mode::Auto,
            suites: Vec::new(),
            tests: Vec::new(),
        }
    }
}

impl EvidencePolicy {
    /// The mode the policy sets for test `suite::name` (possibly `Auto`).
    pub fn mode_for(&self, suite: &str, name: &str) -> Mode {
        let id = format!("{suite}::{name}");
        if let Some((_, m)) = self.tests.iter().find(|(g, _)| g.is_match(&id)) {
            return *m;
        }
        if let Some((_, m)) = self.suites.iter().find(|(s, _)| s == suite) {
            return *m;
        }
        self.default
    }
}

/// An image a machine of the test booted, as the report records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    pub machine: String,
    pub image: String,
    pub version: String,
    pub sha256: String,
}

/// What one test did with releases: the images its machines booted and its update steps.
#[derive(Debug, Clone, Default)]
pub struct Exercise {
    pub booted: Vec<Booted>,
    pub updates: Vec<UpdateRecord>,
}

impl Exercise {
    pub fn booted(&self, digest: &str) -> bool {
        self.booted.iter().any(|b| b.sha256 == digest)
    }

    pub fn installed(&self, digest: &str) -> bool {
        self.updates
            .iter()
            .any(|u| u.sha256 == digest && u.outcome == UpdateOutcome::Installed)
    }

    pub fn offered(&self, digest: &str) -> bool {
        self.updates.iter().any(|u| u.sha256 == digest)
    }

    /// Whether the test exercised the release with disk digest `digest` as `mode` asks.
    pub fn satisfies(&self, mode: Mode, digest: &str) -> bool {
        match mode.resolve(self) {
            Mode::Boot | Mode::Auto => self.booted(digest),
            Mode::Update => self.installed(digest),
            Mode::BootOrUpdate => self.booted(digest) || self.installed(digest),
            Mode::Offer => self.offered(digest),
        }
    }

    /// What the test ran on, for a reason: "booted stable 1000.0.0 (23042a3ddb08); updated
    /// into alpha 1002.0.0 (installed)".
    pub fn describe(&self) -> String {
        let mut booted: Vec<String> = self
            .booted
            .iter()
            .map(|b| format!("{} {} ({})", b.image, b.version, short(&b.sha256)))
            .collect();
        booted.dedup();
        let mut parts = Vec::new();
        if !booted.is_empty() {
            parts.push(format!("booted {}", booted.join(", ")));
        }
        let updates: Vec<String> = self
            .updates
            .iter()
            .map(|u| {
                let how = match u.outcome {
                    UpdateOutcome::Installed => "installed",
                    UpdateOutcome::Refused => "refused",
                    UpdateOutcome::PowerCut => "power cut",
                    UpdateOutcome::Failed => "failed",
                };
                format!("{} {} ({}, {how})", u.channel, u.version, short(&u.sha256))
            })
            .collect();
        if !updates.is_empty() {
            parts.push(format!("offered updates to {}", updates.join(", ")));
        }
        if parts.is_empty() {
            "no machine at all".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The first 12 hex digits of a digest.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booted(image: &str, sha: &str) -> Booted {
        Booted {
            machine: "node".into(),
            image: image.into(),
            version: format!("{image}-v"),
            sha256: sha.repeat(64),
        }
    }

    fn update(channel: &str, sha: &str, outcome: UpdateOutcome) -> UpdateRecord {
        UpdateRecord {
            machine: "node".into(),
            channel: channel.into(),
            version: format!("{channel}-v"),
            sha256: sha.repeat(64),
            payload_sha256: "p".repeat(64),
            outcome,
            in_setup: false,
            download_s: None,
            write_s: None,
        }
    }

    #[test]
    fn each_mode_asks_for_its_own_evidence() {
        let beta = "b".repeat(64);
        let on_stable = Exercise {
            booted: vec![booted("stable", "a")],
            updates: vec![],
        };
        let on_beta = Exercise {
            booted: vec![booted("stable", "a"), booted("beta", "b")],
            updates: vec![],
        };
        let into_beta = Exercise {
            booted: vec![booted("stable", "a")],
            updates: vec![update("beta", "b", UpdateOutcome::Installed)],
        };
        let refused = Exercise {
            booted: vec![booted("stable", "a")],
            updates: vec![update("beta", "b", UpdateOutcome::Refused)],
        };
        for (mode, stable, booted, installed, offered) in [
            (Mode::Boot, false, true, false, false),
            (Mode::Update, false, false, true, false),
            (Mode::BootOrUpdate, false, true, true, false),
            (Mode::Offer, false, false, true, true),
        ] {
            assert_eq!(on_stable.satisfies(mode, &beta), stable, "{mode}");
            assert_eq!(on_beta.satisfies(mode, &beta), booted, "{mode}");
            assert_eq!(into_beta.satisfies(mode, &beta), installed, "{mode}");
            assert_eq!(refused.satisfies(mode, &beta), offered, "{mode}");
        }
        // Auto: a test without updates needs a boot, one with updates an installed update.
        assert!(on_beta.satisfies(Mode::Auto, &beta));
        assert!(into_beta.satisfies(Mode::Auto, &beta));
        assert!(!refused.satisfies(Mode::Auto, &beta));
        assert_eq!(Mode::Auto.resolve(&on_beta), Mode::Boot);
        assert_eq!(Mode::Auto.resolve(&refused), Mode::Update);
    }

    #[test]
    fn a_test_glob_wins_over_its_suite_and_the_default() {
        let p = EvidencePolicy {
            default: Mode::Boot,
            suites: vec![("upgrade".into(), Mode::BootOrUpdate)],
            tests: vec![(
                globset::Glob::new("upgrade::*-refused")
                    .unwrap()
                    .compile_matcher(),
                Mode::Offer,
            )],
        };
        assert_eq!(p.mode_for("upgrade", "x-refused"), Mode::Offer);
        assert_eq!(p.mode_for("upgrade", "stable-to-beta"), Mode::BootOrUpdate);
        assert_eq!(p.mode_for("provisioning", "users"), Mode::Boot);
        assert_eq!(EvidencePolicy::default().mode_for("a", "b"), Mode::Auto);
        for name in Mode::NAMES.split(", ") {
            assert_eq!(Mode::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(Mode::parse("booted"), None);
    }

    #[test]
    fn describes_what_a_test_ran_on() {
        let e = Exercise {
            booted: vec![booted("stable", "a"), booted("stable", "a")],
            updates: vec![update("alpha", "c", UpdateOutcome::Installed)],
        };
        assert_eq!(
            e.describe(),
            "booted stable stable-v (aaaaaaaaaaaa); offered updates to alpha alpha-v (cccccccccccc, installed)"
        );
    }
}
