//! report.html: one static page per run, readable offline and without scripts. It is rendered
//! from summary.json (and the gate's verdict.json) as JSON values, so it reads whatever the
//! summary carries without depending on the runner's types.

use super::text::{duration, escape, href, html, relative_to};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// A test's status on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Error,
    Fail,
    Flaky,
    /// Not run: its OS profile gives a step no meaning.
    Skip,
    Pass,
}

impl Status {
    fn of(test: &Value) -> Status {
        match outcome_status(test) {
            "failed" => Status::Fail,
            "passed" if test["flaky"].as_bool() == Some(true) => Status::Flaky,
            "passed" => Status::Pass,
            "skipped" => Status::Skip,
            _ => Status::Error,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Error => "ERROR",
            Status::Fail => "FAIL",
            Status::Flaky => "FLAKY",
            Status::Skip => "SKIP",
            Status::Pass => "PASS",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Fail => "fail",
            Status::Flaky => "flaky",
            Status::Skip => "skip",
            Status::Pass => "pass",
        }
    }
}

fn outcome_status(test: &Value) -> &str {
    test["outcome"]["status"].as_str().unwrap_or("")
}

/// A string field as HTML (escape codes stripped), numbers as written, else "".
fn s(v: &Value) -> String {
    match v {
        Value::String(t) => html(t),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:76em;padding:0 1em;color:#1b1b1b;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{text-align:left;vertical-align:top;padding:.3em .5em;border-bottom:1px solid #e3e3e3}
th{background:#f3f3f3}code,pre{font:13px/1.35 ui-monospace,monospace}pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.5em;margin:.3em 0;max-height:40em;overflow:auto}
.badge{display:inline-block;min-width:4.2em;text-align:center;font-weight:700;border-radius:3px;padding:0 .3em;color:#fff}
.pass>.badge,.badge.pass{background:#2e7d32}.fail>.badge,.badge.fail{background:#c62828}.error>.badge,.badge.error{background:#6a1b9a}.flaky>.badge,.badge.flaky{background:#ef6c00}.warn>.badge,.badge.warn{background:#ef6c00}.waived>.badge,.badge.waived{background:#757575}.skip>.badge,.badge.skip{background:#757575}
tr.fail,tr.error{background:#fdecea}tr.flaky{background:#fff4e5}
.tiles{display:flex;gap:.6em;flex-wrap:wrap;margin:.6em 0}.tile{border:1px solid #ccc;border-radius:4px;padding:.3em .8em}.tile b{font-size:1.4em;display:block}.tile.pass b{color:#2e7d32}.tile.fail b{color:#c62828}.tile.error b{color:#6a1b9a}.tile.flaky b{color:#ef6c00}
td.logs,td.nowrap{white-space:nowrap}
.verdict{border:3px solid;border-radius:6px;padding:.6em 1em;margin:1em 0}.verdict.promote{border-color:#2e7d32;background:#edf7ed}.verdict.hold{border-color:#c62828;background:#fdecea}
.verdict .word{font-size:1.6em;font-weight:800;letter-spacing:.05em}
.banner{border-left:6px solid #c62828;background:#fdecea;padding:.4em .8em;margin:.6em 0}
.msg{font-weight:600;white-space:pre-wrap}.muted{color:#666}dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.4em 0}dt{font-weight:600}dd{margin:0}
";

/// Renders the page. `summary` is summary.json's document, `verdict` the gate's verdict.json.
pub fn render(summary: &Value, verdict: Option<&Value>) -> String {
    let run = &summary["run"];
    let run_dir = run["dir"].as_str().map(Path::new);
    let tests: Vec<&Value> = summary["tests"]
        .as_array()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let mut o = String::new();
    let run_id = s(&run["run_id"]);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Aviary run {run_id}</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(o, "<h1>Aviary run <code>{run_id}</code></h1>");
    if let Some(v) = verdict {
        verdict_section(&mut o, v);
    }
    run_state(&mut o, summary, &tests);
    counts(&mut o, &tests);
    failures_list(&mut o, &tests);
    run_facts(&mut o, run);
    for suite in suite_order(run, &tests) {
        suite_section(&mut o, &suite, &tests, run_dir);
    }
    let _ = writeln!(
        o,
        "<p class=\"muted\">Written by aviary {} from summary.json.</p>\n</body></html>",
        s(&summary["aviary"])
    );
    o
}

fn verdict_section(o: &mut String, v: &Value) {
    let word = v["verdict"].as_str().unwrap_or("unknown");
    let class = match word {
        "promote" => "promote",
        _ => "hold",
    };
    let _ = writeln!(
        o,
        "<section class=\"verdict {class}\" id=\"verdict\"><span class=\"word\">{}</span> \
         release <code>{}</code> from <b>{}</b> to <b>{}</b>",
        escape(&word.to_uppercase()),
        s(&v["release"]),
        s(&v["from"]),
        s(&v["to"]),
    );
    let _ = writeln!(
        o,
        "<dl><dt>digest</dt><dd><code>{}</code></dd><dt>evaluated</dt><dd>{}</dd></dl>",
        s(&v["digest"]),
        s(&v["evaluated_at"])
    );
    if let Some(reasons) = v["reasons"].as_array() {
        o.push_str("<table><tr><th>status</th><th>rule</th><th>message</th></tr>\n");
        for r in reasons {
            let st = r["status"].as_str().unwrap_or("");
            let class = match st {
                "pass" | "fail" | "warn" | "waived" => st,
                _ => "error",
            };
            let _ = writeln!(
                o,
                "<tr class=\"{class}\"><td class=\"{class}\"><span class=\"badge\">{}</span></td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                escape(&st.to_uppercase()),
                s(&r["rule"]),
                s(&r["message"])
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("</section>\n");
}

fn run_state(o: &mut String, summary: &Value, tests: &[&Value]) {
    if let Some(why) = summary["interrupted"].as_str() {
        let _ = writeln!(
            o,
            "<p class=\"banner\">Interrupted: {}. Tests that did not finish are not listed.</p>",
            html(why)
        );
    } else if let Some(why) = summary["stopped"].as_str() {
        let _ = writeln!(o, "<p class=\"banner\">Stopped early: {}.</p>", html(why));
    } else if summary["finished"].as_bool() != Some(true) {
        let _ = writeln!(
            o,
            "<p class=\"banner\">The run had not finished when this page was written \
             ({} test(s) done).</p>",
            tests.len()
        );
    }
}

fn counts(o: &mut String, tests: &[&Value]) {
    let n = |st: Status| tests.iter().filter(|t| Status::of(t) == st).count();
    let total: f64 = tests.iter().filter_map(|t| t["duration"].as_f64()).sum();
    o.push_str("<div class=\"tiles\">");
    for (label, st) in [
        ("passed", Status::Pass),
        ("failed", Status::Fail),
        ("errors", Status::Error),
        ("flaky", Status::Flaky),
        ("skipped", Status::Skip),
    ] {
        let _ = write!(
            o,
            "<div class=\"tile {}\"><b>{}</b>{label}</div>",
            st.class(),
            n(st)
        );
    }
    let _ = writeln!(
        o,
        "<div class=\"tile\"><b>{}</b>tests, {} in all</div></div>",
        tests.len(),
        duration(total)
    );
}

fn anchor(i: usize) -> String {
    format!("t{i}")
}

fn failures_list(o: &mut String, tests: &[&Value]) {
    let bad: Vec<(usize, &&Value)> = tests
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(Status::of(t), Status::Fail | Status::Error))
        .collect();
    if bad.is_empty() {
        return;
    }
    o.push_str("<section id=\"failures\"><h2>Failures</h2><ul>\n");
    for (i, t) in bad {
        let st = Status::of(t);
        let _ = writeln!(
            o,
            "<li class=\"{}\"><span class=\"badge\">{}</span> <a href=\"#{}\">{}::{}</a>: \
             <span class=\"msg\">{}</span></li>",
            st.class(),
            st.label(),
            anchor(i),
            s(&t["suite"]),
            s(&t["name"]),
            s(&t["outcome"]["message"])
        );
    }
    o.push_str("</ul></section>\n");
}

fn run_facts(o: &mut String, run: &Value) {
    let accel = &run["accel"];
    o.push_str("<h2>Run</h2><dl>");
    let _ = write!(o, "<dt>started</dt><dd>{}</dd>", s(&run["started"]));
    let _ = write!(
        o,
        "<dt>accelerator</dt><dd><b>{}</b> — {}</dd>",
        s(&accel["accel"]),
        s(&accel["reason"])
    );
    if let Some(scale) = accel["timeout_scale"].as_f64() {
        let _ = write!(o, "<dt>timeout scale</dt><dd>{scale:.2}×</dd>");
    }
    if !run["shard"].is_null() {
        let shard = match &run["shard"] {
            Value::Object(m) => match (m.get("index"), m.get("total")) {
                (Some(i), Some(n)) => format!("{}/{}", s(i), s(n)),
                _ => s(&run["shard"]),
            },
            v => s(v),
        };
        let _ = write!(o, "<dt>shard</dt><dd>{shard}</dd>");
    }
    let _ = write!(o, "<dt>seed</dt><dd><code>{}</code></dd>", s(&run["seed"]));
    o.push_str("</dl>\n");
    if let Some(images) = run["images"].as_array() {
        o.push_str(
            "<table><tr><th>image</th><th>channel</th><th>version</th><th>kernel</th>\
             <th>sha256</th></tr>\n",
        );
        for img in images {
            let sha = img["sha256"].as_str().unwrap_or("");
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><code title=\"{}\">{}</code></td></tr>",
                s(&img["name"]),
                s(&img["channel"]),
                s(&img["version"]),
                s(&img["kernel_release"]),
                html(sha),
                html(&sha.chars().take(12).collect::<String>())
            );
        }
        o.push_str("</table>\n");
    }
}

/// The run's suites in its order, then any that only the tests name.
fn suite_order(run: &Value, tests: &[&Value]) -> Vec<String> {
    let mut out: Vec<String> = run["suites"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for t in tests {
        if let Some(name) = t["suite"].as_str() {
            if !out.iter().any(|s| s == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// An artifacts folder as path components relative to the run folder (summary.json holds
/// absolute paths; stripping the run's own `dir` keeps the links valid when the folder moves).
fn artifacts_rel(run_dir: Option<&Path>, artifacts: &Value) -> Option<Vec<String>> {
    let a = Path::new(artifacts.as_str()?);
    match run_dir {
        _ if a.is_relative() => relative_to(Path::new(""), a),
        Some(d) => relative_to(d, a),
        None => None,
    }
}

/// A test's artifacts folder; where it is not under the run's `dir`, `<suite>/<test>`, which is
/// where the runner puts it.
fn test_dir(run_dir: Option<&Path>, t: &Value) -> Vec<String> {
    artifacts_rel(run_dir, &t["artifacts"]).unwrap_or_else(|| {
        [&t["suite"], &t["name"]]
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    })
}

/// Links to each machine's console and journal, and the test's step log.
fn log_links(o: &mut String, dir: &[String], machines: &[String]) {
    let link = |o: &mut String, extra: &[&str], label: &str| {
        let mut parts: Vec<&str> = dir.iter().map(String::as_str).collect();
        parts.extend_from_slice(extra);
        let _ = write!(o, "<a href=\"{}\">{label}</a>", escape(&href(&parts)));
    };
    link(o, &["steps.log"], "steps");
    for m in machines {
        let _ = write!(o, "<br><b>{}</b>: ", html(m));
        link(o, &[m, "console.log"], "console");
        o.push_str(" · ");
        link(o, &[m, "journal.txt"], "journal");
    }
}

fn problem(o: &mut String, outcome: &Value, open: bool) {
    let _ = write!(o, "<div class=\"msg\">{}</div>", s(&outcome["message"]));
    let detail = s(&outcome["detail"]);
    if !detail.is_empty() {
        let _ = write!(
            o,
            "<details{}><summary>detail</summary><pre>{detail}</pre></details>",
            if open { " open" } else { "" }
        );
    }
}

fn suite_section(o: &mut String, suite: &str, all: &[&Value], run_dir: Option<&Path>) {
    let mut tests: Vec<(usize, &Value)> = all
        .iter()
        .enumerate()
        .filter(|(_, t)| t["suite"].as_str() == Some(suite))
        .map(|(i, t)| (i, *t))
        .collect();
    // Failures first; otherwise in the order they finished.
    tests.sort_by_key(|(i, t)| (Status::of(t), *i));
    let _ = writeln!(o, "<h2>Suite <code>{}</code></h2>", html(suite));
    if tests.is_empty() {
        o.push_str("<p class=\"muted\">No test of this suite finished.</p>\n");
        return;
    }
    o.push_str(
        "<table><tr><th>status</th><th>test</th><th>duration</th><th>machines</th><th>logs</th></tr>\n",
    );
    for (i, t) in tests {
        let st = Status::of(t);
        let machines: Vec<String> = t["machines"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let machine_text: Vec<String> = t["machines"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        format!(
                            "{} <span class=\"muted\">{} {}</span>",
                            s(&m["name"]),
                            s(&m["image"]),
                            s(&m["version"])
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            o,
            "<tr class=\"{}\" id=\"{}\"><td class=\"{}\"><span class=\"badge\">{}</span></td>\
             <td><b>{}</b>",
            st.class(),
            anchor(i),
            st.class(),
            st.label(),
            s(&t["name"]),
        );
        if st == Status::Skip {
            problem(o, &t["outcome"], false);
        }
        if matches!(st, Status::Fail | Status::Error) {
            problem(o, &t["outcome"], false);
            let log = s(&t["log"]);
            if !log.is_empty() {
                let _ = write!(
                    o,
                    "<details><summary>step log</summary><pre>{log}</pre></details>"
                );
            }
        }
        reruns(o, t, run_dir, &machines);
        let _ = write!(
            o,
            "</td><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td><td class=\"logs\">",
            t["duration"].as_f64().map(duration).unwrap_or_default(),
            machine_text.join("<br>")
        );
        log_links(o, &test_dir(run_dir, t), &machines);
        o.push_str("</td></tr>\n");
    }
    o.push_str("</table>\n");
}

/// Earlier attempts of a test that was retried (a flaky test's failures).
fn reruns(o: &mut String, t: &Value, run_dir: Option<&Path>, machines: &[String]) {
    let Some(reruns) = t["reruns"].as_array().filter(|r| !r.is_empty()) else {
        return;
    };
    let _ = write!(
        o,
        "<details><summary>{} earlier attempt(s)</summary><ol>",
        reruns.len()
    );
    for r in reruns {
        let st = match r["outcome"]["status"].as_str() {
            Some("passed") => Status::Pass,
            Some("failed") => Status::Fail,
            _ => Status::Error,
        };
        let _ = write!(
            o,
            "<li class=\"{}\"><span class=\"badge\">{}</span> {} ",
            st.class(),
            st.label(),
            r["duration"].as_f64().map(duration).unwrap_or_default()
        );
        problem(o, &r["outcome"], false);
        if let Some(dir) = artifacts_rel(run_dir, &r["artifacts"]) {
            log_links(o, &dir, machines);
        }
        o.push_str("</li>");
    }
    o.push_str("</ol></details>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test(name: &str, outcome: Value) -> Value {
        json!({
            "suite": "prov", "name": name, "outcome": outcome, "duration": 12.5,
            "artifacts": format!("/old/place/r1/prov/{name}"),
            "machines": [{"name": "node", "image": "stable", "version": "1000.0.0"}],
            "log": "step 1 \u{1b}[32mok\u{1b}[0m",
        })
    }

    fn summary() -> Value {
        let mut flaky = test("wobbles", json!({"status": "passed"}));
        flaky["flaky"] = json!(true);
        flaky["reruns"] = json!([{
            "outcome": {"status": "failed", "message": "ssh timed out", "detail": "after 30s"},
            "duration": 31.0,
            "artifacts": "/old/place/r1/prov/wobbles/attempt-1",
        }]);
        json!({
            "aviary": "0.1.0",
            "finished": true,
            "interrupted": null,
            "run": {
                "run_id": "r1", "started": "2026-12-02T18:22:17Z", "dir": "/old/place/r1",
                "seed": 7, "shard": {"index": 2, "total": 3},
                "accel": {"accel": "tcg", "reason": "KVM probe hung", "timeout_scale": 1.1673},
                "images": [{"name": "stable", "channel": "stable", "version": "1000.0.0",
                            "kernel_release": "6.1.0-47-cloud-amd64", "sha256": "e05ef50ebc18623330c6db"}],
                "suites": ["prov", "never-ran"],
            },
            "tests": [
                test("passes", json!({"status": "passed"})),
                test("fails", json!({"status": "failed",
                    "message": "expected `running`, seen \u{1b}[1m<degraded>\u{1b}[0m & more",
                    "detail": "<script>alert(1)</script> see https://example.com/x"})),
                flaky,
                test("errs", json!({"status": "error", "message": "QEMU did not start", "detail": ""})),
                test("skips", json!({"status": "skipped", "message": "profile flatcar: update: no update_engine here"})),
            ],
        })
    }

    fn verdict() -> Value {
        json!({"verdict": "hold", "release": "1001.0.0", "from": "beta", "to": "stable",
               "digest": "sha256:abc", "evaluated_at": "2026-12-02T19:00:00Z",
               "reasons": [
                   {"rule": "no-failures", "status": "fail", "message": "1 test failed: prov::fails"},
                   {"rule": "flaky-budget", "status": "warn", "message": "1 flaky <= 2"},
                   {"rule": "soak", "status": "waived", "message": "waived by release lead"},
                   {"rule": "images", "status": "pass", "message": "digests match"}]})
    }

    /// Every attribute value that could load or link something.
    fn urls(page: &str) -> Vec<String> {
        let re =
            regex::Regex::new(r#"(?i)\b(href|src|action|srcset|data)\s*=\s*"([^"]*)""#).unwrap();
        re.captures_iter(page).map(|c| c[2].to_string()).collect()
    }

    #[test]
    fn escapes_user_text_and_strips_terminal_codes() {
        let page = render(&summary(), Some(&verdict()));
        assert!(!page.contains('\u{1b}'));
        assert!(
            page.contains("expected `running`, seen &lt;degraded&gt; &amp; more"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script"));
        assert!(page.contains("step 1 ok"));
    }

    #[test]
    fn links_only_inside_the_run_folder_and_relative_to_it() {
        let page = render(&summary(), Some(&verdict()));
        let urls = urls(&page);
        assert!(
            urls.contains(&"prov/fails/node/console.log".to_string()),
            "{urls:?}"
        );
        assert!(
            urls.contains(&"prov/fails/node/journal.txt".to_string()),
            "{urls:?}"
        );
        assert!(
            urls.contains(&"prov/fails/steps.log".to_string()),
            "{urls:?}"
        );
        assert!(urls.contains(&"prov/wobbles/attempt-1/node/console.log".to_string()));
        for u in &urls {
            let internal = u.starts_with('#');
            let relative = !u.starts_with('/')
                && !u.split('/').any(|p| p == "..")
                && !u.split('/').next().unwrap_or("").contains(':');
            assert!(internal || relative, "{u} leaves the run folder");
        }
        assert!(!page.contains("src="));
        assert!(page.contains("default-src 'none'"));
    }

    #[test]
    fn a_test_outside_the_run_dir_links_to_suite_and_name() {
        let mut sum = summary();
        sum["tests"][1]["artifacts"] = json!("/somewhere/else/fails");
        sum["tests"][1]["suite"] = json!("my suite");
        let page = render(&sum, None);
        assert!(urls(&page).contains(&"my%20suite/fails/node/console.log".to_string()));
    }

    #[test]
    fn failures_come_first_and_flaky_tests_show_their_failed_attempts() {
        let page = render(&summary(), None);
        let pos = |needle: &str| {
            page.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {page}"))
        };
        let table = pos("Suite <code>prov</code>");
        let row = |name: &str| table + page[table..].find(&format!("<b>{name}</b>")).unwrap();
        assert!(
            row("errs") < row("fails")
                && row("fails") < row("wobbles")
                && row("wobbles") < row("skips")
                && row("skips") < row("passes")
        );
        // A skip is neither a failure nor a pass, and says why.
        assert!(page.contains("<div class=\"tile skip\"><b>1</b>skipped</div>"));
        assert!(page.contains("<span class=\"badge\">SKIP</span>"));
        assert!(page.contains("profile flatcar: update: no update_engine here"));
        assert!(
            !page.contains("<a href=\"#t4\">"),
            "a skip is not in the failures list"
        );
        assert!(page.contains("<span class=\"badge\">FLAKY</span>"));
        assert!(page.contains("1 earlier attempt(s)"));
        assert!(page.contains("ssh timed out"));
        assert!(page.contains("<div class=\"tile flaky\"><b>1</b>flaky</div>"));
        assert!(page.contains("<div class=\"tile pass\"><b>1</b>passed</div>"));
        assert!(page.contains("<div class=\"tile fail\"><b>1</b>failed</div>"));
        assert!(page.contains("<div class=\"tile error\"><b>1</b>errors</div>"));
        // The failures list at the top links to the rows.
        assert!(pos("id=\"failures\"") < table);
        assert!(page.contains("<a href=\"#t1\">prov::fails</a>"));
        assert!(page.contains("id=\"t1\""));
        assert!(page.contains("No test of this suite finished."));
    }

    #[test]
    fn run_facts_and_images() {
        let page = render(&summary(), None);
        for want in [
            "2026-12-02T18:22:17Z",
            "<b>tcg</b> — KVM probe hung",
            "1.17×",
            "<dt>shard</dt><dd>2/3</dd>",
            "6.1.0-47-cloud-amd64",
            ">e05ef50ebc18</code>",
        ] {
            assert!(page.contains(want), "{want}: {page}");
        }
        assert!(!page.contains("id=\"verdict\""));
    }

    #[test]
    fn verdict_is_prominent_with_each_reason() {
        let page = render(&summary(), Some(&verdict()));
        assert!(page.contains("class=\"verdict hold\""));
        assert!(page.contains("<span class=\"word\">HOLD</span>"));
        assert!(page.find("id=\"verdict\"").unwrap() < page.find("id=\"failures\"").unwrap());
        for (st, msg) in [
            ("FAIL", "1 test failed: prov::fails"),
            ("WARN", "1 flaky &lt;= 2"),
            ("WAIVED", "waived by release lead"),
            ("PASS", "digests match"),
        ] {
            let re = format!("<span class=\"badge\">{st}</span></td><td><code>");
            assert!(page.contains(&re) && page.contains(msg), "{st} {msg}");
        }
        let mut v = verdict();
        v["verdict"] = json!("promote");
        assert!(render(&summary(), Some(&v)).contains("class=\"verdict promote\""));
    }

    #[test]
    fn partial_and_odd_summaries_still_render() {
        let page = render(&json!({"run": null, "tests": [], "finished": false}), None);
        assert!(page.contains("had not finished"));
        let page = render(
            &json!({"finished": true, "interrupted": "SIGINT <ctrl-c>", "tests": [{"outcome": 3}]}),
            None,
        );
        assert!(page.contains("Interrupted: SIGINT &lt;ctrl-c&gt;"));
        assert!(page.contains("ERROR"));
        let page = render(
            &json!({"finished": true, "stopped": "--fail-fast: s::a failed; 2 test(s) not started; they are not in the reports", "tests": []}),
            None,
        );
        assert!(page.contains(
            "Stopped early: --fail-fast: s::a failed; 2 test(s) not started; they are not in the reports."
        ));
    }
}
