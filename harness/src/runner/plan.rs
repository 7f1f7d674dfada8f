//! The plan of a run, built once from the selected tests before any VM starts: every image
//! resolved (built if missing, digest verified), each test's job with its Ignition configs
//! written and validated (or its cloud-init seeds made, as the image's profile says), and the boot-once templates the jobs will share. `aviary run`,
//! `qualify`, `reproduce` and `spawn` all run a plan.

use super::job::Job;
use crate::error::BadInput;
use crate::images::{Images, ResolvedImage};
use crate::profile::Provisioning;
use crate::suite::{self, ImageRef, Suite, Test};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Plan {
    /// One job a test, in the order of the selection.
    pub jobs: Vec<Job>,
    /// Every image the jobs boot or update into, by its reference (`beta`, a path).
    pub images: BTreeMap<String, ResolvedImage>,
}

impl Plan {
    /// Writes the jobs of `tests` under `run_dir` on their `resolved` images (`resolve_images`,
    /// before the run folder exists), each machine's Ignition config carrying the run's `pubkey`.
    pub fn build(
        resolved: BTreeMap<String, ResolvedImage>,
        suites: &[Suite],
        tests: &[Test],
        run_dir: &Path,
        pubkey: &str,
    ) -> Result<Plan> {
        let jobs = write_jobs(run_dir, suites, tests, &resolved, pubkey)?;
        Ok(Plan {
            jobs,
            images: resolved,
        })
    }

    /// The template keys the jobs ask for, one per use (`snapshot::Cache::new`).
    pub fn template_keys(&self, accel: &str) -> Vec<String> {
        super::template::planned_keys(&self.jobs, accel)
    }
}

/// Every image the tests boot or update into, built if missing, its digest verified.
pub fn resolve_images(
    images: &mut Images,
    tests: &[Test],
) -> Result<BTreeMap<String, ResolvedImage>> {
    let mut resolved: BTreeMap<String, ResolvedImage> = BTreeMap::new();
    for t in tests {
        let mut resolve = |r: &ImageRef, what: String| {
            images
                .resolve(r)
                .map_err(|e| BadInput(format!("aviary: test {}, {what}: {e:#}", t.id())))
        };
        let targets = t.steps.iter().filter_map(|s| match &s.kind {
            suite::StepKind::Update(u) => Some(ImageRef::Channel(u.to.clone())),
            _ => None,
        });
        for r in targets {
            if let std::collections::btree_map::Entry::Vacant(v) = resolved.entry(r.to_string()) {
                v.insert(resolve(&r, format!("update to `{r}`"))?);
            }
        }
        for m in &t.machines {
            if let std::collections::btree_map::Entry::Vacant(v) =
                resolved.entry(m.image.to_string())
            {
                v.insert(resolve(&m.image, format!("machine {}", m.name))?);
            }
        }
    }
    Ok(resolved)
}

/// Each test's job, with every Ignition config written and validated before any VM starts.
fn write_jobs(
    run_dir: &Path,
    suites: &[Suite],
    tests: &[Test],
    resolved: &BTreeMap<String, ResolvedImage>,
    pubkey: &str,
) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for t in tests {
        let dir = run_dir.join(&t.suite).join(&t.name);
        let mut ign = BTreeMap::new();
        let mut seeds = BTreeMap::new();
        let mut imgs = BTreeMap::new();
        for m in &t.machines {
            let mdir = dir.join(&m.name);
            crate::private::dir(&mdir).with_context(|| format!("creating {}", mdir.display()))?;
            let img = resolved[&m.image.to_string()].clone();
            match provision(t, m, &img, &mdir, pubkey)? {
                Provisioned::Ignition(path) => ign.insert(m.name.clone(), path),
                Provisioned::Seed(path) => seeds.insert(m.name.clone(), path),
            };
            imgs.insert(m.name.clone(), img);
        }
        let releases = t
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                suite::StepKind::Update(u) => Some((u.to.clone(), resolved[&u.to].clone())),
                _ => None,
            })
            .collect();
        let next = suites
            .iter()
            .flat_map(|s| s.tests.iter())
            .filter(|o| o.loc.file == t.loc.file && o.loc.line > t.loc.line)
            .map(|o| o.loc.line)
            .min();
        let source = suites
            .iter()
            .find(|s| s.path == t.loc.file)
            .map(|s| s.source.as_str())
            .unwrap_or("");
        let skip = t.steps.iter().find_map(|s| {
            let p = &imgs.get(&s.on)?.profile;
            let why = p.skip_reason(&s.kind)?;
            Some(format!("{why} (step at line {} on {})", s.loc.line, s.on))
        });
        jobs.push(Job {
            skip,
            seeds,
            excerpt: crate::runner::repro::excerpt(source, t.loc.line, next),
            test: t.clone(),
            dir,
            images: imgs,
            ignition: ign,
            releases,
            attempt: 0,
        });
    }
    Ok(jobs)
}

/// A machine's provisioning settings of the other kind than its image's profile: `what`, its
/// `{}` the image (with its profile).
fn mismatch(t: &Test, m: &suite::MachineSpec, img: &ResolvedImage, what: &str) -> anyhow::Error {
    let image = format!("{}` (profile {})", img.name, img.profile.name);
    let what = what.replacen("{}`", &image, 1);
    BadInput(format!("test {}, machine {}: {what}", t.id(), m.name)).into()
}

/// What provisions a machine on its first boot.
enum Provisioned {
    /// Its Ignition config, written and validated.
    Ignition(PathBuf),
    /// Its NoCloud seed disk: its `cloud_init:` user-data, its hostname and the run's key.
    Seed(PathBuf),
}

/// Provisions machine `m` in `mdir` the way its image's profile says.
fn provision(
    t: &Test,
    m: &suite::MachineSpec,
    img: &ResolvedImage,
    mdir: &Path,
    pubkey: &str,
) -> Result<Provisioned> {
    match img.profile.provisioning {
        Provisioning::Ignition => {
            if m.cloud_init.is_some() {
                let what = "`cloud_init:` given, but image `{}` is provisioned by Ignition; expected its settings under `ignition:`";
                return Err(mismatch(t, m, img, what));
            }
            let path = mdir.join("config.ign");
            let cfg = crate::ignition::config(&m.ignition, &m.name, pubkey);
            crate::private::write(&path, serde_json::to_string_pretty(&cfg)?)
                .with_context(|| format!("writing {}", path.display()))?;
            crate::ignition::validate(&path)
                .map_err(|e| BadInput(format!("test {}, machine {}: {e:#}", t.id(), m.name)))?;
            Ok(Provisioned::Ignition(path))
        }
        Provisioning::CloudInit => {
            if !m.ignition.files.is_empty() || !m.ignition.units.is_empty() {
                let what = "`ignition:` files or units given, but image `{}` is provisioned by cloud-init; expected them in `cloud_init:` user-data";
                return Err(mismatch(t, m, img, what));
            }
            let id = format!("aviary-{}-{}-{}", t.suite, t.name, m.name);
            let seed = crate::cloud_init::Seed {
                instance_id: &id,
                hostname: m.ignition.hostname.as_deref().unwrap_or(&m.name),
                ssh_pubkey: pubkey,
                user_data: m.cloud_init.as_deref(),
            };
            crate::cloud_init::write(mdir, &seed)
                .map(Provisioned::Seed)
                .with_context(|| format!("test {}, machine {}: cloud-init seed", t.id(), m.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::runner::template::tests::image;
    use std::sync::Arc;

    fn suite(body: &str) -> Suite {
        let ctx = suite::LoadContext {
            channels: vec!["stable".into()],
        };
        let text =
            format!("suite: s\ntests:\n  - name: t\n{body}    steps: [ {{ reboot: node }} ]\n");
        suite::load_str(Path::new("s.yaml"), &text, &ctx).unwrap()
    }

    fn cloud_init_stable() -> BTreeMap<String, ResolvedImage> {
        let mut img = image("stable", "s1");
        let mut p = Profile::reference();
        p.provisioning = Provisioning::CloudInit;
        img.profile = Arc::new(p);
        [("stable".to_string(), img)].into()
    }

    #[test]
    fn a_cloud_init_machine_gets_a_seed_and_no_ignition_config() {
        let d = tempfile::tempdir().unwrap();
        let s =
            suite("    machines: { node: { cloud_init: \"#cloud-config\\nruncmd: []\\n\" } }\n");
        let jobs = write_jobs(
            d.path(),
            std::slice::from_ref(&s),
            &s.tests,
            &cloud_init_stable(),
            "ssh-ed25519 K",
        )
        .unwrap();
        let j = &jobs[0];
        assert!(j.ignition.is_empty());
        let seed = &j.seeds["node"];
        assert!(
            seed.ends_with("s/t/node/seed.img") && seed.is_file(),
            "{}",
            seed.display()
        );
        let ud = std::fs::read_to_string(d.path().join("s/t/node/user-data")).unwrap();
        assert_eq!(ud, "#cloud-config\nruncmd: []\n");
    }

    #[test]
    fn provisioning_settings_for_the_other_kind_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = suite(
            "    machines: { node: { ignition: { files: [ { path: /etc/x, contents: x } ] } } }\n",
        );
        let e = write_jobs(
            d.path(),
            std::slice::from_ref(&s),
            &s.tests,
            &cloud_init_stable(),
            "k",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("provisioned by cloud-init; expected them in `cloud_init:`"),
            "{e}"
        );
        let s = suite("    machines: { node: { cloud_init: \"#cloud-config\\n\" } }\n");
        let plain: BTreeMap<String, ResolvedImage> =
            [("stable".to_string(), image("stable", "s1"))].into();
        let e = write_jobs(d.path(), std::slice::from_ref(&s), &s.tests, &plain, "k").unwrap_err();
        assert!(e.to_string().contains("is provisioned by Ignition"), "{e}");
    }
}
