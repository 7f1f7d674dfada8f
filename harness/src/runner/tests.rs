//! The runner's own logic with a scripted test in place of machines: who gets which result,
//! retries and flaky, stops and cancels, a panicking test.

use super::*;
use crate::report::read::tests::test as passed_as;
use crate::runner::stop::Stop;
use std::sync::atomic::{AtomicU32, Ordering};

mod lifecycle;

/// What a scripted attempt does.
#[derive(Clone, Copy)]
enum Script {
    Pass,
    Fail,
    Panic,
    /// Never ends on its own.
    Hang,
    /// Fails its first attempt, passes the next.
    FailOnce,
}

fn jobs(names: &[&str], dir: &std::path::Path) -> Vec<Job> {
    let tests: String = names
        .iter()
        .map(|n| format!("  - name: {n}\n    machines: {{ node: {{ image: stable }} }}\n    steps:\n      - run: {{ on: node, cmd: \"true\" }}\n"))
        .collect();
    let ctx = crate::suite::LoadContext {
        channels: vec!["stable".into()],
    };
    let suite = crate::suite::load_str(
        std::path::Path::new("s.yaml"),
        &format!("suite: s\ntests:\n{tests}"),
        &ctx,
    )
    .expect("suite");
    suite
        .tests
        .into_iter()
        .map(|t| Job {
            dir: dir.join(&t.name),
            test: t,
            images: Default::default(),
            ignition: Default::default(),
            releases: Default::default(),
            attempt: 0,
            excerpt: String::new(),
            skip: None,
            seeds: Default::default(),
        })
        .collect()
}

fn shared(jobs: usize, retries: u32, stop: Option<Stop>) -> Arc<Shared> {
    Arc::new(base_shared(jobs, retries, stop))
}

/// A run's shared state for unit tests: `jobs` at once, `retries`, QEMU machines (which the
/// scripted executor never makes; `lifecycle.rs` puts a fake in).
fn base_shared(jobs: usize, retries: u32, stop: Option<Stop>) -> Shared {
    let mut info = crate::report::read::tests::info("r");
    info.retries = retries;
    Shared {
        info,
        manifest: Manifest {
            channels: Default::default(),
        },
        key: PathBuf::new(),
        sock_dir: PathBuf::new(),
        keep_on_failure: false,
        keep_all: false,
        budget: schedule::Budget::new(schedule::Jobs::Fixed(jobs), 2, 24_000),
        manifest_path: PathBuf::new(),
        kept: Mutex::new(Vec::new()),
        platform: Arc::new(crate::machine::Qemu),
        snapshots: None,
        stop,
    }
}

/// An executor that plays each test's script; counts the attempts it started.
fn scripted(scripts: &[(&str, Script)], started: Arc<AtomicU32>) -> Exec {
    let scripts: BTreeMap<String, Script> =
        scripts.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    Arc::new(move |job: Job, _shared: Arc<Shared>, _tell| {
        started.fetch_add(1, Ordering::SeqCst);
        let script = scripts[&job.test.name];
        Box::pin(async move {
            let failed = Outcome::Failed {
                message: "exit status 1".into(),
                detail: String::new(),
                cause: None,
            };
            let outcome = match (script, job.attempt) {
                (Script::Pass, _) | (Script::FailOnce, 1..) => Outcome::Passed,
                (Script::Fail, _) | (Script::FailOnce, 0) => failed,
                (Script::Panic, _) => panic!("boom in {}", job.test.name),
                (Script::Hang, _) => std::future::pending().await,
            };
            let mut r = passed_as(&job.test.name, outcome);
            r.artifacts = job.dir.clone();
            r
        })
    })
}

async fn play(
    names: &[(&str, Script)],
    jobs_at_once: usize,
    retries: u32,
    stop: Option<Stop>,
) -> (Vec<TestResult>, RunEnd, u32) {
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    play_with(names, jobs_at_once, retries, stop, rx).await
}

async fn play_with(
    names: &[(&str, Script)],
    jobs_at_once: usize,
    retries: u32,
    stop: Option<Stop>,
    interrupts: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> (Vec<TestResult>, RunEnd, u32) {
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    let started = Arc::new(AtomicU32::new(0));
    let mut sinks = FanOut(Vec::new());
    let run = run_with(
        jobs(&list, dir.path()),
        shared(jobs_at_once, retries, stop),
        &mut sinks,
        scripted(names, started.clone()),
        Signals::Channel(interrupts),
    );
    // A guard against a hang, not a speed limit: a panic's backtrace alone can take seconds
    // to print on a loaded host.
    let (results, end) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("no harness error");
    (results, end, started.load(Ordering::SeqCst))
}

fn outcome<'a>(results: &'a [TestResult], name: &str) -> Vec<&'a Outcome> {
    results
        .iter()
        .filter(|r| r.name == name)
        .map(|r| &r.outcome)
        .collect()
}

/// `play_with`, and the signal `name` 200 ms into the run.
async fn play_then_signal(
    names: &[(&str, Script)],
    jobs_at_once: usize,
    stop: Option<Stop>,
    name: &str,
) -> (Vec<TestResult>, RunEnd, u32) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let play = play_with(names, jobs_at_once, 0, stop, rx);
    let interrupt = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(name.to_string()).unwrap();
    };
    tokio::join!(play, interrupt).0
}

/// The message of `name`'s one result, a harness error.
fn error_message(results: &[TestResult], name: &str) -> String {
    match outcome(results, name).as_slice() {
        [Outcome::Error { message, .. }] => message.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn a_panicking_test_is_blamed_on_itself_and_the_run_goes_on() {
    use Script::*;
    // "a" sorts first and is still running when "b" panics.
    let (results, end, _) = play(&[("a", Hang), ("b", Panic), ("c", Pass)], 3, 0, {
        // End the run once b and c are in: a never ends on its own.
        Some(Stop {
            when: Arc::new(|rs: &[TestResult]| (rs.len() == 2).then(|| "b and c done".into())),
            cancel_running: true,
        })
    })
    .await;
    assert_eq!(results.len(), 2, "{results:?}");
    match outcome(&results, "b").as_slice() {
        [Outcome::Error { message, .. }] => {
            assert_eq!(
                message,
                "harness error: the test's task panicked: boom in b"
            )
        }
        other => panic!("b: {other:?}"),
    }
    assert_eq!(outcome(&results, "c"), [&Outcome::Passed]);
    assert!(outcome(&results, "a").is_empty(), "a was still running");
    match end {
        RunEnd::Stopped(s) => assert_eq!(s.cancelled, ["s::a"]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_retry_that_passes_is_one_flaky_result_and_failures_are_retried_up_to_the_limit() {
    use Script::*;
    let (results, end, started) =
        play(&[("a", FailOnce), ("b", Fail), ("c", Pass)], 2, 2, None).await;
    assert_eq!(end, RunEnd::Completed);
    assert_eq!(results.len(), 3, "one result per test");
    let a = results.iter().find(|r| r.name == "a").unwrap();
    assert!(a.flaky && a.outcome == Outcome::Passed && a.reruns.len() == 1);
    let b = results.iter().find(|r| r.name == "b").unwrap();
    assert!(!b.flaky && matches!(b.outcome, Outcome::Failed { .. }));
    assert_eq!(b.reruns.len(), 2, "two retries of a test that always fails");
    assert_eq!(started, 2 + 3 + 1);
}

#[tokio::test]
async fn fail_fast_starts_nothing_after_a_failure_and_lets_the_running_finish() {
    use Script::*;
    let (results, end, started) = play(
        &[("a", Fail), ("b", Pass), ("c", Pass), ("d", Pass)],
        1,
        0,
        Some(Stop::fail_fast()),
    )
    .await;
    assert_eq!(started, 1);
    assert_eq!(results.len(), 1);
    assert_eq!(
        end,
        RunEnd::Stopped(stop::Stopped {
            reason: "--fail-fast: s::a failed".into(),
            not_run: 3,
            cancelled: vec![],
        })
    );
}

#[tokio::test]
async fn an_interrupt_ends_the_running_as_interrupted_and_the_waiting_as_not_run() {
    use Script::*;
    let (results, end, started) =
        play_then_signal(&[("a", Pass), ("b", Hang), ("c", Pass)], 1, None, "SIGINT").await;
    assert_eq!(end, RunEnd::Interrupted("SIGINT".into()));
    assert_eq!(started, 2, "c never started");
    assert_eq!(outcome(&results, "a"), [&Outcome::Passed]);
    let message = |name| error_message(&results, name);
    assert_eq!(message("b"), "interrupted by SIGINT while running");
    assert_eq!(message("c"), "not run: the run was interrupted by SIGINT");
}

#[tokio::test]
async fn a_signal_after_a_stop_rule_ends_the_run_interrupted() {
    use Script::*;
    // a fails (fail-fast stops the run, letting b run on); then SIGTERM comes.
    let tests = [("a", Fail), ("b", Hang), ("c", Pass)];
    let (results, end, started) =
        play_then_signal(&tests, 2, Some(Stop::fail_fast()), "SIGTERM").await;
    assert_eq!(end, RunEnd::Interrupted("SIGTERM".into()));
    assert_eq!(started, 2, "c never started");
    let message = |name| error_message(&results, name);
    assert_eq!(message("b"), "interrupted by SIGTERM while running");
    assert_eq!(message("c"), "not run: the run was interrupted by SIGTERM");
    // The order the runner keeps: the graver end wins.
    let stopped = RunEnd::Stopped(stop::Stopped {
        reason: "r".into(),
        not_run: 9,
        cancelled: vec!["z".into()],
    });
    assert!(RunEnd::Completed < stopped && stopped < RunEnd::Interrupted(String::new()));
}
