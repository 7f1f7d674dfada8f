//! `aviary reproduce` and `aviary spawn`: machines for an engineer, from a repro bundle or by hand.

use super::{
    run::{cmd_run, run_in},
    BadInput,
};
use crate::cli::*;
use crate::images::{Images, Workspace};
use crate::suite::ImageRef;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reruns one test from its repro bundle: same suite file, test, images (checked by digest),
/// update targets, seed and accelerator.
pub(super) fn cmd_reproduce(path: &Path, keep: bool, reports: Option<PathBuf>) -> Result<i32> {
    use crate::runner::repro;
    let b = repro::read(path).map_err(|e| BadInput(format!("error: {e}")))?;
    let ws = Workspace::discover().with_manifest(b.manifest.clone());
    let mut images = Images::open(ws.clone())?;
    let mut now = BTreeMap::new();
    for p in b.machines.values().chain(b.releases.values()) {
        let r = ImageRef::parse(&p.image);
        if let Ok(r) = images.resolve(&r) {
            now.insert(
                p.image.clone(),
                repro::PinnedImage {
                    image: p.image.clone(),
                    version: r.version,
                    sha256: r.sha256,
                },
            );
        }
    }
    let changed = repro::changed(&b, &now);
    if !changed.is_empty() {
        return Err(BadInput(format!(
            "error: {}: the images differ from the run it records, so it would not rerun the same thing:\n  {}",
            path.display(),
            changed.join("\n  ")
        ))
        .into());
    }
    // The accelerator the failure ran under.
    let accel = crate::machine::accel::Forced {
        accel: b.accelerator,
        by: format!("the repro bundle ({})", path.display()),
    };
    eprintln!(
        "aviary: reproducing {} (seed {}, {}) from {}",
        b.test,
        b.seed,
        b.accelerator,
        b.suite_file.display()
    );
    let args = RunArgs {
        select: SelectArgs {
            suites: vec![b.suite_file.clone()],
            image: repro::image_args(&b),
            filter: Some(b.test.clone()),
            shard: None,
        },
        jobs: crate::runner::schedule::Jobs::Fixed(1),
        keep_on_failure: keep,
        keep_all: keep,
        retries: 0,
        seed: Some(b.seed),
        reports,
        cold: b.cold,
        fail_fast: false,
    };
    run_in(ws, args, Some(accel))
}

/// Boots N machines from one image (a cluster when several) and keeps them up until Ctrl-C.
pub(super) fn cmd_spawn(a: SpawnArgs) -> Result<i32> {
    let ws = Workspace::discover();
    let dir = tempfile::Builder::new().prefix("aviary-spawn-").tempdir()?;
    let suite = dir.path().join("spawn.yaml");
    let machines: String = (1..=a.nodes)
        .map(|i| {
            format!(
                "      node-{i}: {{ image: \"{}\", memory: {} }}\n",
                a.image, a.memory
            )
        })
        .collect();
    std::fs::write(
        &suite,
        format!(
            "suite: spawn\ntests:\n  - name: spawn\n    timeout: 30m\n    machines:\n{machines}    steps:\n      - run: {{ on: node-1, cmd: \"cat /etc/os-release\" }}\n"
        ),
    )?;
    cmd_run(RunArgs {
        select: SelectArgs {
            suites: vec![suite],
            image: Vec::new(),
            filter: None,
            shard: None,
        },
        jobs: crate::runner::schedule::Jobs::Fixed(1),
        keep_on_failure: true,
        keep_all: true,
        retries: 0,
        seed: None,
        reports: Some(ws.reports_dir()),
        cold: false,
        fail_fast: false,
    })
}
