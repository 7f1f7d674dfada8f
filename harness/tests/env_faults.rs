//! The binary when the host, not the input, is at fault: reports that cannot be written, SSH
//! ports taken, QEMU missing, images missing, changed or too large for the host. Each exits 2
//! with a message saying what, where and what was expected, and leaves no QEMU behind. QEMU is
//! a spy script; images are tiny fakes in a cache of the test's own (`AVIARY_CACHE`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A folder with a `qemu-system-x86_64` that answers `--version`, runs `prelude`, appends its
/// arguments to `calls` and fails.
struct Spy {
    dir: tempfile::TempDir,
}

impl Spy {
    fn new(prelude: &str) -> Spy {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu-system-x86_64");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'QEMU emulator version 0 (spy)'; exit 0; }}\n{prelude}echo \"$*\" >> {}\nexit 1\n",
                dir.path().join("calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        Spy { dir }
    }

    /// PATH with the spy first.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// How many times QEMU was started (not counting `--version`).
    fn calls(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Processes still running from the spy's folder (a QEMU or a helper it forked, left
    /// behind), after the kernel had a moment to deliver the kills Aviary sent.
    fn left_running(&self) -> Vec<String> {
        let needle = self.dir.path().display().to_string();
        let scan = || {
            let mut found = Vec::new();
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    if cmd.contains(&needle) {
                        found.push(cmd);
                    }
                }
            }
            found
        };
        for _ in 0..100 {
            if scan().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        scan()
    }
}

/// A spy prelude that leaves a helper running in QEMU's process group, as QEMU's own helpers
/// (guestfwd commands) would be: only killing the whole group ends it.
const HELPER: &str = "sh -c 'sleep 300; :' \"$0-helper\" &\n";

/// A cache holding a fake build of `stable` for the current recipe: a tiny qcow2, its build
/// record and an update payload, as `aviary images build` leaves them.
struct FakeCache {
    root: tempfile::TempDir,
    image_dir: PathBuf,
}

impl FakeCache {
    fn new() -> FakeCache {
        let root = tempfile::tempdir().unwrap();
        let ws = aviary::images::Workspace::at(repo());
        let images = aviary::images::Images {
            manifest: aviary::images::manifest::Manifest::load(&ws.manifest_path()).unwrap(),
            profiles: aviary::profile::Profiles::new(ws.profiles_dir()),
            ws,
            cache: root.path().to_path_buf(),
        };
        let image_dir = images.image_dir("stable").unwrap();
        std::fs::create_dir_all(&image_dir).unwrap();
        let disk = image_dir.join("disk.qcow2");
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&disk)
            .arg("16M")
            .output()
            .expect("qemu-img (qemu-utils)");
        assert!(out.status.success(), "{out:?}");
        let payload = image_dir.join("payload.raucb");
        std::fs::write(&payload, b"a signed RAUC bundle, in spirit").unwrap();
        let sha = |p: &Path| aviary::images::cache::sha256_file(p).unwrap();
        let record = serde_json::json!({
            "channel": "stable", "version": "1000.0.0",
            "kernel_package": "linux-image-fake", "kernel_release": "6.1.0-fake",
            "kernel_version": "6.1-fake", "recipe": "fake", "sha256": sha(&disk),
            "size": std::fs::metadata(&disk).unwrap().len(), "build_seconds": 0.0,
            "payload_sha256": sha(&payload),
            "payload_size": std::fs::metadata(&payload).unwrap().len(),
        });
        std::fs::write(image_dir.join("aviary-image.json"), record.to_string()).unwrap();
        FakeCache { root, image_dir }
    }

    fn disk(&self) -> PathBuf {
        self.image_dir.join("disk.qcow2")
    }
}

/// A suite of one test, `env::one`, with one machine on stable.
fn one_machine_suite(dir: &Path) -> PathBuf {
    let p = dir.join("env.yaml");
    std::fs::write(
        &p,
        "suite: env\ntests:\n  - name: one\n    machines: { node: { image: stable } }\n    steps:\n      - run: { on: node, cmd: \"true\" }\n",
    )
    .unwrap();
    p
}

struct Out {
    code: i32,
    stderr: String,
}

fn aviary(args: &[&str], path: &str, cache: &Path) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(args)
        .current_dir(repo())
        .env("PATH", path)
        .env("AVIARY_CACHE", cache)
        .env("AVIARY_ACCEL", "tcg")
        .env_remove("AVIARY_MANIFEST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Shown with --nocapture, and with a failing test's output.
    eprintln!("$ aviary {}\n{stderr}", args.join(" "));
    Out {
        code: out.status.code().unwrap_or(-1),
        stderr,
    }
}

/// Runs the one-machine suite on the fake cache with `spy` as QEMU, reports in `reports`.
fn run_one(spy: &Spy, cache: &FakeCache, reports: &Path, extra: &[&str]) -> Out {
    let suite = one_machine_suite(cache.root.path());
    let mut args = vec![
        "run",
        suite.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ];
    args.extend(extra);
    aviary(&args, &spy.path(), cache.root.path())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A mount for the test's lifetime; None (the case is skipped, saying why) where mounting is
/// not allowed.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&str], at: &Path) -> Option<Mount> {
        let out = Command::new("mount").args(args).arg(at).output().ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount {args:?} at {} here: {}",
                at.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn assert_refused_reports(spy: &Spy, out: &Out, reports: &Path) {
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "aviary: cannot write reports in {}:",
            reports.display()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no VM was started"), "{}", out.stderr);
    assert!(out.stderr.contains("--reports DIR"), "{}", out.stderr);
    assert_eq!(spy.calls(), 0, "QEMU was started");
    assert_eq!(spy.left_running(), Vec::<String>::new());
}

#[test]
fn reports_that_cannot_be_written_exit_2_before_any_vm() {
    let spy = Spy::new("");
    let cache = FakeCache::new();
    let scratch = tempfile::tempdir().unwrap();

    // A path under a regular file, and one in /proc: no folder can be made there, even by root.
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for reports in [
        file.join("reports"),
        PathBuf::from(format!("/proc/aviary-reports-{}", std::process::id())),
    ] {
        let out = run_one(&spy, &cache, &reports, &[]);
        assert_refused_reports(&spy, &out, &reports);
        assert!(out.stderr.contains("Not a directory") || out.stderr.contains("No such file"));
    }

    // A read-only filesystem (permission bits do not stop root; a read-only bind mount does).
    let ro = scratch.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    if let Some(_m) = Mount::new(&["--bind", "-o", "ro", ro.to_str().unwrap()], &ro) {
        let reports = ro.join("reports");
        let out = run_one(&spy, &cache, &reports, &[]);
        assert_refused_reports(&spy, &out, &reports);
        assert!(
            out.stderr.contains("Read-only file system"),
            "{}",
            out.stderr
        );
    }

    // A full filesystem: a 64 KiB tmpfs filled up. Folders can still be made on it, files not.
    let full = scratch.path().join("full");
    std::fs::create_dir(&full).unwrap();
    if let Some(_m) = Mount::new(&["-t", "tmpfs", "-o", "size=64k", "tmpfs"], &full) {
        let _ = std::fs::write(full.join("filler"), vec![0u8; 1 << 20]);
        let reports = full.join("reports");
        let out = run_one(&spy, &cache, &reports, &[]);
        assert_refused_reports(&spy, &out, &reports);
        assert!(
            out.stderr.contains("No space left on device"),
            "{}",
            out.stderr
        );
        let left: Vec<_> = std::fs::read_dir(&reports).unwrap().collect();
        assert!(left.is_empty(), "the run folder is removed again: {left:?}");
    }
}

#[test]
fn ssh_ports_taken_at_every_start_exit_2_naming_them() {
    // QEMU's own words when the forwarded port is bound by someone else first.
    let spy = Spy::new(&format!(
        "{HELPER}echo \"qemu-system-x86_64: -netdev user,id=net0: Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'\" >&2\n",
    ));
    let cache = FakeCache::new();
    let reports = tempfile::tempdir().unwrap();
    let out = run_one(&spy, &cache, reports.path(), &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(spy.calls(), 5, "one QEMU start per fresh port");
    for want in [
        "machine `node`: could not forward an SSH port",
        "QEMU started 5 times",
        "127.0.0.1 ports ",
        "last QEMU error: qemu-system-x86_64: -netdev user,id=net0: Could not set up host forwarding rule",
    ] {
        assert!(out.stderr.contains(want), "{want}: {}", out.stderr);
    }
    assert_eq!(spy.left_running(), Vec::<String>::new());
    // The run's reports are still written, with the error.
    let summary = std::fs::read_to_string(reports.path().join("latest/summary.json")).unwrap();
    assert!(
        summary.contains("could not forward an SSH port"),
        "{summary}"
    );
}

#[test]
fn qemu_missing_from_path_exits_2_naming_the_package() {
    let cache = FakeCache::new();
    let empty = tempfile::tempdir().unwrap();
    let reports = empty.path().join("reports");
    let suite = one_machine_suite(empty.path());
    let out = aviary(
        &[
            "run",
            suite.to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ],
        empty.path().to_str().unwrap(),
        cache.root.path(),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "aviary: qemu-system-x86_64 was not found on PATH ({})",
            empty.path().display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("install the qemu-system-x86 package (apt-get install qemu-system-x86)"),
        "{}",
        out.stderr
    );
    assert!(!reports.exists(), "no run folder without QEMU");
}

#[test]
fn a_missing_image_exits_2_naming_the_path() {
    let spy = Spy::new("");
    let cache = FakeCache::new();
    let reports = tempfile::tempdir().unwrap();
    let gone = reports.path().join("reports");

    let out = run_one(&spy, &cache, &gone, &["--image", "/nonexistent.qcow2"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "aviary: test env::one, machine node: image file /nonexistent.qcow2 does not exist; expected a qcow2 disk image"
        ),
        "{}",
        out.stderr
    );

    // channels.yaml's stable, whose disk was removed from the cache (its record is still there).
    std::fs::remove_file(cache.disk()).unwrap();
    let out = run_one(&spy, &cache, &gone, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "image `stable`: its cached disk {} is missing",
            cache.disk().display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("rebuild it with `aviary images build stable`"),
        "{}",
        out.stderr
    );
    assert_eq!(spy.calls(), 0);
    assert!(!gone.exists(), "no run folder");
    assert_eq!(spy.left_running(), Vec::<String>::new());
}

fn mem_total_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024
}

#[test]
fn a_cluster_larger_than_the_host_is_refused_before_booting() {
    let spy = Spy::new("");
    let cache = FakeCache::new();
    let dir = tempfile::tempdir().unwrap();
    // Enough 16 GiB machines (the most one may ask for) to exceed this host's memory.
    let total = mem_total_mib();
    let n = total / 16384 + 2;
    let machines: String = (1..=n)
        .map(|i| format!("      node-{i}: {{ image: stable, memory: 16384 }}\n"))
        .collect();
    let suite = dir.path().join("huge.yaml");
    std::fs::write(
        &suite,
        format!("suite: env\ntests:\n  - name: small\n    machines: {{ node: {{ image: stable }} }}\n    steps:\n      - run: {{ on: node, cmd: \"true\" }}\n  - name: huge\n    machines:\n{machines}    steps:\n      - run: {{ on: node-1, cmd: \"true\" }}\n"),
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let out = aviary(
        &[
            "run",
            suite.to_str().unwrap(),
            "-j",
            "auto",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &spy.path(),
        cache.root.path(),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    for want in [
        format!(
            "aviary: test env::huge asks for {} MiB of guest memory",
            n * 16384
        ),
        format!("(MemTotal {total} MiB less a reserve of"),
        "refusing it before booting anything".to_string(),
    ] {
        assert!(out.stderr.contains(&want), "{want}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("env::small"), "{}", out.stderr);
    assert_eq!(spy.calls(), 0, "nothing booted");
    assert!(!reports.exists(), "no run folder");
    assert_eq!(spy.left_running(), Vec::<String>::new());
}

#[test]
fn run_folders_keys_and_configs_are_private() {
    let spy = Spy::new(&format!("{HELPER}echo 'spy: no machine today' >&2\n"));
    let cache = FakeCache::new();
    let reports = tempfile::tempdir().unwrap();
    let out = run_one(&spy, &cache, reports.path(), &[]);
    // QEMU "failed at start": an infrastructure error, exit 2, the reports written.
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("QEMU exited at start: spy: no machine today"),
        "{}",
        out.stderr
    );
    assert_eq!(spy.calls(), 1);
    assert_eq!(spy.left_running(), Vec::<String>::new());
    let run = reports.path().join("latest").canonicalize().unwrap();
    assert!(run.join("summary.json").is_file());
    assert!(run.join("junit.xml").is_file());
    for dir in [
        run.clone(),
        run.join(".ssh"),
        run.join("env"),
        run.join("env/one"),
        run.join("env/one/node"),
        run.join("env/one/repro"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for secret in [
        run.join(".ssh/id_ed25519"),
        run.join("env/one/node/config.ign"),
        run.join("env/one/repro/node.ign"),
    ] {
        assert_eq!(mode(&secret), 0o600, "{}", secret.display());
    }
}

#[test]
fn a_tampered_base_image_or_payload_is_refused() {
    let spy = Spy::new("");
    let cache = FakeCache::new();
    let reports = tempfile::tempdir().unwrap();
    let gone = reports.path().join("reports");
    let flip = |p: &Path| {
        let before = aviary::images::cache::sha256_file(p).unwrap();
        let mut b = std::fs::read(p).unwrap();
        let i = b.len() / 2;
        b[i] ^= 0x01;
        std::fs::write(p, b).unwrap();
        (before, aviary::images::cache::sha256_file(p).unwrap())
    };

    let payload = cache.image_dir.join("payload.raucb");
    let (want, found) = flip(&payload);
    let out = run_one(&spy, &cache, &gone, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "update payload {} does not match its recorded digest (expected sha256 {want}, found {found})",
            payload.display()
        )),
        "{}",
        out.stderr
    );

    let (want, found) = flip(&cache.disk());
    let out = run_one(&spy, &cache, &gone, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "aviary: test env::one, machine node: image `stable` at {} does not match its recorded digest (expected sha256 {want}, found {found})",
            cache.disk().display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("aviary images build stable --force"),
        "{}",
        out.stderr
    );
    assert_eq!(spy.calls(), 0);
    assert!(!gone.exists(), "no run folder");
    assert_eq!(spy.left_running(), Vec::<String>::new());
}
