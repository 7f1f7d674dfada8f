//! Repro bundles: what a failed test needs to run again exactly, in `<test>/repro/` —
//! images and digests, Ignition configs, QEMU command lines, the suite excerpt, seed and
//! accelerator. `aviary reproduce <test>/repro` reruns it.

use super::job::Job;
use super::Shared;
use crate::runner::result::Outcome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An image as the bundle pins it: what the suite (or `--image`) named, and its exact build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedImage {
    /// A channel of the manifest, or a .qcow2 path.
    pub image: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub aviary: String,
    /// `suite::test`.
    pub test: String,
    pub suite_file: PathBuf,
    pub manifest: PathBuf,
    pub seed: u64,
    pub accelerator: crate::machine::accel::Accel,
    pub outcome: Outcome,
    /// Machine → the image it booted.
    pub machines: BTreeMap<String, PinnedImage>,
    /// Channel → the release its `update` steps offered.
    pub releases: BTreeMap<String, PinnedImage>,
    /// The run booted every machine cold (`--cold`): the rerun does too.
    #[serde(default)]
    pub cold: bool,
    /// The command that reruns it.
    pub reproduce: String,
}

/// The test's lines of its suite file: from its `- name:` line to the next test's.
pub fn excerpt(source: &str, start_line: u64, next_start: Option<u64>) -> String {
    let start = start_line.saturating_sub(1) as usize;
    let end = next_start.map(|n| n.saturating_sub(1) as usize);
    source
        .lines()
        .enumerate()
        .filter(|(i, _)| *i >= start && end.is_none_or(|e| *i < e))
        .map(|(_, l)| format!("{l}\n"))
        .collect()
}

fn pin(image: &str, r: &crate::images::ResolvedImage) -> PinnedImage {
    PinnedImage {
        image: image.to_string(),
        version: r.version.clone(),
        sha256: r.sha256.clone(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Writes `<job dir>/repro/`; returns the folder.
pub fn write(job: &Job, shared: &Shared, outcome: &Outcome) -> std::io::Result<PathBuf> {
    let dir = job.dir.join("repro");
    crate::private::dir(&dir)?;
    let machines = job
        .test
        .machines
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                pin(&m.image.to_string(), &job.images[&m.name]),
            )
        })
        .collect();
    let releases = job
        .releases
        .iter()
        .map(|(ch, r)| (ch.clone(), pin(ch, r)))
        .collect();
    for (name, ign) in &job.ignition {
        crate::private::copy(ign, &dir.join(format!("{name}.ign")))?;
        let cmdline = job.dir.join(name).join("qemu-cmdline.txt");
        if cmdline.is_file() {
            std::fs::copy(&cmdline, dir.join(format!("{name}.qemu-cmdline.txt")))?;
        }
    }
    std::fs::write(dir.join("test.yaml"), &job.excerpt)?;
    let bundle = Bundle {
        aviary: env!("CARGO_PKG_VERSION").to_string(),
        test: job.id().into(),
        suite_file: absolute(&job.test.loc.file),
        manifest: absolute(&shared.manifest_path),
        seed: shared.info.seed,
        accelerator: shared.info.accel.accel,
        outcome: outcome.clone(),
        machines,
        releases,
        cold: shared.snapshots.is_none(),
        reproduce: format!("aviary reproduce {}", dir.display()),
    };
    let text = serde_json::to_string_pretty(&bundle).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("bundle.json"), text)?;
    Ok(dir)
}

/// Reads a bundle folder (or its bundle.json).
pub fn read(path: &Path) -> Result<Bundle, String> {
    let file = if path.is_dir() {
        path.join("bundle.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "{}: cannot read ({e}); a repro bundle is the repro/ folder a failed test leaves in its report folder",
            file.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a repro bundle: {e}",
            file.display(),
            e.line(),
            e.column()
        )
    })
}

/// The `--image` arguments that boot each machine from the bundle's image.
pub fn image_args(b: &Bundle) -> Vec<String> {
    b.machines
        .iter()
        .map(|(m, p)| format!("{m}={}", p.image))
        .collect()
}

/// Every pinned image must still be the same build: returns what changed.
pub fn changed(b: &Bundle, now: &BTreeMap<String, PinnedImage>) -> Vec<String> {
    let mut out = Vec::new();
    for (what, pinned) in b
        .machines
        .iter()
        .map(|(m, p)| (format!("machine {m}"), p))
        .chain(
            b.releases
                .iter()
                .map(|(c, p)| (format!("update target {c}"), p)),
        )
    {
        match now.get(&pinned.image) {
            Some(seen) if seen.sha256 == pinned.sha256 => {}
            Some(seen) => out.push(format!(
                "{what}: `{}` is now {} (sha256 {}), the bundle ran {} (sha256 {})",
                pinned.image, seen.version, seen.sha256, pinned.version, pinned.sha256
            )),
            None => out.push(format!("{what}: `{}` is not available", pinned.image)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str =
        "suite: s\ntests:\n  - name: a\n    steps: []\n  - name: b\n    steps:\n      - x\n";

    #[test]
    fn excerpt_is_the_tests_own_lines() {
        assert_eq!(excerpt(SUITE, 3, Some(5)), "  - name: a\n    steps: []\n");
        assert_eq!(
            excerpt(SUITE, 5, None),
            "  - name: b\n    steps:\n      - x\n"
        );
    }

    fn bundle() -> Bundle {
        let p = |i: &str, v: &str, s: &str| PinnedImage {
            image: i.into(),
            version: v.into(),
            sha256: s.into(),
        };
        Bundle {
            aviary: "0.1.0".into(),
            test: "s::a".into(),
            suite_file: "/w/suites/s.yaml".into(),
            manifest: "/w/images/channels.yaml".into(),
            seed: 42,
            accelerator: crate::machine::accel::Accel::Tcg,
            outcome: Outcome::Failed {
                message: "m".into(),
                detail: "d".into(),
                cause: None,
            },
            machines: BTreeMap::from([("node".into(), p("stable", "1000.0.0", "aa"))]),
            releases: BTreeMap::from([("beta".into(), p("beta", "1001.0.0", "bb"))]),
            cold: false,
            reproduce: "aviary reproduce x".into(),
        }
    }

    #[test]
    fn round_trips_and_pins_images() {
        let d = tempfile::tempdir().unwrap();
        let b = bundle();
        std::fs::write(
            d.path().join("bundle.json"),
            serde_json::to_string(&b).unwrap(),
        )
        .unwrap();
        let back = read(d.path()).unwrap();
        assert_eq!(back.machines, b.machines);
        assert_eq!(image_args(&back), ["node=stable"]);
        let mut now = BTreeMap::new();
        now.insert("stable".to_string(), b.machines["node"].clone());
        now.insert("beta".to_string(), b.releases["beta"].clone());
        assert!(changed(&b, &now).is_empty());
        now.get_mut("beta").unwrap().sha256 = "cc".into();
        assert_eq!(
            changed(&b, &now),
            ["update target beta: `beta` is now 1001.0.0 (sha256 cc), the bundle ran 1001.0.0 (sha256 bb)"]
        );
        now.remove("stable");
        assert_eq!(
            changed(&b, &now)[0],
            "machine node: `stable` is not available"
        );
    }

    #[test]
    fn bad_bundles_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path()).unwrap_err();
        assert!(e.contains("bundle.json: cannot read"), "{e}");
        std::fs::write(d.path().join("bundle.json"), "{\"test\": 1}").unwrap();
        let e = read(d.path()).unwrap_err();
        assert!(
            e.contains("bundle.json:1:") && e.contains("not a repro bundle"),
            "{e}"
        );
    }
}
