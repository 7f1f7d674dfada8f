//! What each subcommand does; main.rs only maps the result to an exit code.

mod debug;
mod gate;
mod qualify;
mod run;

use crate::cli::*;
use crate::images::{Images, Workspace};
use crate::machine::accel;
use crate::shard::{Shard, ShardParseError};
use crate::suite::{self, ImageRef, LoadContext, Suite, Test};
use anyhow::{Context, Result};
use std::path::PathBuf;

pub use crate::error::BadInput;

pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => run::cmd_run(args),
        Command::List(sel) => cmd_list(sel),
        Command::Images { command } => cmd_images(command),
        Command::Report { command } => gate::cmd_report(command),
        Command::Probe => cmd_probe(),
        Command::Gate(args) => gate::cmd_gate(args),
        Command::Qualify(args) => qualify::cmd_qualify(args),
        Command::Reproduce {
            bundle,
            keep,
            reports,
        } => debug::cmd_reproduce(&bundle, keep, reports),
        Command::Spawn(args) => debug::cmd_spawn(args),
        Command::GuestfwdProxy { addr } => {
            crate::update_server::proxy(&addr)?;
            Ok(EXIT_PASS)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn load_suites(ws: &Workspace, images: &Images, paths: &[PathBuf]) -> Result<Vec<Suite>> {
    let paths: Vec<PathBuf> = if paths.is_empty() {
        let dir = ws.root.join("suites");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        v.sort();
        v
    } else {
        paths.to_vec()
    };
    let ctx = LoadContext {
        channels: images.manifest.channel_names(),
    };
    let mut suites = Vec::new();
    let mut errors = Vec::new();
    for p in &paths {
        match suite::load_file(p, &ctx) {
            Ok(s) => suites.push(s),
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        return Err(BadInput(suite::LoadErrors(errors).to_string()).into());
    }
    Ok(suites)
}

fn parse_shard(sel: &SelectArgs) -> Result<Option<Shard>, BadInput> {
    sel.shard
        .as_deref()
        .map(|s| {
            s.parse()
                .map_err(|e: ShardParseError| BadInput(e.to_string()))
        })
        .transpose()
}

/// Tests selected by the filter, with `--image` applied, then the shard's part of them.
fn select(suites: &[Suite], sel: &SelectArgs, images: &Images) -> Result<Vec<Test>> {
    let shard = parse_shard(sel)?;
    let tests = select_all(suites, sel, images)?;
    Ok(match shard {
        Some(s) => s.select(tests, |t| t.id().into()),
        None => tests,
    })
}

fn select_all(suites: &[Suite], sel: &SelectArgs, images: &Images) -> Result<Vec<Test>> {
    let matcher = match &sel.filter {
        Some(f) => Some(
            globset::Glob::new(f)
                .map_err(|e| BadInput(format!("--filter `{f}`: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let overrides = image_overrides(&sel.image, &images.manifest.channel_names())?;
    let mut tests = Vec::new();
    for s in suites {
        for t in &s.tests {
            let id: String = t.id().into();
            if let Some(m) = &matcher {
                if !m.is_match(&id) && !m.is_match(&t.name) {
                    continue;
                }
            }
            let mut t = t.clone();
            for m in &mut t.machines {
                if let Some(img) = overrides.image_for(&m.name) {
                    m.image = img.clone();
                }
            }
            tests.push(t);
        }
    }
    if tests.is_empty() {
        return Err(BadInput("no test matches the selection".into()).into());
    }
    for name in overrides.per_machine.keys() {
        if !tests
            .iter()
            .any(|t| t.machines.iter().any(|m| &m.name == name))
        {
            return Err(BadInput(format!(
                "--image {name}=…: no selected test has a machine named `{name}`"
            ))
            .into());
        }
    }
    Ok(tests)
}

/// `--image` values: one for every machine and/or `MACHINE=IMAGE` for machines of that name.
#[derive(Debug, Default, PartialEq)]
struct ImageOverrides {
    all: Option<ImageRef>,
    per_machine: std::collections::BTreeMap<String, ImageRef>,
}

impl ImageOverrides {
    fn image_for(&self, machine: &str) -> Option<&ImageRef> {
        self.per_machine.get(machine).or(self.all.as_ref())
    }
}

fn image_overrides(args: &[String], channels: &[String]) -> Result<ImageOverrides, BadInput> {
    let image = |arg: &str, i: &str| {
        if ImageRef::names_a_file(i) {
            Ok(ImageRef::Path(PathBuf::from(i)))
        } else if channels.iter().any(|c| c == i) {
            Ok(ImageRef::Channel(i.to_string()))
        } else {
            Err(BadInput(format!(
                "--image `{arg}`: unknown channel `{i}`; known: {} (or give a .qcow2 path)",
                channels.join(", ")
            )))
        }
    };
    let mut out = ImageOverrides::default();
    for arg in args {
        match arg.split_once('=') {
            Some((m, i)) if !m.is_empty() && !m.contains('/') => {
                out.per_machine.insert(m.to_string(), image(arg, i)?);
            }
            _ => out.all = Some(image(arg, arg)?),
        }
    }
    Ok(out)
}

fn cmd_list(sel: SelectArgs) -> Result<i32> {
    parse_shard(&sel)?;
    let ws = Workspace::discover();
    let images = Images::open(ws.clone())?;
    let suites = load_suites(&ws, &images, &sel.suites)?;
    let tests = select(&suites, &sel, &images)?;
    if tests.is_empty() {
        eprintln!(
            "aviary: shard {} has no tests",
            sel.shard.as_deref().unwrap_or("?")
        );
    }
    for t in tests {
        let machines: Vec<String> = t.machines.iter().map(machine_line).collect();
        // What the plan would skip: a step whose machine's profile gives it no meaning.
        let skip = t.steps.iter().find_map(|s| {
            let m = t.machines.iter().find(|m| m.name == s.on)?;
            images.profile_for(&m.image).ok()?.skip_reason(&s.kind)
        });
        let setup = if t.setup > 0 {
            format!("setup: {}  ", t.setup)
        } else {
            String::new()
        };
        println!(
            "{}  machines: {}  {setup}steps: {}  timeout: {}{}",
            t.id(),
            machines.join(" "),
            t.steps.len() - t.setup,
            suite::duration::format(t.timeout),
            skip.map(|w| format!("  SKIP: {w}")).unwrap_or_default()
        );
    }
    Ok(EXIT_PASS)
}

/// `node(stable)`, or `node(stable, uefi, secure-boot, tpm, cloud-init)` with what it asks for.
fn machine_line(m: &suite::MachineSpec) -> String {
    let mut parts = vec![m.image.to_string()];
    if let Some(f) = m.firmware {
        parts.push(format!("{f:?}").to_lowercase());
    }
    for (on, what) in [
        (m.secure_boot, "secure-boot"),
        (m.tpm, "tpm"),
        (m.cloud_init.is_some(), "cloud-init"),
    ] {
        if on {
            parts.push(what.into());
        }
    }
    format!("{}({})", m.name, parts.join(", "))
}

fn cmd_images(c: ImagesCommand) -> Result<i32> {
    let ws = Workspace::discover();
    let mut images = Images::open(ws)?;
    match c {
        ImagesCommand::List => {
            for l in images.list()? {
                println!("{l}");
            }
        }
        ImagesCommand::Path { channel } => {
            if !images.manifest.channels.contains_key(&channel) {
                return Err(BadInput(format!(
                    "unknown channel `{channel}`; known: {}",
                    images.manifest.channel_names().join(", ")
                ))
                .into());
            }
            let r = images.resolve(&ImageRef::Channel(channel))?;
            println!("{}", r.disk.display());
        }
        ImagesCommand::Build { channels, force } => {
            let channels = if channels.is_empty() {
                images.manifest.channel_names()
            } else {
                channels
            };
            for ch in channels {
                if !images.manifest.channels.contains_key(&ch) {
                    return Err(BadInput(format!(
                        "unknown channel `{ch}`; known: {}",
                        images.manifest.channel_names().join(", ")
                    ))
                    .into());
                }
                let rec = images.build(&ch, force)?;
                println!(
                    "{ch}: {} kernel {} ({}) sha256 {} {} MiB, built in {:.0}s",
                    rec.version,
                    rec.kernel_release,
                    rec.kernel_version,
                    rec.sha256,
                    rec.size >> 20,
                    rec.build_seconds
                );
            }
        }
    }
    Ok(EXIT_PASS)
}

fn cmd_probe() -> Result<i32> {
    let ws = Workspace::discover();
    let mut images = Images::open(ws)?;
    let first = images.manifest.channel_names().into_iter().next();
    let kernel = match first {
        Some(ch) => images.resolve(&ImageRef::Channel(ch))?.vmlinuz,
        None => None,
    };
    let d = runtime()?.block_on(accel::detect(
        &images.cache,
        kernel.as_deref(),
        accel::forced_by_env().as_ref(),
    ));
    println!("{}", serde_json::to_string_pretty(&d)?);
    Ok(EXIT_PASS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels() -> Vec<String> {
        ["alpha", "beta", "stable"].map(String::from).to_vec()
    }

    #[test]
    fn image_overrides_for_all_and_named_machines() {
        let args = ["stable", "node-c=beta", "node-d=/tmp/x.qcow2"].map(String::from);
        let o = image_overrides(&args, &channels()).unwrap();
        assert_eq!(
            o.image_for("node-a"),
            Some(&ImageRef::Channel("stable".into()))
        );
        assert_eq!(
            o.image_for("node-c"),
            Some(&ImageRef::Channel("beta".into()))
        );
        assert_eq!(
            o.image_for("node-d"),
            Some(&ImageRef::Path(PathBuf::from("/tmp/x.qcow2")))
        );
        let named_only = image_overrides(&["node-c=alpha".to_string()], &channels()).unwrap();
        assert_eq!(named_only.image_for("node-a"), None);
        assert_eq!(
            named_only.image_for("node-c"),
            Some(&ImageRef::Channel("alpha".into()))
        );
    }

    #[test]
    fn image_overrides_reject_unknown_channels() {
        let e = image_overrides(&["node-c=gamma".to_string()], &channels()).unwrap_err();
        assert!(
            e.0.contains("--image `node-c=gamma`: unknown channel `gamma`"),
            "{}",
            e.0
        );
        assert!(e.0.contains("alpha, beta, stable"), "{}", e.0);
        let e = image_overrides(&["gamma".to_string()], &channels()).unwrap_err();
        assert!(e.0.contains("unknown channel `gamma`"), "{}", e.0);
    }
}
