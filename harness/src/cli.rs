//! Command-line interface (clap). Exit codes: 0 all passed, 1 test failures, 2 bad input or
//! setup error, 130 interrupted.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAILURES: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "aviary",
    version,
    about = "Boots candidate OS images in QEMU and runs release-gating suites against them",
    after_help = "Exit codes: 0 all tests passed, 1 test failures, 2 bad input or setup error, 130 interrupted.\nLogs: RUST_LOG=aviary=debug. Accelerator: probed (KVM, else TCG); AVIARY_ACCEL=tcg|kvm forces one."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run suites (default: every suites/*.yaml) and write reports/<run-id>/.
    Run(RunArgs),
    /// List the tests a run would execute, with their machines and images.
    List(SelectArgs),
    /// Build or list the reference candidate images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Work with run reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Decide (and cache) the accelerator: a real tiny boot under KVM, else TCG.
    Probe,
    /// Rerun a failed test exactly from its repro bundle (`<run>/<suite>/<test>/repro`).
    Reproduce {
        bundle: PathBuf,
        /// Leave its VMs up afterwards, passed or failed, and print the ssh commands.
        #[arg(long)]
        keep: bool,
        /// Where the rerun's folder goes (default: reports/ in the workspace).
        #[arg(long)]
        reports: Option<PathBuf>,
    },
    /// Boot machines for hands-on debugging (a cluster on a private segment when several)
    /// and keep them up until Ctrl-C.
    Spawn(SpawnArgs),
    /// Decide whether a release may move to the next channel, from runs' reports.
    /// Exit codes: 0 promote, 1 hold, 2 bad input.
    Gate(GateArgs),
    /// Qualify a channel's release for the next channel: build what is missing, run every test
    /// the promotion policy requires of it the way the policy counts it (its own boots, updates
    /// into it), gate, and print the verdict with every reason.
    /// Exit codes: 0 promote, 1 hold, 2 bad input or no verdict, 130 interrupted.
    Qualify(QualifyArgs),
    /// Internal: QEMU's guestfwd runs this per guest connection to reach the update server.
    #[command(hide = true)]
    GuestfwdProxy { addr: String },
}

#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Suite files; default: every .yaml in suites/.
    pub suites: Vec<PathBuf>,
    /// Boot every machine from this image instead: a channel (stable, beta, alpha) or a .qcow2
    /// path; `MACHINE=IMAGE` boots only the machines of that name from it (a canary in a
    /// cluster: `--image stable --image node-c=beta`). Repeatable; named ones win.
    #[arg(long)]
    pub image: Vec<String>,
    /// Only tests whose `suite::test` or `test` name matches this glob.
    #[arg(long)]
    pub filter: Option<String>,
    /// Only shard I of N (1-based) of the selected tests: round-robin over them sorted by
    /// `suite::test`, so N machines given 1/N … N/N run each test exactly once.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Tests run at once (each boots its own VMs): a number, or `auto` to pack tests by their
    /// machines' vCPUs and memory against the host's cores and free memory.
    #[arg(short = 'j', long = "jobs", default_value = "auto")]
    pub jobs: crate::runner::schedule::Jobs,
    /// Leave the VMs of failed tests running and print how to reach them; Ctrl-C ends them.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Run a test that did not pass again, on fresh machines, up to N more times; one that
    /// then passes is reported flaky (and passes the run).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Seed recorded in the reports (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run folders go (default: reports/ in the workspace).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Boot every machine from its disk: no boot-once snapshots (tests with `boot: cold`
    /// always boot so).
    #[arg(long)]
    pub cold: bool,
    /// Start no test after the first one fails; the running ones finish. Tests not started are
    /// not in the reports.
    #[arg(long)]
    pub fail_fast: bool,
    /// Keep every test's machines up, passed or not (reproduce --keep, spawn).
    #[arg(skip)]
    pub keep_all: bool,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// A channel or a .qcow2 path.
    #[arg(long, default_value = "stable")]
    pub image: String,
    /// How many machines (node-1 … node-N); several share a private segment.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub nodes: u32,
    /// Guest memory per machine, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory: u32,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The promotion policy (default: images/promotion.yaml in the workspace).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The channel the release is in now.
    #[arg(long)]
    pub from: String,
    /// The channel it would move to.
    #[arg(long)]
    pub to: String,
    /// The release (version) being judged: must be the `from` channel's in channels.yaml.
    #[arg(long)]
    pub release: String,
    /// Where verdict.json goes (default: verdict.json in the current folder).
    #[arg(long, default_value = "verdict.json")]
    pub verdict: PathBuf,
    /// On a promote verdict, rewrite channels.yaml (atomically) and append to promotions.log.
    #[arg(long)]
    pub promote: bool,
    /// Evaluate as of this time (RFC 3339 UTC) instead of now: soak times and expiry dates.
    #[arg(long, hide = true)]
    pub now: Option<String>,
    /// Run folders (reports/<run-id>/, or their summary.json): shards, CI machines, reruns.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QualifyArgs {
    /// The channel whose release is judged (beta: may it become stable?).
    pub channel: String,
    /// The channel it would move to (default: the policy's one transition from CHANNEL).
    #[arg(long)]
    pub to: Option<String>,
    /// The promotion policy (default: images/promotion.yaml in the workspace).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Tests run at once: a number, or `auto` (pack by vCPUs and memory).
    #[arg(short = 'j', long = "jobs", default_value = "auto")]
    pub jobs: crate::runner::schedule::Jobs,
    /// Run a test that did not pass again, up to N more times (flaky tests count against the
    /// policy's flake budget).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Where the run folder goes (default: reports/ in the workspace); verdict.json goes in it.
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Seed recorded in the reports (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the plan (each required test and how it runs) and stop.
    #[arg(long)]
    pub list: bool,
    /// Start no test after the first one fails (the release is held anyway; the verdict names
    /// the required tests that never ran).
    #[arg(long)]
    pub fail_fast: bool,
    /// On a promote verdict, copy the release into the next channel of the manifest and log it
    /// in promotions.log (as `aviary gate --promote`).
    #[arg(long)]
    pub promote: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build channels' images (default: all) unless cached for the current recipe.
    Build {
        channels: Vec<String>,
        /// Rebuild even when the cache holds an image for this recipe.
        #[arg(long)]
        force: bool,
    },
    /// Show each channel's release and whether its image is built.
    List,
    /// Print the path of a channel's built disk image (building it if needed).
    Path { channel: String },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge several runs (shards, CI machines) into one run folder.
    Merge {
        runs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// (Re)write RUN/report.html from its summary.json (and verdict.json, if any).
    Html {
        run: PathBuf,
        #[arg(long)]
        verdict: Option<PathBuf>,
    },
}
