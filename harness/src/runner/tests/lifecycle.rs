//! A test's life on scripted machines (`machine::fake`): the real `test::run`, templates and
//! scheduler, with boots and commands answered by a script in milliseconds. Whose fault a
//! failure is, retries, a template failing while tests wait on it, a panic, an interrupt in
//! the middle of a step, and which machines stay up.

use super::*;
use crate::machine::boot_watch::BootFailure;
use crate::machine::fake::{Boot, Fake, FakePlatform, Reply};
use crate::runner::template::tests::on_stable;

/// The jobs of `tests` (suite `s`, every machine on `stable` with one Ignition config), each
/// in a folder of its own under `dir`.
fn jobs(tests: &str, dir: &std::path::Path) -> Vec<Job> {
    let ctx = crate::suite::LoadContext {
        channels: vec!["stable".into()],
    };
    let text = format!("suite: s\ntests:\n{tests}");
    let suite = crate::suite::load_str(std::path::Path::new("s.yaml"), &text, &ctx).unwrap();
    let ign = dir.join("config.ign");
    std::fs::write(&ign, "{}").unwrap();
    suite
        .tests
        .into_iter()
        .map(|t| on_stable(t.clone(), dir.join(&t.name), &ign))
        .collect()
}

/// A test of one machine `machine` that runs `cmd`.
fn runs(name: &str, machine: &str, cmd: &str) -> String {
    format!(
        "  - name: {name}\n    machines: {{ {machine}: {{ image: stable }} }}\n    steps:\n      - run: {{ on: {machine}, cmd: \"{cmd}\" }}\n"
    )
}

/// What a run on the fake platform left.
struct Ran {
    results: Vec<TestResult>,
    end: RunEnd,
    journal: Vec<String>,
    shared: Arc<Shared>,
    dir: tempfile::TempDir,
}

impl Ran {
    fn result(&self, name: &str) -> &TestResult {
        let mut of = self.results.iter().filter(|r| r.name == name);
        let r = of.next().unwrap_or_else(|| panic!("no result for {name}"));
        assert!(of.next().is_none(), "two results for {name}");
        r
    }

    /// The journal's lines about `machine`, without the machine's name.
    fn calls(&self, machine: &str) -> Vec<String> {
        let prefix = format!("{machine}: ");
        self.journal
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(String::from))
            .collect()
    }
}

/// The run's options a test changes.
#[derive(Default)]
struct Opts {
    retries: u32,
    keep_on_failure: bool,
    snapshots: bool,
    /// Sends SIGINT once the journal has this line.
    interrupt_at: Option<&'static str>,
    /// (test, reason): the plan found a step of that test its machine's profile skips.
    skip: Option<(&'static str, &'static str)>,
}

async fn run_fake(tests: &str, platform: FakePlatform, o: Opts) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = jobs(tests, dir.path());
    for j in jobs.iter_mut() {
        if let Some((_, why)) = o.skip.filter(|(name, _)| j.test.name == *name) {
            j.skip = Some(why.to_string());
        }
    }
    let platform = Arc::new(platform);
    let mut shared = base_shared(2, o.retries, None);
    shared.info.dir = dir.path().join("run");
    shared.sock_dir = dir.path().join("sock");
    shared.keep_on_failure = o.keep_on_failure;
    shared.platform = Arc::new(Fake(platform.clone()));
    if o.snapshots {
        let keys = super::super::template::planned_keys(&jobs, "tcg");
        shared.snapshots = Some(snapshot::Cache::new(dir.path().join("snap"), keys));
    }
    let shared = Arc::new(shared);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let exec: Exec = Arc::new(|job, shared, tell| Box::pin(test::run(job, shared, Some(tell))));
    let mut sinks = FanOut(vec![Box::new(
        crate::report::steps_log::StepsLogReporter::new(),
    )]);
    let run = run_with(jobs, shared.clone(), &mut sinks, exec, Signals::Channel(rx));
    let interrupt = async {
        let Some(line) = o.interrupt_at else { return };
        while !platform.journal().iter().any(|l| l == line) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send("SIGINT".into()).unwrap();
    };
    let (ran, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(60), run),
        interrupt
    );
    let (results, end) = ran.expect("the run ends").expect("no harness error");
    Ran {
        results,
        end,
        journal: platform.journal(),
        shared,
        dir,
    }
}

/// The failure's cause, as reports write it.
fn cause(r: &TestResult) -> String {
    match &r.outcome {
        Outcome::Failed { cause, .. } | Outcome::Error { cause, .. } => {
            cause.map(|c| c.to_string()).unwrap_or_default()
        }
        Outcome::Passed | Outcome::Skipped { .. } => String::new(),
    }
}

fn message(r: &TestResult) -> (&'static str, &str) {
    match &r.outcome {
        Outcome::Passed => ("passed", ""),
        Outcome::Failed { message, .. } => ("failed", message),
        Outcome::Error { message, .. } => ("error", message),
        Outcome::Skipped { message } => ("skipped", message),
    }
}

#[tokio::test]
async fn a_test_its_profile_skips_is_reported_skipped_and_starts_no_machine() {
    let tests = [
        runs("needs-an-update", "a", "true"),
        runs("runs", "b", "true"),
    ]
    .concat();
    let why = "profile flatcar: update: no update_engine here (step at line 9 on a)";
    let o = Opts {
        skip: Some(("needs-an-update", why)),
        ..Opts::default()
    };
    let ran = run_fake(&tests, FakePlatform::new(), o).await;
    assert_eq!(ran.end, RunEnd::Completed);
    assert_eq!(message(ran.result("needs-an-update")), ("skipped", why));
    assert!(ran.calls("a").is_empty(), "{:?}", ran.journal);
    assert_eq!(ran.result("runs").outcome, Outcome::Passed);
    let stats = crate::runner::result::RunStats::of(&ran.results);
    assert_eq!((stats.passed, stats.skipped), (1, 1));
    assert_eq!(stats.to_string(), "1 passed, 0 failed, 0 errors, 1 skipped");
}

#[tokio::test]
async fn the_candidate_fails_a_test_and_the_harness_errs_it() {
    let tests = [
        runs("exits-wrong", "a", "false"),
        runs("qemu-killed", "b", "work"),
        runs("no-kernel", "c", "true"),
        runs("qemu-missing", "d", "true"),
    ]
    .concat();
    let platform = FakePlatform::new()
        .reply("a", "false", vec![Reply::exit(1, "")])
        .reply(
            "b",
            "work",
            vec![Reply::QemuDies("killed by SIGKILL".into())],
        )
        .boots(
            "c",
            vec![Boot::Fails(BootFailure::NoKernel {
                starts: 3,
                last: "Booting `Aviary A'".into(),
            })],
        )
        .boots(
            "d",
            vec![Boot::HostFails("qemu-system-x86_64: not found".into())],
        );
    let ran = run_fake(&tests, platform, Opts::default()).await;
    assert_eq!(ran.end, RunEnd::Completed);
    let (kind, m) = message(ran.result("exits-wrong"));
    assert_eq!(kind, "failed");
    assert!(m.starts_with("step 1 (run, s.yaml:"), "{m}");
    assert!(m.ends_with("`false` on a exited 1, expected 0"), "{m}");
    let (kind, m) = message(ran.result("qemu-killed"));
    assert_eq!(kind, "error", "{m}");
    assert!(
        m.contains("its QEMU killed by SIGKILL (not by Aviary)"),
        "{m}"
    );
    let (kind, m) = message(ran.result("no-kernel"));
    assert_eq!(kind, "failed", "{m}");
    assert!(m.starts_with("booting: machine `c`:"), "{m}");
    let (kind, m) = message(ran.result("qemu-missing"));
    assert_eq!(kind, "error", "{m}");
    assert_eq!(m, "booting: qemu-system-x86_64: not found");
    let causes: Vec<String> = ["exits-wrong", "qemu-killed", "no-kernel", "qemu-missing"]
        .iter()
        .map(|t| cause(ran.result(t)))
        .collect();
    assert_eq!(
        causes,
        ["exit-status", "qemu-died", "boot:bootloader", "host"]
    );
    // Every machine went down with its test, whatever happened.
    for m in ["a", "b", "c", "d"] {
        assert_eq!(ran.calls(m).last().map(String::as_str), Some("shutdown"));
    }
    assert!(!ran.journal.iter().any(|l| l.ends_with("dropped while up")));
}

#[tokio::test]
async fn a_retry_boots_a_fresh_machine_and_passing_it_is_flaky() {
    let platform = FakePlatform::new().reply(
        "node",
        "check",
        vec![Reply::exit(1, ""), Reply::exit(0, "")],
    );
    let o = Opts {
        retries: 2,
        ..Opts::default()
    };
    let ran = run_fake(&runs("t", "node", "check"), platform, o).await;
    let r = ran.result("t");
    assert!(r.flaky && r.outcome == Outcome::Passed, "{r:?}");
    assert_eq!(r.reruns.len(), 1);
    let lifecycle: Vec<String> = ran
        .calls("node")
        .into_iter()
        .filter(|c| !c.starts_with("exec "))
        .collect();
    assert_eq!(
        lifecycle,
        ["create", "boot", "shutdown", "create", "boot", "shutdown"]
    );
}

#[tokio::test]
async fn a_template_that_fails_fails_every_test_waiting_on_it_with_its_cause() {
    let tests = [runs("one", "node", "true"), runs("two", "node", "true")].concat();
    let platform = FakePlatform::new()
        .boots(
            "node",
            vec![Boot::Fails(BootFailure::PanicLoop {
                panics: 3,
                line: "Kernel panic - not syncing: VFS: Unable to mount root fs".into(),
            })],
        )
        .console_line(
            "node",
            "Kernel panic - not syncing: VFS: Unable to mount root fs",
        );
    let o = Opts {
        snapshots: true,
        ..Opts::default()
    };
    let ran = run_fake(&tests, platform, o).await;
    for t in ["one", "two"] {
        let (kind, m) = message(ran.result(t));
        assert_eq!(kind, "failed", "{t}: {m}");
        assert!(
            m.contains("starts from the boot-once snapshot of its image and config, and making it failed: machine `node`: boot failed at the kernel stage: kernel panic on 3 starts"),
            "{t}: {m}"
        );
    }
    assert_eq!(cause(ran.result("one")), "boot:kernel");
    // One boot in all: the template's. Neither test booted a machine of its own.
    assert_eq!(ran.calls("node"), ["create", "boot", "shutdown"]);
    // The template's console is in the run folder.
    let snaps: Vec<_> = std::fs::read_dir(ran.dir.path().join("run/snapshots"))
        .unwrap()
        .collect();
    assert_eq!(snaps.len(), 1);
    let console = snaps[0].as_ref().unwrap().path().join("console.log");
    let text = std::fs::read_to_string(&console).unwrap();
    assert!(text.contains("Unable to mount root fs"), "{text}");
}

#[tokio::test]
async fn a_panic_in_a_step_is_its_own_tests_harness_error() {
    let tests = [runs("calm", "a", "true"), runs("panics", "b", "boom")].concat();
    let platform = FakePlatform::new().reply("b", "boom", vec![Reply::Panic]);
    let ran = run_fake(&tests, platform, Opts::default()).await;
    assert_eq!(ran.result("calm").outcome, Outcome::Passed);
    let (kind, m) = message(ran.result("panics"));
    assert_eq!(kind, "error");
    assert_eq!(
        m,
        "harness error: the test's task panicked: the fake harness panicked running `boom`"
    );
}

#[tokio::test]
async fn an_interrupt_in_the_middle_of_a_step_ends_the_test_and_its_machine() {
    let platform = FakePlatform::new().reply("node", "sleep", vec![Reply::Hang]);
    let o = Opts {
        interrupt_at: Some("node: exec sleep 600"),
        ..Opts::default()
    };
    let ran = run_fake(&runs("t", "node", "sleep 600"), platform, o).await;
    assert_eq!(ran.end, RunEnd::Interrupted("SIGINT".into()));
    let (kind, m) = message(ran.result("t"));
    assert_eq!((kind, m), ("error", "interrupted by SIGINT while running"));
    assert_eq!(cause(ran.result("t")), "interrupted");
    // The test's task was dropped mid-step, and its machine with it (a QEMU machine's drop
    // kills its process group).
    assert_eq!(ran.calls("node").last().unwrap(), "dropped while up");
    // Its steps.log, written as it went, says where it was.
    let log = std::fs::read_to_string(ran.dir.path().join("t/steps.log")).unwrap();
    assert!(log.contains("node up: SSH banner"), "{log}");
    assert!(log.ends_with("--- step 1 (run at s.yaml:6:9)\n"), "{log}");
}

#[tokio::test]
async fn keep_on_failure_keeps_the_last_attempts_machine_only() {
    let tests = [
        runs("fails", "bad", "false"),
        runs("passes", "good", "true"),
    ]
    .concat();
    let platform = FakePlatform::new().reply("bad", "false", vec![Reply::exit(1, "")]);
    let o = Opts {
        retries: 1,
        keep_on_failure: true,
        ..Opts::default()
    };
    let ran = run_fake(&tests, platform, o).await;
    let r = ran.result("fails");
    assert!(matches!(r.outcome, Outcome::Failed { .. }) && r.reruns.len() == 1);
    assert!(r.machines[0].ssh.is_some(), "the report says how to log in");
    assert!(r.log.contains("kept bad up: "), "{}", r.log);
    // The first attempt's machine went down before the retry; the retry's stays up.
    let downs = ran.calls("bad").iter().filter(|c| *c == "shutdown").count();
    assert_eq!(downs, 1);
    let kept = ran.shared.kept.lock().unwrap();
    let names: Vec<&str> = kept.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["bad"]);
    assert!(kept[0].is_running());
    assert_eq!(ran.calls("good").last().unwrap(), "shutdown");
}
