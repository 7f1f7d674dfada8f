//! What each subcommand does; main.rs only maps the result to an exit code.

mod debug;
mod gate;

use crate::cli::*;
use crate::images::{Images, ResolvedImage, Workspace};
use crate::machine::accel;
use crate::report::{
    html_file::HtmlReporter, junit::JunitReporter, progress::ProgressReporter,
    summary::SummaryReporter, FanOut,
};
use crate::runner::result::{Outcome, RunInfo};
use crate::runner::test::Job;
use crate::runner::{self, RunEnd, Shared};
use crate::shard::{Shard, ShardParseError};
use crate::suite::{self, ImageRef, LoadContext, Suite, Test};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A user-input problem: reported as is, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::List(sel) => cmd_list(sel),
        Command::Images { command } => cmd_images(command),
        Command::Report { command } => gate::cmd_report(command),
        Command::Probe => cmd_probe(),
        Command::Gate(args) => gate::cmd_gate(args),
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
        Some(s) => s.select(tests, |t| format!("{}::{}", t.suite, t.name)),
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
            let id = format!("{}::{}", s.name, t.name);
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
        if i.contains('/') || i.ends_with(".qcow2") {
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
        let machines: Vec<String> = t
            .machines
            .iter()
            .map(|m| format!("{}({})", m.name, m.image))
            .collect();
        let setup = if t.setup > 0 {
            format!("setup: {}  ", t.setup)
        } else {
            String::new()
        };
        println!(
            "{}::{}  machines: {}  {setup}steps: {}  timeout: {}",
            t.suite,
            t.name,
            machines.join(" "),
            t.steps.len() - t.setup,
            suite::duration::format(t.timeout)
        );
    }
    Ok(EXIT_PASS)
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
    let d = runtime()?.block_on(accel::detect(&images.cache, kernel.as_deref()));
    println!("{}", serde_json::to_string_pretty(&d)?);
    Ok(EXIT_PASS)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

fn private_dir(p: &Path) -> Result<()> {
    crate::private::dir(p).with_context(|| format!("creating {}", p.display()))
}

/// Host programs every machine needs: the program, the Debian package that has it, and why.
const HOST_TOOLS: &[(&str, &str, &str)] = &[
    (
        crate::machine::qemu::QEMU_BINARY,
        "qemu-system-x86",
        "every machine runs in it",
    ),
    (
        "qemu-img",
        "qemu-utils",
        "every machine's overlay disk is made with it",
    ),
];

/// Refuses a run on a host that lacks QEMU, before any folder is made or anything starts.
fn check_host_tools() -> Result<(), BadInput> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (tool, package, why) in HOST_TOOLS {
        if crate::machine::process::find_on_path(tool, &path).is_none() {
            return Err(BadInput(format!(
                "aviary: {tool} was not found on PATH ({}); {why}\n  hint: install the {package} package (apt-get install {package})",
                path.to_string_lossy()
            )));
        }
    }
    Ok(())
}

/// Refuses tests whose machines together ask for more memory than this host has (MemTotal
/// less a reserve): they could never run, so nothing boots.
fn check_memory(tests: &[Test]) -> Result<(), BadInput> {
    let total = runner::schedule::total_memory_mib();
    let refused: Vec<String> = tests
        .iter()
        .filter_map(|t| {
            let machines: Vec<(String, u64)> = t
                .machines
                .iter()
                .map(|m| (m.name.clone(), u64::from(m.memory_mib)))
                .collect();
            let id = format!("{}::{}", t.suite, t.name);
            runner::schedule::check_host_memory(&id, &machines, total).err()
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(BadInput(refused.join("\n")))
    }
}

/// Makes the run's folder (mode 0700: it holds the run's key and Ignition configs) and proves
/// that reports can be written there, before any VM starts.
fn make_run_dir(reports: &Path, run_dir: &Path) -> Result<(), BadInput> {
    crate::private::dir(run_dir)
        .and_then(|()| crate::private::probe_writable(run_dir))
        .map_err(|e| {
            let _ = std::fs::remove_dir(run_dir);
            BadInput(format!(
                "aviary: cannot write reports in {}: creating and writing {} failed: {e}; no VM was started\n  hint: give a writable folder with room to spare with --reports DIR",
                reports.display(),
                run_dir.display()
            ))
        })
}

pub(super) fn cmd_run(args: RunArgs) -> Result<i32> {
    crate::interrupt::install();
    let ws = Workspace::discover();
    let mut images = Images::open(ws.clone())?;
    let shard = parse_shard(&args.select)?;
    let suites = load_suites(&ws, &images, &args.select.suites)?;
    let tests = select(&suites, &args.select, &images)?;
    if let (true, Some(s)) = (tests.is_empty(), shard) {
        eprintln!(
            "aviary: shard {s} has no tests (the selection has fewer than {} tests); writing empty reports",
            s.index
        );
    }

    if !tests.is_empty() {
        check_host_tools()?;
        check_memory(&tests)?;
    }

    // Images: build what is missing, verify every digest.
    let mut resolved: BTreeMap<String, ResolvedImage> = BTreeMap::new();
    for t in &tests {
        let mut resolve = |r: &ImageRef, what: String| {
            images.resolve(r).map_err(|e| {
                BadInput(format!(
                    "aviary: test {}::{}, {what}: {e:#}",
                    t.suite, t.name
                ))
            })
        };
        let targets = t.steps.iter().filter_map(|s| match &s.kind {
            suite::StepKind::Update { to, .. } => Some(ImageRef::Channel(to.clone())),
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

    let (stamp, started) = crate::clock::stamps(crate::clock::now_secs());
    let seed = args.seed.unwrap_or_else(random_u64);
    let run_id = format!("{stamp}-{:04x}", seed & 0xffff);
    let reports = args.reports.clone().unwrap_or_else(|| ws.reports_dir());
    let run_dir = reports.join(&run_id);
    make_run_dir(&reports, &run_dir)?;
    let key_dir = run_dir.join(".ssh");
    private_dir(&key_dir)?;
    let key = key_dir.join("id_ed25519");
    crate::ssh::generate_key(&key)?;
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))
        .with_context(|| format!("reading {}", key.with_extension("pub").display()))?;

    // Every Ignition config is written and validated before any VM starts.
    let mut jobs = Vec::new();
    for t in &tests {
        let dir = run_dir.join(&t.suite).join(&t.name);
        let mut ign = BTreeMap::new();
        let mut imgs = BTreeMap::new();
        for m in &t.machines {
            let mdir = dir.join(&m.name);
            private_dir(&mdir)?;
            let path = mdir.join("config.ign");
            let cfg = crate::ignition::config(&m.ignition, &m.name, &pubkey);
            crate::private::write(&path, serde_json::to_string_pretty(&cfg)?)
                .with_context(|| format!("writing {}", path.display()))?;
            crate::ignition::validate(&path).map_err(|e| {
                BadInput(format!(
                    "test {}::{}, machine {}: {e:#}",
                    t.suite, t.name, m.name
                ))
            })?;
            ign.insert(m.name.clone(), path);
            imgs.insert(m.name.clone(), resolved[&m.image.to_string()].clone());
        }
        let releases = t
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                suite::StepKind::Update { to, .. } => Some((to.clone(), resolved[to].clone())),
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
        jobs.push(Job {
            excerpt: crate::runner::repro::excerpt(source, t.loc.line, next),
            test: t.clone(),
            dir,
            images: imgs,
            ignition: ign,
            releases,
            attempt: 0,
        });
    }

    let latest = reports.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&run_id, &latest);

    let rt = runtime()?;
    let code = rt.block_on(async {
        let kernel = resolved.values().find_map(|r| r.vmlinuz.clone());
        let decision = accel::detect(&images.cache, kernel.as_deref()).await;
        tracing::info!(accel = %decision.accel, reason = %decision.reason, scale = decision.timeout_scale, "accelerator");
        let sock_dir = tempfile::Builder::new().prefix("aviary-").tempdir()?;
        let accel = decision.accel.to_string();
        let budget = runner::schedule::Budget::new(
            args.jobs,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            runner::schedule::available_memory_mib(),
        );
        tracing::info!(schedule = %budget.describe(), "scheduler");
        let shared = Arc::new(Shared {
            info: RunInfo {
                evidence: crate::runner::result::EVIDENCE_FORMAT,
                run_id: run_id.clone(),
                started,
                dir: run_dir.clone(),
                seed,
                accel: decision,
                images: resolved.values().cloned().collect(),
                suites: suites.iter().map(|s| s.name.clone()).collect(),
                shard,
                retries: args.retries,
                merged_from: Vec::new(),
                schedule: Some(budget),
            },
            manifest: images.manifest.clone(),
            key: key.clone(),
            sock_dir: sock_dir.path().to_path_buf(),
            keep_on_failure: args.keep_on_failure,
            keep_all: args.keep_all,
            budget,
            manifest_path: ws.manifest_path(),
            kept: Mutex::new(Vec::new()),
            snapshots: (!args.cold).then(|| {
                runner::snapshot::Cache::new(
                    sock_dir.path().join("snap"),
                    runner::template::planned_keys(&jobs, &accel),
                )
            }),
        });
        let mut sinks = FanOut(vec![
            Box::new(ProgressReporter::new()),
            Box::new(JunitReporter::new(run_dir.join("junit.xml"))),
            Box::new(SummaryReporter::new(run_dir.join("summary.json"))),
            // Reads the summary.json written just before it.
            Box::new(HtmlReporter::new(run_dir.clone())),
        ]);
        let (results, end) = runner::run(jobs, shared.clone(), &mut sinks).await?;
        let kept = std::mem::take(&mut *shared.kept.lock().unwrap_or_else(|e| e.into_inner()));
        if !kept.is_empty() && end == RunEnd::Completed {
            eprintln!("aviary: {} machine(s) are still up; Ctrl-C ends them:", kept.len());
            for m in &kept {
                eprintln!("  {}: {}", m.name, m.endpoint().ssh_command());
            }
            let _ = tokio::signal::ctrl_c().await;
        }
        for mut m in kept {
            m.shutdown().await;
        }
        let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
        let (p, f, e) = (
            count(|o| matches!(o, Outcome::Passed)),
            count(|o| matches!(o, Outcome::Failed { .. })),
            count(|o| matches!(o, Outcome::Error { .. })),
        );
        let flaky = results.iter().filter(|r| r.flaky).count();
        let flaky = if flaky > 0 {
            format!(" ({flaky} flaky)")
        } else {
            String::new()
        };
        eprintln!(
            "aviary: {p} passed{flaky}, {f} failed, {e} errors — {}",
            run_dir.join("junit.xml").display()
        );
        Ok::<i32, anyhow::Error>(match end {
            RunEnd::Interrupted => EXIT_INTERRUPTED,
            RunEnd::Completed if e > 0 => EXIT_BAD_INPUT,
            RunEnd::Completed if f > 0 => EXIT_FAILURES,
            RunEnd::Completed => EXIT_PASS,
        })
    })?;
    drop(rt);
    crate::machine::process::kill_all();
    write_resources(&run_dir.join("resources.json"));
    if code == EXIT_PASS && !args.keep_on_failure && !args.keep_all {
        let _ = std::fs::remove_dir_all(&key_dir);
    }
    Ok(code)
}

/// Aviary's own CPU time and peak memory against its reaped children's (QEMU, qemu-img,
/// ssh-keygen): what the benchmark reads to show Aviary is not the cost of a run.
fn write_resources(path: &Path) {
    fn usage(who: libc::c_int) -> libc::rusage {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut u);
            u
        }
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (me, kids) = (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN));
    let doc = serde_json::json!({
        "aviary_cpu_s": secs(me.ru_utime) + secs(me.ru_stime),
        "aviary_peak_rss_kib": me.ru_maxrss,
        "children_cpu_s": secs(kids.ru_utime) + secs(kids.ru_stime),
        "children_peak_rss_kib": kids.ru_maxrss,
    });
    let _ = std::fs::write(path, format!("{doc:#}\n"));
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
