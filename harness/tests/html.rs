//! `aviary report html` on a fixture run folder, then the page as a person sees it: loaded in
//! headless Chromium (Debian's chromium package), the failure is visible and its log link works.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FAIL_MESSAGE: &str = "expected unit `kubelet.service` active, seen <failed> & restarting";

/// A run folder as `aviary run` leaves it, recorded at another path (`/ci/reports/…`) and then
/// moved here: the links must not depend on where it was written.
fn fixture_run(root: &Path) -> PathBuf {
    let run = root.join("20261202-182217-6bc8");
    let old = "/ci/reports/20261202-182217-6bc8";
    let test = |name: &str, outcome: serde_json::Value| {
        for m in ["node-a", "node-b"] {
            let dir = run.join("upgrade").join(name).join(m);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("console.log"), format!("{name} {m} console\n")).unwrap();
            std::fs::write(dir.join("journal.txt"), format!("{name} {m} journal\n")).unwrap();
        }
        std::fs::write(run.join("upgrade").join(name).join("steps.log"), "steps\n").unwrap();
        json!({
            "suite": "upgrade", "name": name, "outcome": outcome, "duration": 42.25,
            "artifacts": format!("{old}/upgrade/{name}"),
            "machines": [
                {"name": "node-a", "image": "stable", "version": "1000.0.0", "sha256": "e05e"},
                {"name": "node-b", "image": "beta", "version": "1001.0.0", "sha256": "b895"},
            ],
            "log": "run on node-a: systemctl is-active kubelet\n\u{1b}[31mfailed\u{1b}[0m\n",
        })
    };
    let mut flaky = test("rollback-after-bad-update", json!({"status": "passed"}));
    flaky["flaky"] = json!(true);
    flaky["reruns"] = json!([{
        "outcome": {"status": "failed", "message": "ssh to node-b timed out after 30s", "detail": ""},
        "duration": 31.5,
        "artifacts": format!("{old}/upgrade/rollback-after-bad-update"),
    }]);
    let summary = json!({
        "aviary": "0.1.0", "finished": true, "interrupted": null,
        "counts": {"passed": 2, "failed": 1, "errors": 0},
        "run": {
            "run_id": "20261202-182217-6bc8", "started": "2026-12-02T18:22:17Z", "dir": old,
            "seed": 5781708536006929352u64,
            "accel": {"accel": "tcg", "reason": "/dev/kvm opens but a KVM probe boot hung", "timeout_scale": 1.17},
            "images": [
                {"name": "stable", "channel": "stable", "version": "1000.0.0",
                 "kernel_release": "6.1.0-47-cloud-amd64", "sha256": "e05ef50ebc18623330c6db40481e3b0f"},
                {"name": "beta", "channel": "beta", "version": "1001.0.0",
                 "kernel_release": "6.1.0-53-cloud-amd64", "sha256": "b8952ff4d193fab0d430246efadd1fb0"},
            ],
            "suites": ["upgrade"],
        },
        "tests": [
            test("boots-new-slot-once", json!({"status": "passed"})),
            test("kubelet-survives-update", json!({
                "status": "failed",
                "message": format!("\u{1b}[1m{FAIL_MESSAGE}\u{1b}[0m"),
                "detail": "stdout:\ninactive\nsuite upgrade.yaml:12:9",
            })),
            flaky,
        ],
    });
    std::fs::write(
        run.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
    run
}

fn chromium() -> &'static str {
    let found = Command::new("chromium").arg("--version").output();
    match found {
        Ok(o) if o.status.success() => "chromium",
        _ => panic!(
            "this test needs headless Chromium: install Debian's chromium package \
             (`apt-get install chromium`, or run scripts/install-deps.sh as root)"
        ),
    }
}

/// Chromium's serialized DOM of the page after it loaded.
fn dump_dom(page: &Path, profile: &Path) -> String {
    let start = Instant::now();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "chromium took {:?}",
        start.elapsed()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text a reader sees, roughly: tags removed, entities decoded, whitespace collapsed.
fn visible_text(dom: &str) -> String {
    let no_style = regex::Regex::new(r"(?s)<style.*?</style>").unwrap();
    let no_closed_details = regex::Regex::new(r"(?s)<details>.*?</details>").unwrap();
    let tags = regex::Regex::new(r"(?s)<[^>]*>").unwrap();
    let text = no_style.replace_all(dom, " ");
    // Closed <details> bodies are not on screen (the page opens none of them).
    let text = no_closed_details.replace_all(&text, " ");
    let text = tags.replace_all(&text, " ");
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Percent-decoding for the page's relative links.
fn decode(href: &str) -> String {
    let b = href.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&href[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn the_page_shows_the_failure_and_links_to_its_console_log() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
        .args(["report", "html"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = run.join("report.html");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        page.display().to_string()
    );

    let dom = dump_dom(&page, &tmp.path().join("chromium-profile"));
    assert!(
        dom.contains("<title>Aviary run 20261202-182217-6bc8</title>"),
        "{dom}"
    );
    let text = visible_text(&dom);
    assert!(text.contains("kubelet-survives-update"), "{text}");
    assert!(text.contains(FAIL_MESSAGE), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("FAIL"), "{text}");
    assert!(text.contains("FLAKY"), "{text}");
    assert!(text.contains("1 failed"), "{text}");
    assert!(text.contains("tcg"), "{text}");
    assert!(text.contains("1001.0.0"), "{text}");

    // The failing row's links, in the DOM Chromium built: each resolves inside the moved folder.
    let row = regex::Regex::new(r#"(?s)<tr class="fail" id="[^"]*">.*?</tr>"#).unwrap();
    let row = row.find(&dom).expect("a failing row").as_str();
    assert!(row.contains("kubelet-survives-update"), "{row}");
    let hrefs: Vec<String> = regex::Regex::new(r#"href="([^"]*)""#)
        .unwrap()
        .captures_iter(row)
        .map(|c| decode(&c[1].replace("&amp;", "&")))
        .collect();
    let console = hrefs
        .iter()
        .find(|h| h.ends_with("node-a/console.log"))
        .unwrap_or_else(|| panic!("no console link in {row}"));
    let target = run.join(console);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap_or_else(|e| panic!("{}: {e}", target.display())),
        "kubelet-survives-update node-a console\n"
    );
    for h in &hrefs {
        assert!(run.join(h).is_file(), "{h} is not a file in the run folder");
    }
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_aviary"))
            .args(["report", "html"])
            .arg(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&tmp.path().join("missing"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing: no such run folder"), "{err}");

    let (code, err) = run(tmp.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("summary.json: cannot read"), "{err}");

    std::fs::write(tmp.path().join("summary.json"), "{\"tests\": [}").unwrap();
    let (code, err) = run(tmp.path());
    assert_eq!(code, Some(2), "{err}");
    let want = format!(
        "{}:1:12: invalid JSON",
        tmp.path().join("summary.json").display()
    );
    assert!(err.contains(&want), "{err}");
}
