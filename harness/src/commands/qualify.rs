//! `aviary qualify CHANNEL`: the release engineer's main job. Builds what is missing, runs the
//! tests the promotion policy requires of CHANNEL's release the way the policy counts them
//! (`gate::plan`), gates the run, writes verdict.json and report.html beside it, and exits 0
//! promote, 1 hold, 2 bad input or no verdict (a harness error in a test), 130 interrupted.

use super::run::{execute, RunOptions};
use super::{load_suites, BadInput};
use crate::cli::*;
use crate::gate::{policy, Decision, GateRequest};
use crate::images::{Images, Workspace};
use crate::report::html_file;
use anyhow::Result;

pub(super) fn cmd_qualify(a: QualifyArgs) -> Result<i32> {
    crate::interrupt::install();
    let ws = Workspace::discover();
    let mut images = Images::open(ws.clone())?;
    let channels = images.manifest.channel_names();
    let policy_path = a
        .policy
        .clone()
        .unwrap_or_else(|| ws.root.join("images/promotion.yaml"));
    let policy = policy::load_file(&policy_path, &channels).map_err(|e| BadInput(e.to_string()))?;
    let t = transition(&policy, &a)?;
    let Some(entry) = images.manifest.channels.get(&a.channel) else {
        return Err(BadInput(format!(
            "error: unknown channel `{}`; {} has: {}",
            a.channel,
            ws.manifest_path().display(),
            channels.join(", ")
        ))
        .into());
    };
    let release = entry.version.clone();
    let suites = load_suites(&ws, &images, &[])?;
    let planned = crate::gate::plan::plan(t, &suites, &a.channel)?;
    let budget = budget_suite(&ws, &images, t, &a)?;
    print_plan(&a, &release, t, &policy_path, &planned, budget.as_ref());
    if a.list {
        return Ok(EXIT_PASS);
    }
    let tests: Vec<crate::suite::Test> = planned.into_iter().map(|p| p.test).collect();
    build_channels(&mut images, &a.channel, &t.to, &tests)?;
    let opts = RunOptions {
        jobs: a.jobs,
        retries: a.retries,
        seed: a.seed,
        reports: a.reports.clone(),
        cold: false,
        keep_on_failure: false,
        keep_all: false,
        shard: None,
        fail_fast: a.fail_fast,
        accel: None,
        stop: None,
    };
    let run = execute(&ws, &mut images, &suites, tests, &opts)?;
    if run.code == EXIT_INTERRUPTED {
        eprintln!("aviary qualify: interrupted: no verdict");
        return Ok(EXIT_INTERRUPTED);
    }
    let mut runs = vec![run];
    if let Some(b) = budget {
        if a.fail_fast && runs[0].code != EXIT_PASS {
            eprintln!("aviary qualify: --fail-fast: the budgets are not measured after a failure");
        } else {
            // Alone, two at a time: each candidate boot or update beside its baseline twin,
            // so both see the same host.
            let pairs = RunOptions {
                jobs: crate::runner::schedule::Jobs::Fixed(2),
                fail_fast: false,
                stop: budget_stop(&images, t, &a.channel, &b),
                ..opts.clone()
            };
            let tests = b.tests.clone();
            let budget_run = execute(&ws, &mut images, &[b], tests, &pairs)?;
            if budget_run.code == EXIT_INTERRUPTED {
                eprintln!("aviary qualify: interrupted: no verdict");
                return Ok(EXIT_INTERRUPTED);
            }
            runs.push(budget_run);
        }
    }
    judge(&ws, policy_path, t, &a, &release, &runs)
}

/// Gates the runs (the tests, then the budgets), prints and writes the verdict (verdict.json in
/// the first run folder, report.html in each), promotes when asked, and says qualify's exit code.
fn judge(
    ws: &Workspace,
    policy_path: std::path::PathBuf,
    t: &policy::Transition,
    a: &QualifyArgs,
    release: &str,
    runs: &[super::run::Executed],
) -> Result<i32> {
    let now = crate::clock::now_secs();
    let req = GateRequest {
        policy: policy_path,
        manifest: ws.manifest_path(),
        suites_dir: ws.root.join("suites"),
        from: a.channel.clone(),
        to: t.to.clone(),
        release: release.to_string(),
        reports: runs.iter().map(|r| r.run_dir.clone()).collect(),
        now,
    };
    let verdict = crate::gate::evaluate_request(&req)?;
    print!("{}", verdict.render());
    let path = runs[0].run_dir.join("verdict.json");
    let sha = verdict.write(&path)?;
    println!("verdict.json: {} (sha256 {sha})", path.display());
    for r in runs {
        match html_file::write_report(&r.run_dir, Some(&path)) {
            Ok(p) => println!("report: {}", p.display()),
            Err(e) => eprintln!("aviary qualify: could not write the report: {e}"),
        }
    }
    match verdict.verdict {
        Decision::Hold if runs.iter().any(|r| r.code == EXIT_BAD_INPUT) => {
            eprintln!(
                "aviary qualify: no verdict on {} {release}: the harness failed in at least one test (an error, not a failure of the candidate); see the reasons above",
                a.channel
            );
            Ok(EXIT_BAD_INPUT)
        }
        Decision::Hold => Ok(EXIT_FAILURES),
        Decision::Promote => {
            if a.promote {
                let manifest = ws.manifest_path();
                let p = crate::gate::promote::promote(
                    &manifest, &a.channel, &t.to, release, &sha, now,
                )?;
                println!(
                    "promoted: {} now lists {} {release} (same image); {}: {}",
                    manifest.display(),
                    t.to,
                    p.log.display(),
                    p.line
                );
            }
            Ok(EXIT_PASS)
        }
    }
}

/// The plan, on stderr: each required test and how it runs, and the budget suite.
fn print_plan(
    a: &QualifyArgs,
    release: &str,
    t: &policy::Transition,
    policy_path: &std::path::Path,
    planned: &[crate::gate::plan::Planned],
    budget: Option<&crate::suite::Suite>,
) {
    eprintln!(
        "aviary qualify: {} {release} -> {} ({} test(s) the policy {} requires):",
        a.channel,
        t.to,
        planned.len(),
        policy_path.display()
    );
    for p in planned {
        eprintln!("  {}  {} ({})", p.test.id(), p.how, p.mode);
    }
    if let Some(b) = budget {
        eprintln!(
            "  then, for the budgets ({}), suite `{}` ({}) in a run of its own, two tests at a time: {}",
            t.budgets
                .iter()
                .map(|b| b.phase.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            b.name,
            b.path.display(),
            b.tests
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The budget suite for the transition, loaded like any suite and, unless only listing, written
/// to reports/ (its tests' repro bundles point at it); None when the policy sets no budgets.
fn budget_suite(
    ws: &Workspace,
    images: &Images,
    t: &policy::Transition,
    a: &QualifyArgs,
) -> Result<Option<crate::suite::Suite>> {
    let Some(text) = crate::gate::plan::budget_suite(t, &a.channel) else {
        return Ok(None);
    };
    let dir = a.reports.clone().unwrap_or_else(|| ws.reports_dir());
    let path = dir.join(format!("budget-{}-{}.yaml", a.channel, t.to));
    let ctx = crate::suite::LoadContext {
        channels: images.manifest.channel_names(),
    };
    let suite = crate::suite::load_str(&path, &text, &ctx).map_err(|e| BadInput(e.to_string()))?;
    if !a.list {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&path, text)?;
    }
    Ok(Some(suite))
}

/// The budget run's early end: once a budget's hold is certain whatever its remaining tests
/// measure, they are cancelled (`gate::budget_watch`). None when a release is not built.
fn budget_stop(
    images: &Images,
    t: &policy::Transition,
    candidate: &str,
    suite: &crate::suite::Suite,
) -> Option<crate::runner::stop::Stop> {
    use crate::gate::{budget::Side, budget_watch::Watch};
    let digest = |c: &str| {
        let r = images.manifest.channels.get(c)?;
        Some(r.disk.as_ref()?.sha256.clone())
    };
    let release = |c: &str| {
        Some(Side {
            label: format!("{c} {}", images.manifest.channels.get(c)?.version),
            digest: digest(c)?,
        })
    };
    let watch = Watch::new(
        t.budgets.clone(),
        release(candidate)?,
        release(&t.to)?,
        Watch::plan(&suite.tests, false, digest),
    );
    Some(crate::runner::stop::Stop {
        when: std::sync::Arc::new(move |results: &[crate::runner::result::TestResult]| {
            watch.check(results)
        }),
        cancel_running: true,
    })
}

/// Builds every channel the plan boots or updates into, and the release the candidate would
/// replace, unless cached; either way the manifest records this host's digests, which the gate
/// then checks the runs against.
fn build_channels(
    images: &mut Images,
    candidate: &str,
    baseline: &str,
    tests: &[crate::suite::Test],
) -> Result<()> {
    let mut channels =
        std::collections::BTreeSet::from([candidate.to_string(), baseline.to_string()]);
    for t in tests {
        for m in &t.machines {
            if let crate::suite::ImageRef::Channel(c) = &m.image {
                channels.insert(c.clone());
            }
        }
        for s in &t.steps {
            if let crate::suite::StepKind::Update(u) = &s.kind {
                channels.insert(u.to.clone());
            }
        }
    }
    for ch in channels {
        images.build(&ch, false)?;
    }
    Ok(())
}

/// The policy's transition out of the channel (`--to`, or the only one there is).
fn transition<'a>(p: &'a policy::Policy, a: &QualifyArgs) -> Result<&'a policy::Transition> {
    let from: Vec<&policy::Transition> = p
        .transitions
        .iter()
        .filter(|t| t.from == a.channel && a.to.as_ref().is_none_or(|to| &t.to == to))
        .collect();
    match from.as_slice() {
        [t] => Ok(t),
        [] => Err(BadInput(format!(
            "error: {} has no rules for {} -> {}; it has: {}",
            p.path.display(),
            a.channel,
            a.to.as_deref().unwrap_or("any channel"),
            p.transitions
                .iter()
                .map(|t| format!("{} -> {}", t.from, t.to))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
        many => Err(BadInput(format!(
            "error: {} has rules for {} to {} channels ({}); say which with --to",
            p.path.display(),
            a.channel,
            many.len(),
            many.iter()
                .map(|t| t.to.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}
