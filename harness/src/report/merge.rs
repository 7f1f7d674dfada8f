//! `aviary report merge`: several runs (shards of one plan, CI machines) into one run.
//!
//! The merged run has the union of the tests, the union of the suites and images, and lists
//! its sources in `run.merged_from` (a merged source contributes its own sources). Runs that
//! cannot be one run are refused: the same test in two runs (shards of one plan are disjoint,
//! so two shards holding one test are not shards of one plan), different accelerators, or one
//! image name with different digests.

use super::read::RunReport;
use crate::images::ResolvedImage;
use crate::runner::result::{RunInfo, SourceRun};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give at least one run folder")]
    NoRuns,
    #[error("test `{test}` is in both {} and {}{}", a.display(), b.display(), why)]
    DuplicateTest {
        test: String,
        a: PathBuf,
        b: PathBuf,
        why: String,
    },
    #[error("runs disagree on `{field}`: `{a_value}` in {} but `{b_value}` in {}", a.display(), b.display())]
    Mismatch {
        field: String,
        a_value: String,
        a: PathBuf,
        b_value: String,
        b: PathBuf,
    },
}

/// Merges `runs` (in the order given) into one run with id `run_id` that lives in `out`.
pub fn merge(runs: &[RunReport], run_id: String, out: &Path) -> Result<RunReport, MergeError> {
    let first = runs.first().ok_or(MergeError::NoRuns)?;
    let mut owner: BTreeMap<String, &RunReport> = BTreeMap::new();
    let mut images: Vec<(ResolvedImage, &RunReport)> = Vec::new();
    let mut suites: Vec<String> = Vec::new();
    let mut tests = Vec::new();
    let mut sources = Vec::new();
    for run in runs {
        if run.run.accel.accel != first.run.accel.accel {
            return Err(MergeError::Mismatch {
                field: "run.accel.accel".into(),
                a_value: first.run.accel.accel.to_string(),
                a: first.dir.clone(),
                b_value: run.run.accel.accel.to_string(),
                b: run.dir.clone(),
            });
        }
        for img in &run.run.images {
            match images.iter().find(|(i, _)| i.name == img.name) {
                Some((seen, from)) if seen.sha256 != img.sha256 => {
                    return Err(MergeError::Mismatch {
                        field: format!("run.images[{}].sha256", img.name),
                        a_value: seen.sha256.clone(),
                        a: from.dir.clone(),
                        b_value: img.sha256.clone(),
                        b: run.dir.clone(),
                    });
                }
                Some(_) => {}
                None => images.push((img.clone(), run)),
            }
        }
        for t in &run.tests {
            let id: String = t.id().into();
            if let Some(other) = owner.get(&id) {
                return Err(MergeError::DuplicateTest {
                    test: id,
                    a: other.dir.clone(),
                    b: run.dir.clone(),
                    why: duplicate_why(other, run),
                });
            }
            owner.insert(id, run);
            tests.push(t.clone());
        }
        for s in &run.run.suites {
            if !suites.contains(s) {
                suites.push(s.clone());
            }
        }
        if run.run.merged_from.is_empty() {
            sources.push(SourceRun {
                run_id: run.run.run_id.clone(),
                dir: run.dir.clone(),
                shard: run.run.shard,
                seed: run.run.seed,
            });
        } else {
            sources.extend(run.run.merged_from.iter().cloned());
        }
    }
    let per_run = |f: fn(&RunReport) -> Option<&String>| {
        let v: Vec<String> = runs
            .iter()
            .filter_map(|r| f(r).map(|why| format!("{}: {why}", r.run.run_id)))
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    };
    Ok(RunReport {
        dir: out.to_path_buf(),
        run: RunInfo {
            // A merged run records no more than the oldest of its sources.
            evidence: runs.iter().map(|r| r.run.evidence).min().unwrap_or(0),
            run_id,
            started: runs
                .iter()
                .map(|r| r.run.started.clone())
                .min()
                .unwrap_or_default(),
            dir: out.to_path_buf(),
            seed: first.run.seed,
            accel: first.run.accel.clone(),
            images: images.into_iter().map(|(i, _)| i).collect(),
            suites,
            shard: None,
            retries: runs.iter().map(|r| r.run.retries).max().unwrap_or(0),
            schedule: None,
            merged_from: sources,
        },
        finished: runs.iter().all(|r| r.finished),
        interrupted: per_run(|r| r.interrupted.as_ref()),
        stopped: per_run(|r| r.stopped.as_ref()),
        tests,
    })
}

fn duplicate_why(a: &RunReport, b: &RunReport) -> String {
    match (a.run.shard, b.run.shard) {
        (Some(x), Some(y)) if x.count == y.count && x.index != y.index => format!(
            " (shards {x} and {y}): shards of one plan are disjoint, so these runs did not \
             select the same plan (same suites, --filter and --image on every machine)"
        ),
        (Some(x), Some(y)) if x == y => {
            format!(" (both shard {x}): the same shard was given twice")
        }
        _ => {
            ": merge takes runs whose tests are disjoint (shards of one plan, or different suites)"
                .to_string()
        }
    }
}

/// Writes a run folder: summary.json and junit.xml.
pub fn write_run(report: &RunReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(&report.dir)?;
    super::summary::write(
        &report.dir.join("summary.json"),
        &report.run,
        &report.tests,
        &super::summary::End {
            finished: report.finished,
            interrupted: report.interrupted.as_deref(),
            stopped: report.stopped.as_deref(),
        },
    )?;
    let xml = super::junit::render(&report.run, &report.tests)?;
    std::fs::write(report.dir.join("junit.xml"), xml)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::accel::Accel;
    use crate::report::read::tests::{info, test};
    use crate::runner::result::Outcome;

    fn run(id: &str, shard: Option<&str>, tests: &[&str]) -> RunReport {
        let mut i = info(id);
        i.shard = shard.map(|s| s.parse().unwrap());
        RunReport {
            dir: format!("/runs/{id}").into(),
            run: i,
            finished: true,
            interrupted: None,
            stopped: None,
            tests: tests.iter().map(|t| test(t, Outcome::Passed)).collect(),
        }
    }

    fn image(name: &str, sha: &str) -> ResolvedImage {
        serde_json::from_value(serde_json::json!({
            "name": name, "channel": name, "version": "1.0", "kernel_release": "6.1",
            "kernel_version": "#1", "disk": "/x.qcow2", "sha256": sha, "vmlinuz": null,
            "fw_cfg_name": "opt/x", "payload": null, "payload_sha256": null, "payload_size": null
        }))
        .unwrap()
    }

    #[test]
    fn shards_merge_into_the_union() {
        let mut a = run("a", Some("1/2"), &["t1", "t3"]);
        let mut b = run("b", Some("2/2"), &["t2"]);
        a.run.images = vec![image("stable", "aa")];
        b.run.images = vec![image("stable", "aa"), image("beta", "bb")];
        b.run.started = "2026-11-24T23:00:00Z".into();
        b.run.retries = 2;
        b.interrupted = Some("SIGINT".into());
        let m = merge(&[a, b], "m".into(), Path::new("/out")).unwrap();
        let names: Vec<&str> = m.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t1", "t3", "t2"]);
        assert_eq!(m.run.run_id, "m");
        assert_eq!(m.run.dir, PathBuf::from("/out"));
        assert_eq!(m.run.started, "2026-11-24T23:00:00Z");
        assert_eq!(m.run.shard, None);
        assert_eq!(m.run.retries, 2);
        assert_eq!(m.run.images.len(), 2);
        assert_eq!(m.interrupted.as_deref(), Some("b: SIGINT"));
        let src: Vec<String> = m
            .run
            .merged_from
            .iter()
            .map(|s| format!("{} {}", s.run_id, s.shard.unwrap()))
            .collect();
        assert_eq!(src, ["a 1/2", "b 2/2"]);
        // A merged run merges again, keeping the original sources.
        let c = run("c", None, &["t4"]);
        let again = merge(&[m, c], "m2".into(), Path::new("/out2")).unwrap();
        assert_eq!(again.run.merged_from.len(), 3);
        assert_eq!(again.tests.len(), 4);
    }

    #[test]
    fn one_test_in_two_shards_is_a_contradiction() {
        let e = merge(
            &[
                run("a", Some("1/2"), &["t1"]),
                run("b", Some("2/2"), &["t1"]),
            ],
            "m".into(),
            Path::new("/out"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("test `s::t1` is in both /runs/a and /runs/b (shards 1/2 and 2/2)"),
            "{e}"
        );
        let e = merge(
            &[run("a", None, &["t1"]), run("b", None, &["t1"])],
            "m".into(),
            Path::new("/out"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("disjoint"), "{e}");
    }

    #[test]
    fn different_accelerators_or_digests_are_refused() {
        let a = run("a", None, &["t1"]);
        let mut b = run("b", None, &["t2"]);
        b.run.accel.accel = Accel::Kvm;
        let e = merge(&[a.clone(), b], "m".into(), Path::new("/o"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "runs disagree on `run.accel.accel`: `tcg` in /runs/a but `kvm` in /runs/b"
        );
        let mut a = a;
        a.run.images = vec![image("stable", "aa")];
        let mut b = run("b", None, &["t2"]);
        b.run.images = vec![image("stable", "cc")];
        let e = merge(&[a, b], "m".into(), Path::new("/o"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "runs disagree on `run.images[stable].sha256`: `aa` in /runs/a but `cc` in /runs/b"
        );
    }
}
