//! The plan of a run, built once from the selected tests before any VM starts: every image
//! resolved (built if missing, digest verified), each test's job with its Ignition configs
//! written and validated, and the boot-once templates the jobs will share. `aviary run`,
//! `qualify`, `reproduce` and `spawn` all run a plan.

use super::job::Job;
use crate::error::BadInput;
use crate::images::{Images, ResolvedImage};
use crate::suite::{self, ImageRef, Suite, Test};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

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
        let mut imgs = BTreeMap::new();
        for m in &t.machines {
            let mdir = dir.join(&m.name);
            crate::private::dir(&mdir).with_context(|| format!("creating {}", mdir.display()))?;
            let path = mdir.join("config.ign");
            let cfg = crate::ignition::config(&m.ignition, &m.name, pubkey);
            crate::private::write(&path, serde_json::to_string_pretty(&cfg)?)
                .with_context(|| format!("writing {}", path.display()))?;
            crate::ignition::validate(&path)
                .map_err(|e| BadInput(format!("test {}, machine {}: {e:#}", t.id(), m.name)))?;
            ign.insert(m.name.clone(), path);
            imgs.insert(m.name.clone(), resolved[&m.image.to_string()].clone());
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
