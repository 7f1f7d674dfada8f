//! `aviary run`: select tests, resolve (and build) their images, write each test's Ignition
//! configs and jobs, run them with the reporters, and map the result to an exit code. `execute`
//! is shared with `aviary qualify`, which selects its tests from the promotion policy.

use super::{load_suites, parse_shard, runtime, select, BadInput};
use crate::cli::*;
use crate::images::{Images, Workspace};
use crate::machine::accel;
use crate::report::{
    html_file::HtmlReporter, junit::JunitReporter, progress::ProgressReporter,
    summary::SummaryReporter, FanOut,
};
use crate::runner::result::{RunInfo, TestResult};
use crate::runner::{self, RunEnd, Shared};
use crate::shard::Shard;
use crate::suite::{Suite, Test};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub(super) fn cmd_run(args: RunArgs) -> Result<i32> {
    run_in(Workspace::discover(), args, None)
}

/// `aviary run` in `ws`, the accelerator `accel` when given (`aviary reproduce` passes the
/// bundle's manifest in `ws` and its accelerator here).
pub(super) fn run_in(ws: Workspace, args: RunArgs, accel: Option<accel::Forced>) -> Result<i32> {
    crate::interrupt::install();
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
    let opts = RunOptions {
        jobs: args.jobs,
        retries: args.retries,
        seed: args.seed,
        reports: args.reports.clone(),
        cold: args.cold,
        keep_on_failure: args.keep_on_failure,
        keep_all: args.keep_all,
        shard,
        fail_fast: args.fail_fast,
        accel,
        stop: None,
    };
    Ok(execute(&ws, &mut images, &suites, tests, &opts)?.code)
}

/// How a run runs, whoever chose its tests.
#[derive(Debug, Clone)]
pub(super) struct RunOptions {
    pub jobs: runner::schedule::Jobs,
    pub retries: u32,
    pub seed: Option<u64>,
    pub reports: Option<PathBuf>,
    pub cold: bool,
    pub keep_on_failure: bool,
    pub keep_all: bool,
    pub shard: Option<Shard>,
    pub fail_fast: bool,
    /// The accelerator to use whatever the probe says (a repro bundle's); else `AVIARY_ACCEL`.
    pub accel: Option<accel::Forced>,
    /// A caller's rule to end the run early (`aviary qualify`'s budget run); overrides
    /// `fail_fast`.
    pub stop: Option<runner::stop::Stop>,
}

/// A finished run: its exit code (`cli::EXIT_*`) and its folder.
pub(super) struct Executed {
    pub code: i32,
    pub run_dir: PathBuf,
}

/// Runs `tests` (of `suites`) and writes the run folder; see the module comment.
pub(super) fn execute(
    ws: &Workspace,
    images: &mut Images,
    suites: &[Suite],
    tests: Vec<Test>,
    o: &RunOptions,
) -> Result<Executed> {
    if !tests.is_empty() {
        check_host_tools()?;
        check_memory(&tests)?;
    }
    let resolved = runner::plan::resolve_images(images, &tests)?;
    let (stamp, started) = crate::clock::stamps(crate::clock::now_secs());
    let seed = o.seed.unwrap_or_else(random_u64);
    let run_id = format!("{stamp}-{:04x}", seed & 0xffff);
    let reports = o.reports.clone().unwrap_or_else(|| ws.reports_dir());
    let run_dir = reports.join(&run_id);
    make_run_dir(&reports, &run_dir)?;
    let key_dir = run_dir.join(".ssh");
    private_dir(&key_dir)?;
    let key = key_dir.join("id_ed25519");
    crate::ssh::generate_key(&key)?;
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))
        .with_context(|| format!("reading {}", key.with_extension("pub").display()))?;
    let plan = runner::plan::Plan::build(resolved, suites, &tests, &run_dir, &pubkey)?;
    let latest = reports.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&run_id, &latest);
    let rt = runtime()?;
    let kernel = plan.images.values().find_map(|r| r.vmlinuz.clone());
    let forced = o.accel.clone().or_else(accel::forced_by_env);
    let decision = rt.block_on(accel::detect(
        &images.cache,
        kernel.as_deref(),
        forced.as_ref(),
    ));
    tracing::info!(accel = %decision.accel, reason = %decision.reason, scale = decision.timeout_scale, "accelerator");
    let info = RunInfo {
        evidence: crate::runner::result::EVIDENCE_FORMAT,
        run_id,
        started,
        dir: run_dir.clone(),
        seed,
        accel: decision,
        images: plan.images.values().cloned().collect(),
        suites: suites.iter().map(|s| s.name.clone()).collect(),
        shard: o.shard,
        retries: o.retries,
        merged_from: Vec::new(),
        schedule: None,
    };
    let code = rt.block_on(run_plan(ws, images, info, key, plan, o))?;
    drop(rt);
    crate::machine::process::kill_all();
    write_resources(&run_dir.join("resources.json"));
    if code == EXIT_PASS && !o.keep_on_failure && !o.keep_all {
        let _ = std::fs::remove_dir_all(&key_dir);
    }
    Ok(Executed { code, run_dir })
}

/// Runs the plan's jobs with the reporters; the exit code.
async fn run_plan(
    ws: &Workspace,
    images: &Images,
    mut info: RunInfo,
    key: PathBuf,
    plan: runner::plan::Plan,
    o: &RunOptions,
) -> Result<i32> {
    let sock_dir = tempfile::Builder::new().prefix("aviary-").tempdir()?;
    let accel = info.accel.accel.to_string();
    let budget = runner::schedule::Budget::new(
        o.jobs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        runner::schedule::available_memory_mib(),
    );
    tracing::info!(schedule = %budget.describe(), "scheduler");
    info.schedule = Some(budget);
    let run_dir = info.dir.clone();
    let shared = Arc::new(Shared {
        info,
        manifest: images.manifest.clone(),
        key,
        sock_dir: sock_dir.path().to_path_buf(),
        keep_on_failure: o.keep_on_failure,
        keep_all: o.keep_all,
        budget,
        manifest_path: ws.manifest_path(),
        kept: Mutex::new(Vec::new()),
        platform: Arc::new(crate::machine::Qemu),
        stop: o
            .stop
            .clone()
            .or_else(|| o.fail_fast.then(runner::stop::Stop::fail_fast)),
        snapshots: (!o.cold).then(|| {
            runner::snapshot::Cache::new(sock_dir.path().join("snap"), plan.template_keys(&accel))
        }),
    });
    let mut sinks = FanOut(vec![
        Box::new(ProgressReporter::new()),
        Box::new(JunitReporter::new(run_dir.join("junit.xml"))),
        Box::new(SummaryReporter::new(run_dir.join("summary.json"))),
        Box::new(HtmlReporter::new(run_dir.clone())),
        Box::new(crate::report::steps_log::StepsLogReporter::new()),
    ]);
    let (results, end) = runner::run(plan.jobs, shared.clone(), &mut sinks).await?;
    let kept = std::mem::take(&mut *shared.kept.lock().unwrap_or_else(|e| e.into_inner()));
    if !kept.is_empty() && end == RunEnd::Completed {
        eprintln!(
            "aviary: {} machine(s) are still up; Ctrl-C ends them:",
            kept.len()
        );
        for m in &kept {
            eprintln!("  {}: {}", m.name(), m.endpoint().ssh_command());
        }
        let _ = tokio::signal::ctrl_c().await;
    }
    for mut m in kept {
        m.shutdown().await;
    }
    Ok(exit_code(&results, end))
}

/// The run's exit code (its closing line is the progress reporter's).
fn exit_code(results: &[TestResult], end: RunEnd) -> i32 {
    let s = crate::runner::result::RunStats::of(results);
    match end {
        RunEnd::Interrupted(_) => EXIT_INTERRUPTED,
        RunEnd::Completed if s.errors > 0 => EXIT_BAD_INPUT,
        RunEnd::Completed if s.failed > 0 => EXIT_FAILURES,
        RunEnd::Completed => EXIT_PASS,
        RunEnd::Stopped(_) => EXIT_FAILURES,
    }
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
            let id: String = t.id().into();
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
