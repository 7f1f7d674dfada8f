//! Integration tests that boot the real reference image under QEMU (TCG here).
//! They build the stable image first if the cache lacks it. One VM test at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn aviary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aviary"));
    c.current_dir(repo());
    c
}

/// The stable base image, built if needed, and its sha256.
fn base_image() -> (PathBuf, String) {
    let ws = aviary::images::Workspace::at(repo());
    let mut images = aviary::images::Images::open(ws).unwrap();
    let img = images
        .resolve(&aviary::suite::ImageRef::Channel("stable".into()))
        .unwrap();
    let sha = aviary::images::cache::sha256_file(&img.disk).unwrap();
    (img.disk, sha)
}

/// Processes whose command line mentions `needle` (our QEMUs name their overlay by run folder).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("cargo") {
                found.push(cmd);
            }
        }
    }
    found
}

fn run_dir(reports: &Path) -> PathBuf {
    std::fs::read_dir(reports)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a run folder")
}

fn xsd_valid(junit: &Path) {
    let xsd = repo().join("fixtures/schemas/jenkins-junit-10.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(junit)
        .output()
        .expect("xmllint (libxml2-utils) is required");
    assert!(
        out.status.success(),
        "{} does not validate: {}",
        junit.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `aviary run ARGS… --reports <fresh folder>`, optionally under another manifest. Every
/// run's junit.xml must validate, and no process of the run may outlive it.
struct Run {
    code: Option<i32>,
    stderr: String,
    dir: PathBuf,
    /// Keeps the reports folder until the test is done with it.
    _reports: tempfile::TempDir,
}

fn run_suite(args: &[&str], manifest: Option<&str>) -> Run {
    let reports = tempfile::tempdir().unwrap();
    let mut c = aviary();
    c.arg("run").args(args).arg("--reports").arg(reports.path());
    if let Some(m) = manifest {
        c.env("AVIARY_MANIFEST", m);
    }
    let out = c.output().unwrap();
    let dir = run_dir(reports.path());
    xsd_valid(&dir.join("junit.xml"));
    let left = processes_mentioning(&reports.path().to_string_lossy());
    assert!(left.is_empty(), "left behind: {left:?}");
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
        _reports: reports,
    }
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn provisioning_suite_passes_on_stable_and_leaves_nothing_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (disk, before) = base_image();
    let r = run_suite(&["suites/provisioning.yaml"], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let dir = &r.dir;
    let s = summary(dir);
    assert_eq!(s["counts"]["passed"], 10, "{s}");
    assert_eq!(s["counts"]["failed"], 0, "{s}");
    let accel = s["run"]["accel"]["accel"].as_str().unwrap_or("");
    assert!(["tcg", "kvm"].contains(&accel), "{s}");
    assert!(
        !s["run"]["accel"]["reason"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{s}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"accelerator\""), "{junit}");
    assert!(junit.contains("name=\"image.stable.digest\""), "{junit}");
    for test in ["hostname-from-ignition", "ignition-runs-exactly-once"] {
        let t = dir.join("provisioning").join(test).join("node");
        for f in ["console.log", "journal.txt", "qemu-cmdline.txt"] {
            assert!(t.join(f).is_file(), "{} missing", t.join(f).display());
        }
        let cmdline = std::fs::read_to_string(t.join("qemu-cmdline.txt")).unwrap();
        assert!(cmdline.contains("restrict=on"), "{cmdline}");
    }
    let copied = dir.join("provisioning/core-user-key-logs-in/os-release.txt");
    let text = std::fs::read_to_string(&copied).unwrap();
    assert!(text.contains("ID=aviary"), "{text}");
    assert_eq!(aviary::images::cache::sha256_file(&disk).unwrap(), before);
}

#[test]
fn a_failed_expectation_says_expected_and_seen() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    base_image();
    let r = run_suite(
        &[
            "fixtures/suites/failing.yaml",
            "--retries",
            "1",
            "--seed",
            "77",
        ],
        None,
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let junit = std::fs::read_to_string(r.dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("stdout does not match /^not-this-host$/"),
        "{junit}"
    );
    assert!(junit.contains("canary-2"), "seen value missing: {junit}");
    assert!(
        junit.contains("fixtures/suites/failing.yaml:11:"),
        "{junit}"
    );
    // Retried once, failed both times: a rerunFailure, and the retry's own folder.
    assert!(junit.contains("<rerunFailure"), "{junit}");
    let test_dir = r.dir.join("must-fail/wrong-hostname");
    assert!(test_dir.join("retry_1/node/console.log").is_file());
    assert!(r.stderr.contains("TRY 2/2"), "{}", r.stderr);
    // The failure leaves a repro bundle, and `aviary reproduce` reruns exactly that test.
    let bundle = test_dir.join("retry_1/repro");
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("bundle.json")).unwrap())
            .unwrap();
    assert_eq!(b["test"], "must-fail::wrong-hostname", "{b}");
    assert_eq!(b["seed"], 77, "{b}");
    assert_eq!(b["machines"]["node"]["image"], "stable", "{b}");
    assert_eq!(b["machines"]["node"]["sha256"].as_str().unwrap().len(), 64);
    let excerpt = std::fs::read_to_string(bundle.join("test.yaml")).unwrap();
    assert!(
        excerpt.starts_with("  - name: wrong-hostname\n"),
        "{excerpt}"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("node.ign")).unwrap(),
        std::fs::read_to_string(test_dir.join("retry_1/node/config.ign")).unwrap(),
        "the bundle carries the machine's Ignition config"
    );
    assert!(
        std::fs::read_to_string(bundle.join("node.qemu-cmdline.txt"))
            .unwrap()
            .contains("restrict=on")
    );
    let again = tempfile::tempdir().unwrap();
    let out = aviary()
        .arg("reproduce")
        .arg(&bundle)
        .arg("--reports")
        .arg(again.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reproducing must-fail::wrong-hostname (seed 77"),
        "{stderr}"
    );
    let rerun = run_dir(again.path());
    let s = summary(&rerun);
    assert_eq!(s["run"]["seed"], 77, "{s}");
    assert_eq!(s["tests"].as_array().unwrap().len(), 1, "{s}");
    assert!(
        s["tests"][0]["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("stdout does not match /^not-this-host$/"),
        "{s}"
    );
    xsd_valid(&rerun.join("junit.xml"));
}

#[test]
fn ctrl_c_during_boot_leaves_no_qemu_and_a_valid_report() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (disk, before) = base_image();
    let reports = tempfile::tempdir().unwrap();
    let mut child = aviary()
        .args([
            "run",
            "suites/provisioning.yaml",
            "--filter",
            "hostname-from-ignition",
            "--reports",
        ])
        .arg(reports.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until QEMU is booting: its console log has output.
    let deadline = Instant::now() + Duration::from_secs(120);
    let needle = reports.path().to_string_lossy().into_owned();
    loop {
        let booting = processes_mentioning(&needle)
            .iter()
            .any(|c| c.starts_with("qemu-system"));
        let console_has_output = std::fs::read_dir(reports.path())
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok()))
            .map(|e| {
                e.path()
                    .join("provisioning/hostname-from-ignition/node/console.log")
            })
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.len() > 0);
        if booting && console_has_output {
            break;
        }
        assert!(Instant::now() < deadline, "QEMU never started booting");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        processes_mentioning(&needle).is_empty(),
        "left behind: {:?}",
        processes_mentioning(&needle)
    );
    let dir = run_dir(reports.path());
    xsd_valid(&dir.join("junit.xml"));
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("interrupted by SIGINT"), "{junit}");
    assert_eq!(aviary::images::cache::sha256_file(&disk).unwrap(), before);
}

/// Builds (or finds in the cache) a channel's image under the given manifest.
fn build_images(manifest: Option<&str>, channels: &[&str]) {
    let mut c = aviary();
    c.args(["images", "build"]).args(channels);
    if let Some(m) = manifest {
        c.env("AVIARY_MANIFEST", m);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ab_update_boots_the_new_slot_and_a_kernel_panic_on_uefi_falls_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    build_images(None, &["stable", "beta"]);
    let (disk, before) = base_image();
    let r = run_suite(
        &[
            "suites/upgrade-rollback.yaml",
            "--filter",
            "{stable-to-beta,stable-to-beta-kernel-panic-falls-back-uefi}",
        ],
        None,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let dir = &r.dir;
    let s = summary(dir);
    assert_eq!(s["counts"]["passed"], 2, "{s}");
    // The update went through the update server: the guest asked and downloaded.
    let log = |t: &str| {
        std::fs::read_to_string(dir.join("upgrade-rollback").join(t).join("steps.log")).unwrap()
    };
    let ok = log("stable-to-beta");
    assert!(
        ok.contains("200 /v1/update") && ok.contains("200 /payloads/beta-1001.0.0.raucb"),
        "{ok}"
    );
    assert!(ok.contains("installed beta 1001.0.0 into slot B"), "{ok}");
    // The report records the update as the gate's evidence: the release, its digest, the
    // outcome and the agent's timings.
    let beta = s["run"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "beta")
        .unwrap()["sha256"]
        .clone();
    let t = s["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "stable-to-beta")
        .unwrap();
    let u = &t["updates"][0];
    assert_eq!(u["channel"], "beta", "{t}");
    assert_eq!(u["sha256"], beta, "{t}");
    assert_eq!(u["outcome"], "installed", "{t}");
    assert!(u["write_s"].as_f64().is_some_and(|w| w > 0.0), "{t}");
    // The panic fallback, on UEFI firmware, needed a second QEMU start (the guest reset), and
    // GRUB chose A.
    let panic = log("stable-to-beta-kernel-panic-falls-back-uefi");
    assert!(panic.contains("1 guest reset(s) during boot"), "{panic}");
    let console = std::fs::read_to_string(
        dir.join("upgrade-rollback/stable-to-beta-kernel-panic-falls-back-uefi/node/console.log"),
    )
    .unwrap();
    assert!(
        console.contains("BdsDxe: starting Boot"),
        "not booted by OVMF"
    );
    let qemu = std::fs::read_to_string(dir.join(
        "upgrade-rollback/stable-to-beta-kernel-panic-falls-back-uefi/node/qemu-cmdline.txt",
    ))
    .unwrap();
    assert!(qemu.contains("if=pflash"), "{qemu}");
    let b = console
        .find("aviary: booting slot B")
        .expect("slot B tried");
    let p = console[b..].find("Kernel panic").expect("B panicked") + b;
    assert!(
        console[p..].contains("aviary: booting slot A"),
        "no fallback"
    );
    assert_eq!(aviary::images::cache::sha256_file(&disk).unwrap(), before);
}

/// An image provisioned by cloud-init (its profile says so) gets a NoCloud seed disk and no
/// Ignition config: cloud-init applies the test's user-data, the hostname and the run's key.
#[test]
fn a_cloud_init_image_is_provisioned_from_its_nocloud_seed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = "fixtures/cloud-init-candidate/channels.yaml";
    build_images(Some(m), &["beta"]);
    let r = run_suite(&["fixtures/suites/cloud-init.yaml"], Some(m));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = summary(&r.dir);
    assert_eq!(s["counts"]["passed"], 1, "{s}");
    let node = r
        .dir
        .join("cloud-init/user-data-and-meta-data-from-a-nocloud-seed/node");
    let qemu = std::fs::read_to_string(node.join("qemu-cmdline.txt")).unwrap();
    assert!(qemu.contains("id=seed,format=raw,readonly=on"), "{qemu}");
    assert!(!qemu.contains("-fw_cfg"), "{qemu}");
    assert!(!node.join("config.ign").exists());
    let meta = std::fs::read_to_string(node.join("meta-data")).unwrap();
    assert!(meta.contains("local-hostname: \"node\""), "{meta}");
}

/// `aviary gate --from beta --to stable --release 1001.0.0` with a policy requiring
/// `evidence::probe`, on one run folder: its exit code and stdout.
fn gate_probe(run: &Path, policy: &Path) -> (Option<i32>, String) {
    let verdict = run.join("verdict.json");
    let out = aviary()
        .args([
            "gate",
            "--from",
            "beta",
            "--to",
            "stable",
            "--release",
            "1001.0.0",
        ])
        .arg("--policy")
        .arg(policy)
        .arg("--verdict")
        .arg(&verdict)
        .arg(run)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_gate_counts_a_pass_only_for_the_release_it_booted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    build_images(None, &["stable", "beta"]);
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy.path(),
        "transitions:\n  - from: beta\n    to: stable\n    required_tests: [evidence::probe]\n",
    )
    .unwrap();
    // As written: the required test boots stable while `anchor` boots beta in the same run.
    let mixed = run_suite(&["fixtures/suites/evidence.yaml"], None);
    assert_eq!(mixed.code, Some(0), "{}", mixed.stderr);
    let (code, out) = gate_probe(&mixed.dir, policy.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("verdict: HOLD"), "{out}");
    assert!(
        out.contains("evidence::probe passed only without exercising beta 1001.0.0")
            && out.contains("booted stable 1000.0.0"),
        "{out}"
    );
    // The same test booted on the candidate: promoted.
    let on_beta = run_suite(
        &[
            "fixtures/suites/evidence.yaml",
            "--filter",
            "probe",
            "--image",
            "node=beta",
        ],
        None,
    );
    assert_eq!(on_beta.code, Some(0), "{}", on_beta.stderr);
    let (code, out) = gate_probe(&on_beta.dir, policy.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verdict: PROMOTE"), "{out}");
    let s = summary(&on_beta.dir);
    assert_eq!(s["run"]["evidence"], 2, "{s}");
    assert_eq!(s["tests"][0]["machines"][0]["image"], "beta", "{s}");
    // Every cold boot records where its time went.
    let phases = &s["tests"][0]["machines"][0]["boots"][0]["phases"];
    let (kernel, sshd) = (phases["kernel_s"].as_f64(), phases["sshd_s"].as_f64());
    assert!(
        matches!((kernel, sshd), (Some(k), Some(d)) if k > 0.0 && d > k),
        "{phases}"
    );
}

/// The issue's own example: a beta whose sshd no longer reads the provisioned keys. The
/// boot-once template fails at once, naming the stage and what the candidate's disk holds; every
/// test waiting on it fails with that cause instead of its own timeout; the template's logs stay.
#[test]
fn a_candidate_whose_sshd_ignores_the_keys_fails_every_test_at_once_with_the_cause() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = "fixtures/sshd-ignores-keys-candidate/channels.yaml";
    build_images(Some(manifest), &["beta"]);
    let r = run_suite(
        &[
            "suites/provisioning.yaml",
            "--image",
            "beta",
            "--filter",
            "{core-user-key-logs-in,os-release-matches-manifest,boots-slot-a}",
        ],
        Some(manifest),
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let s = summary(&r.dir);
    assert_eq!(s["counts"]["failed"], 3, "{s}");
    for t in s["tests"].as_array().unwrap() {
        let m = t["outcome"]["message"].as_str().unwrap_or("");
        assert!(
            m.contains("boot failed at the login stage: sshd answered but refused the run's key"),
            "{m}"
        );
        let detail = t["outcome"]["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("holds the run's key in /home/core/.ssh/authorized_keys.d/ignition"),
            "{detail}"
        );
        let log = t["log"].as_str().unwrap_or("");
        assert!(!log.is_empty(), "steps.log says why: {t}");
    }
    // The template that failed kept its console in the run folder.
    let snapshots: Vec<_> = std::fs::read_dir(r.dir.join("snapshots"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(snapshots.len(), 1, "one template for the three tests");
    let console = std::fs::read_to_string(snapshots[0].path().join("console.log")).unwrap();
    assert!(console.contains("login:"), "{console}");
}

#[test]
fn a_candidate_that_is_never_marked_good_fails_the_upgrade_suite() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = "fixtures/broken-candidate/channels.yaml";
    build_images(Some(manifest), &["stable", "beta"]);
    let r = run_suite(
        &["suites/upgrade-rollback.yaml", "--filter", "stable-to-beta"],
        Some(manifest),
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let junit = std::fs::read_to_string(r.dir.join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"stable-to-beta\""), "{junit}");
    assert!(junit.contains("mark-good.service"), "{junit}");
    assert!(
        junit.contains("variant health-always-fails"),
        "the failure should quote the failed health check: {junit}"
    );
}

#[test]
fn cluster_members_reach_each_other_on_their_private_segment_and_leave_nothing_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    base_image();
    let r = run_suite(
        &[
            "suites/cluster.yaml",
            "--filter",
            "a-rebooted-member-rejoins",
        ],
        None,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let t = r.dir.join("cluster/a-rebooted-member-rejoins");
    let log = std::fs::read_to_string(t.join("steps.log")).unwrap();
    assert_eq!(log.matches("node-b sees 10.77.0.11").count(), 2, "{log}");
    // Both machines got a second NIC on the segment's unix socket, and nothing else.
    for m in ["node-a", "node-b"] {
        let cmd = std::fs::read_to_string(t.join(m).join("qemu-cmdline.txt")).unwrap();
        assert!(cmd.contains("dgram,id=net1,local.type=unix"), "{cmd}");
        assert!(!cmd.contains("tap") && !cmd.contains("bridge"), "{cmd}");
    }
    // The segment went with the test: no socket folder, no QEMU.
    let seg = log
        .lines()
        .find_map(|l| l.strip_prefix("cluster segment for node-a, node-b: "))
        .expect("segment line");
    assert!(!Path::new(seg).join("switch.sock").exists(), "{seg}");
}

#[test]
fn cluster_members_restored_from_snapshots_join_the_test_segment() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    base_image();
    let r = run_suite(&["fixtures/suites/cluster-snapshot.yaml"], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = summary(&r.dir);
    for t in s["tests"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let dir = r.dir.join("cluster-snapshot").join(name);
        let log = std::fs::read_to_string(dir.join("steps.log")).unwrap();
        let seg = log
            .lines()
            .find_map(|l| l.strip_prefix("cluster segment for node-a, node-b: "))
            .expect("segment line");
        for (i, m) in ["node-a", "node-b"].iter().enumerate() {
            assert!(
                log.contains(&format!("{m}: starts from snapshot ")),
                "{log}"
            );
            assert_eq!(
                t["machines"][i]["boots"][0]["from_snapshot"], true,
                "{name}: {t}"
            );
            // The restored member's NIC is on this test's segment, not on its template's port.
            let cmd = std::fs::read_to_string(dir.join(m).join("qemu-cmdline.txt")).unwrap();
            assert!(
                cmd.contains(&format!("local.path={seg}/{m}.sock,")),
                "{cmd}"
            );
            assert!(!cmd.contains("tpl-"), "{cmd}");
        }
    }
    // Each template booted alone, its cluster NIC on a socket nothing listens to.
    let templates: Vec<_> = std::fs::read_dir(r.dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(templates.len(), 2, "{templates:?}");
    for t in &templates {
        let cmd = std::fs::read_to_string(t.join("qemu-cmdline.txt")).unwrap();
        assert!(cmd.contains("-none.sock"), "{cmd}");
        assert!(!cmd.contains("switch.sock"), "{cmd}");
    }
}

#[test]
fn a_candidate_without_vxlan_fails_the_overlay_but_not_host_gw_routing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = "fixtures/no-vxlan-candidate/channels.yaml";
    build_images(Some(manifest), &["beta"]);
    let r = run_suite(
        &[
            "suites/kubernetes-networking.yaml",
            "--filter",
            "pods-over-*",
            "--image",
            "beta",
        ],
        Some(manifest),
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let s = summary(&r.dir);
    let status = |name: &str| {
        s["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no test {name} in {s}"))["outcome"]["status"]
            .clone()
    };
    assert_eq!(status("pods-over-host-gw-routes"), "passed", "{s}");
    assert_eq!(status("pods-over-a-vxlan-overlay"), "failed", "{s}");
    let junit = std::fs::read_to_string(r.dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("this kernel cannot make a VXLAN device"),
        "the overlay failure should say why: {junit}"
    );
}

#[test]
fn machines_started_from_a_snapshot_are_machines_of_their_own() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (disk, before) = base_image();
    let r = run_suite(&["fixtures/suites/snapshot-identity.yaml"], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = summary(&r.dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut ids = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for t in s["tests"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let boots = t["machines"][0]["boots"].as_array().unwrap();
        assert_eq!(boots[0]["from_snapshot"], true, "{name}: {t}");
        let first = t["machines"][0]["first_command_s"].as_f64().unwrap();
        let id = std::fs::read_to_string(r.dir.join("snapshot-identity").join(name).join("id.txt"))
            .unwrap();
        let l: Vec<&str> = id.lines().collect();
        assert_eq!(l.len(), 5, "{name}: {id}");
        assert_eq!(l[0].len(), 32, "{name}: machine-id {id}");
        assert!(
            ids.insert(l[0].to_string()),
            "{name}: machine-id shared: {id}"
        );
        assert!(
            keys.insert(l[1].to_string()),
            "{name}: host key shared: {id}"
        );
        // The clock was set from the host, not left at the snapshot's moment.
        let guest_now: i64 = l[2].parse().unwrap();
        assert!(
            (guest_now - now).abs() < 600,
            "{name}: guest clock {guest_now}, host {now}"
        );
        // Only the new host key: the template's rsa/ecdsa keys did not survive.
        assert_eq!(l[3], "1", "{name}: {id}");
        assert_eq!(l[4], "node", "{name}: {id}");
        let log =
            std::fs::read_to_string(r.dir.join("snapshot-identity").join(name).join("steps.log"))
                .unwrap();
        assert!(log.contains("node: starts from snapshot "), "{log}");
        if name == "clone-3-reboots" {
            assert_eq!(boots.len(), 2, "{t}");
            assert!(
                boots[1].get("from_snapshot").is_none(),
                "a reboot is cold: {t}"
            );
            let after = std::fs::read_to_string(
                r.dir
                    .join("snapshot-identity")
                    .join(name)
                    .join("id-after-reboot.txt"),
            )
            .unwrap();
            let a: Vec<&str> = after.lines().collect();
            assert_eq!(
                (a[0], a[1]),
                (l[0], l[1]),
                "identity kept across the reboot"
            );
        }
        assert!(first > 0.0, "{t}");
    }
    // The template's own boot is in the run folder, and the base image is unchanged.
    let templates: Vec<_> = std::fs::read_dir(r.dir.join("snapshots"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        templates.len(),
        1,
        "one template for three identical machines"
    );
    let console = std::fs::read_to_string(templates[0].path().join("console.log")).unwrap();
    assert!(console.contains("aviary: booting slot A"), "{console}");
    assert_eq!(aviary::images::cache::sha256_file(&disk).unwrap(), before);
}

#[test]
fn a_shared_setup_runs_once_and_its_clones_are_machines_of_their_own() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    build_images(None, &["stable", "beta"]);
    let (disk, before) = base_image();
    let r = run_suite(&["fixtures/suites/setup-snapshot.yaml", "-j", "auto"], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = summary(&r.dir);
    assert_eq!(s["counts"]["passed"], 2, "{s}");
    let read = |t: &str, f: &str| {
        std::fs::read_to_string(r.dir.join("setup-snapshot").join(t).join(f)).unwrap()
    };
    let mut ids = std::collections::HashSet::new();
    let mut markers = std::collections::HashSet::new();
    for t in ["clone-1", "clone-2"] {
        let log = read(t, "steps.log");
        // Restored from the state after the setup, whose log (the update's) is in the test's.
        assert!(log.contains("saved after the setup (2 step(s)"), "{log}");
        assert!(log.contains("| --- setup step 2 (update"), "{log}");
        assert!(log.contains("installed beta 1001.0.0 into slot B"), "{log}");
        assert!(
            !log.contains("\n--- setup step"),
            "ran its setup itself: {log}"
        );
        assert!(log.contains("\n--- step 3 (run"), "{log}");
        let a: Vec<String> = read(t, "id.txt").lines().map(String::from).collect();
        let b: Vec<String> = read(t, "id-slot-b.txt").lines().map(String::from).collect();
        assert_eq!(a.len(), 3, "{t}: {a:?}");
        assert_eq!(a[0].len(), 32, "{t}: {a:?}");
        // The new slot boots with the clone's own identity, not the template's.
        assert_eq!(a, b, "{t}: identity in slot A, then in slot B");
        assert!(ids.insert(a[0].clone()), "{t}: machine-id shared: {a:?}");
        assert!(ids.insert(a[1].clone()), "{t}: host key shared: {a:?}");
        markers.insert(a[2].clone());
    }
    // The setup ran once: both clones hold the marker of the same boot.
    assert_eq!(markers.len(), 1, "{markers:?}");
    let templates: Vec<_> = std::fs::read_dir(r.dir.join("snapshots"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(templates.len(), 1, "one template, saved after the setup");
    let setup = std::fs::read_to_string(templates[0].path().join("setup.log")).unwrap();
    assert!(setup.contains("--- setup step 1 (run"), "{setup}");
    assert_eq!(aviary::images::cache::sha256_file(&disk).unwrap(), before);
}

/// The host's own IPv4 addresses other than loopback (`ip -4 -o addr`).
fn host_addresses() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next())
        .filter(|a| !a.starts_with("127."))
        .map(String::from)
        .collect()
}

#[test]
fn a_guest_reaches_nothing_outside_but_ssh_and_the_update_server_work() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A listener on every host address: what the guest must not reach is really there.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut targets: Vec<(String, u16)> = host_addresses().into_iter().map(|a| (a, port)).collect();
    assert!(!targets.is_empty(), "this host has no non-loopback address");
    for (a, p) in &targets {
        std::net::TcpStream::connect_timeout(
            &format!("{a}:{p}").parse().unwrap(),
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("the host itself cannot reach its listener on {a}:{p}: {e}"));
    }
    // QEMU's gateway (the host's loopback under slirp), its DNS, and routed addresses.
    targets.extend([
        ("10.0.2.2".to_string(), port),
        ("10.0.2.2".to_string(), 22),
        ("10.0.2.3".to_string(), 53),
        ("1.1.1.1".to_string(), 53),
        ("8.8.8.8".to_string(), 443),
        ("198.51.100.7".to_string(), 80),
    ]);
    // The host's default gateway, if it has one.
    let route = Command::new("ip")
        .args(["-4", "route", "show", "default"])
        .output()
        .unwrap();
    if let Some(gw) = String::from_utf8_lossy(&route.stdout)
        .split_whitespace()
        .nth(2)
    {
        targets.push((gw.to_string(), 53));
    }
    let mut suite = String::from(
        "suite: sealing\ntests:\n  - name: sealed\n    machines: { node: { image: stable } }\n    steps:\n",
    );
    for (a, p) in &targets {
        suite.push_str(&format!(
            "      - run: {{ on: node, cmd: \"if timeout 5 bash -c 'exec 3<>/dev/tcp/{a}/{p}' 2>/dev/null; then echo reached {a}:{p}; else echo blocked; fi\", stdout: \"^blocked$\" }}\n"
        ));
    }
    suite.push_str(concat!(
        "      - run: { on: node, cmd: \"if timeout 5 getent hosts example.com; then echo resolved; else echo blocked; fi\", stdout: \"^blocked$\" }\n",
        "      - run: { on: node, cmd: \"if ping -c 1 -W 3 1.1.1.1 >/dev/null 2>&1; then echo reached; else echo blocked; fi\", stdout: \"^blocked$\" }\n",
        // The update server (QEMU's guestfwd to Aviary) still answers: a refused payload is
        // downloaded and checked, and nothing is written.
        "      - update: { on: node, to: beta, payload: corrupt, expect: refused }\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealing.yaml");
    std::fs::write(&path, &suite).unwrap();
    let r = run_suite(&[path.to_str().unwrap()], None);
    assert_eq!(r.code, Some(0), "{}\n{suite}", r.stderr);
    let log = std::fs::read_to_string(r.dir.join("sealing/sealed/steps.log")).unwrap();
    // Output lines are "  | …": the command text itself says "reached" too.
    assert!(!log.contains("| reached"), "{log}");
    assert_eq!(log.matches("| blocked").count(), targets.len() + 2, "{log}");
    // The agent reached the update server and fetched the payload it then refused.
    assert!(log.contains("update server saw: 200 /v1/update"), "{log}");
    assert!(log.contains(" /payloads/"), "{log}");
    drop(listener);
}

#[test]
fn interrupted_runs_leave_nothing_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (disk, before) = base_image();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("interrupts.json");
    // The short version of the interrupt program (100 runs by hand, see README): 10 runs, two at
    // a time, every kind of interruption at least once, a fixed seed.
    let r = Command::new("python3")
        .arg(repo().join("scripts/interrupts.py"))
        .args(["--runs", "10", "--parallel", "2", "--seed", "7", "--aviary"])
        .arg(env!("CARGO_BIN_EXE_aviary"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["clean"], 10, "{stdout}");
    assert_eq!(doc["base_images_unchanged"], true, "{stdout}");
    for k in [
        "sigint",
        "sigterm",
        "qemu-kill",
        "timeout",
        "sshd-kill",
        "update-drop",
    ] {
        assert!(doc["by_kind"][k].as_u64().unwrap() >= 1, "{k}: {stdout}");
    }
    assert_eq!(aviary::images::cache::sha256_file(&disk).unwrap(), before);
}
