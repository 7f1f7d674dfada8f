//! The promotion gate: reads runs' reports (never the runner's memory), applies the policy for
//! one channel transition, and says promote or hold, with every reason.

pub mod budget;
pub mod budget_watch;
pub mod evaluate;
pub mod evidence;
pub mod exercise;
pub mod plan;
pub mod policy;
pub mod promote;
pub mod verdict;

#[cfg(test)]
mod tests;

use crate::error::BadInput;
use crate::images::manifest::Manifest;
use crate::suite::{self, LoadContext};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use verdict::{Decision, Verdict};

/// What `aviary gate` was asked.
#[derive(Debug, Clone)]
pub struct GateRequest {
    pub policy: PathBuf,
    pub manifest: PathBuf,
    pub suites_dir: PathBuf,
    pub from: String,
    pub to: String,
    pub release: String,
    pub reports: Vec<PathBuf>,
    pub now: i64,
}

/// The declared tests of each suite in `dir` that `wanted` names. A required suite whose file
/// does not load is bad input; other suites are not read.
fn catalog(
    dir: &Path,
    wanted: &[String],
    channels: &[String],
) -> Result<BTreeMap<String, Vec<String>>, BadInput> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let ctx = LoadContext {
        channels: channels.to_vec(),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for f in files {
        let stem = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match suite::load_file(&f, &ctx) {
            Ok(s) if wanted.contains(&s.name) => {
                out.insert(
                    s.name.clone(),
                    s.tests.iter().map(|t| t.name.clone()).collect(),
                );
            }
            Ok(_) => {}
            Err(e) if wanted.contains(&stem) => {
                return Err(BadInput(format!(
                    "{e}\n  (the policy requires suite `{stem}`, so the gate must read its tests)"
                )))
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The policy's required tests with each glob (`upgrade-rollback::stable-to-beta*`) replaced
/// by the declared tests it matches. A pattern that matches no declared test is bad input.
pub fn expand_required(
    t: &policy::Transition,
    catalog: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, BadInput> {
    let mut out: Vec<String> = Vec::new();
    for pattern in &t.required_tests {
        let Some((s, name)) = pattern.split_once("::") else {
            continue;
        };
        let is_glob = name.contains(['*', '?', '[']);
        let Some(declared) = catalog.get(s) else {
            if is_glob {
                return Err(BadInput(format!(
                    "error: {}: transition {} -> {} requires tests {pattern}, but no suite file declares suite `{s}`",
                    t.loc, t.from, t.to
                )));
            }
            out.push(pattern.clone());
            continue;
        };
        let m = globset::Glob::new(name)
            .map_err(|e| BadInput(format!("error: {}: {pattern}: {e}", t.loc)))?
            .compile_matcher();
        let matched: Vec<String> = declared
            .iter()
            .filter(|n| m.is_match(n.as_str()))
            .map(|n| format!("{s}::{n}"))
            .collect();
        if matched.is_empty() {
            return Err(BadInput(format!(
                "error: {}: transition {} -> {} requires test {pattern}, but suite `{s}` declares no test {}",
                t.loc,
                t.from,
                t.to,
                if is_glob {
                    format!("matching `{name}`")
                } else {
                    format!("`{name}`")
                }
            )));
        }
        for id in matched {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The release a candidate would replace, as the budgets compare with it: its version and disk
/// digest, from the manifest, or, when the manifest records none (the image was built for
/// another manifest and found in the cache), the one digest the runs recorded for that version.
fn baseline(
    version: &str,
    recorded: Option<&String>,
    runs: &[evaluate::RunEvidence],
) -> Option<(String, String)> {
    if let Some(d) = recorded {
        return Some((version.to_string(), d.clone()));
    }
    let seen: std::collections::BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.images.iter())
        .filter(|(v, _)| v == version)
        .map(|(_, d)| d)
        .collect();
    match seen.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => Some((version.to_string(), (*one).clone())),
        _ => None,
    }
}

/// Evaluates the gate. Bad input (policy, manifest, reports) is an error; hold is a verdict.
pub fn evaluate_request(req: &GateRequest) -> anyhow::Result<Verdict> {
    let manifest = Manifest::load(&req.manifest).map_err(|e| BadInput(format!("error: {e}")))?;
    let channels = manifest.channel_names();
    let policy = policy::load_file(&req.policy, &channels).map_err(|e| BadInput(e.to_string()))?;
    let Some(t) = policy.transition(&req.from, &req.to) else {
        let have: Vec<String> = policy
            .transitions
            .iter()
            .map(|t| format!("{} -> {}", t.from, t.to))
            .collect();
        return Err(BadInput(format!(
            "error: {} has no rules for {} -> {}; it has: {}",
            req.policy.display(),
            req.from,
            req.to,
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        ))
        .into());
    };
    let Some(entry) = manifest.channels.get(&req.from) else {
        return Err(BadInput(format!(
            "error: --from {}: unknown channel; {} has: {}",
            req.from,
            req.manifest.display(),
            channels.join(", ")
        ))
        .into());
    };
    if entry.version != req.release {
        return Err(BadInput(format!(
            "error: --release {}: {} records {} {} (a gate judges the channel's current release)",
            req.release,
            req.manifest.display(),
            req.from,
            entry.version
        ))
        .into());
    }
    let Some(disk) = &entry.disk else {
        return Err(BadInput(format!(
            "error: {}: {} {} has no disk digest yet: build it (`aviary images build {}`) and run its suites first",
            req.manifest.display(),
            req.from,
            entry.version,
            req.from
        ))
        .into());
    };
    let entered = match &entry.entered {
        Some(e) => Some(crate::clock::parse_timestamp(e).map_err(|m| {
            BadInput(format!(
                "error: {}: channel `{}`: entered: {m}",
                req.manifest.display(),
                req.from
            ))
        })?),
        None => None,
    };
    let mut wanted = t.required_suites.clone();
    wanted.extend(
        t.required_tests
            .iter()
            .filter_map(|id| id.split_once("::").map(|(s, _)| s.to_string())),
    );
    let catalog = catalog(&req.suites_dir, &wanted, &channels)?;
    let mut t = t.clone();
    t.required_tests = expand_required(&t, &catalog)?;
    let t = &t;
    let runs = evidence::read_runs(&req.reports, &req.release, &disk.sha256)?;
    let baseline = manifest
        .channels
        .get(&req.to)
        .and_then(|e| baseline(&e.version, e.disk.as_ref().map(|d| &d.sha256), &runs));
    let release = evaluate::Release {
        version: entry.version.clone(),
        digest: disk.sha256.clone(),
        entered,
        baseline,
    };
    Ok(evaluate::evaluate(t, &release, &runs, &catalog, req.now))
}
