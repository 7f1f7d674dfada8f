//! `aviary gate` and `aviary report`: verdicts and reports read back from run folders.

use super::BadInput;
use crate::cli::*;
use crate::images::Workspace;
use crate::report::html_file;
use anyhow::Result;

pub(super) fn cmd_gate(a: GateArgs) -> Result<i32> {
    let ws = Workspace::discover();
    let now = match &a.now {
        Some(t) => crate::clock::parse_timestamp(t).map_err(|m| BadInput(format!("--now: {m}")))?,
        None => crate::clock::now_secs(),
    };
    let manifest = ws.manifest_path();
    let req = crate::gate::GateRequest {
        policy: a
            .policy
            .clone()
            .unwrap_or_else(|| ws.root.join("images/promotion.yaml")),
        manifest: manifest.clone(),
        suites_dir: ws.root.join("suites"),
        from: a.from.clone(),
        to: a.to.clone(),
        release: a.release.clone(),
        reports: a.reports.clone(),
        now,
    };
    let verdict = crate::gate::evaluate_request(&req)?;
    print!("{}", verdict.render());
    let sha = verdict.write(&a.verdict)?;
    println!("verdict.json: {} (sha256 {sha})", a.verdict.display());
    // Each run's page shows the verdict it contributed to.
    for r in &verdict.runs {
        match html_file::write_report(&r.dir, Some(&a.verdict)) {
            Ok(p) => println!("report: {}", p.display()),
            Err(e) => eprintln!(
                "aviary gate: could not rewrite {}'s report.html: {e}",
                r.dir.display()
            ),
        }
    }
    match verdict.verdict {
        crate::gate::Decision::Hold => {
            if a.promote {
                println!("not promoted: the verdict is hold");
            }
            Ok(EXIT_FAILURES)
        }
        crate::gate::Decision::Promote => {
            if a.promote {
                let p = crate::gate::promote::promote(
                    &manifest, &a.from, &a.to, &a.release, &sha, now,
                )?;
                println!(
                    "promoted: {} now lists {} {} (same image); {}: {}",
                    manifest.display(),
                    a.to,
                    a.release,
                    p.log.display(),
                    p.line
                );
            }
            Ok(EXIT_PASS)
        }
    }
}

pub(super) fn cmd_report(c: ReportCommand) -> Result<i32> {
    match c {
        ReportCommand::Html { run, verdict } => {
            match html_file::write_report(&run, verdict.as_deref()) {
                Ok(path) => println!("{}", path.display()),
                Err(e) if e.is_bad_input() => return Err(BadInput(e.to_string()).into()),
                Err(e) => return Err(e.into()),
            }
            Ok(EXIT_PASS)
        }
        ReportCommand::Merge { runs, out } => {
            let mut read = Vec::new();
            for dir in &runs {
                if dir == &out {
                    return Err(BadInput(format!(
                        "--out {}: is also one of the runs to merge",
                        out.display()
                    ))
                    .into());
                }
                read.push(crate::report::read::read_run(dir).map_err(|e| BadInput(e.to_string()))?);
            }
            let (stamp, _) = crate::clock::stamps(crate::clock::now_secs());
            let merged = crate::report::merge::merge(&read, format!("{stamp}-merged"), &out)
                .map_err(|e| BadInput(e.to_string()))?;
            crate::report::merge::write_run(&merged)?;
            let s = crate::runner::result::RunStats::of(&merged.tests);
            eprintln!(
                "aviary: merged {} run(s), {} test(s): {} passed ({} flaky), {} failed, {} errors — {}",
                read.len(),
                merged.tests.len(),
                s.passed,
                s.flaky,
                s.failed,
                s.errors,
                out.join("junit.xml").display()
            );
            Ok(EXIT_PASS)
        }
    }
}
