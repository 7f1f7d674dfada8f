//! Writing `<run>/report.html`: from the run folder's summary.json (and verdict.json), for
//! `aviary report html` and, during a run, after every summary update.

use super::{html, Event, Reporter};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why report.html could not be written. Everything but `Write` is bad input.
#[derive(Debug, thiserror::Error)]
pub enum HtmlReportError {
    #[error("{0}: no such run folder")]
    NoRunDir(PathBuf),
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Shape { path: PathBuf, message: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl HtmlReportError {
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, HtmlReportError::Write { .. })
    }
}

fn read_json(path: &Path) -> Result<Value, HtmlReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| HtmlReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let full = e.to_string();
        HtmlReportError::Json {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
        }
    })
}

fn shape(path: &Path, message: &str) -> HtmlReportError {
    HtmlReportError::Shape {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Writes `run_dir/report.html` from `run_dir/summary.json` and the verdict: `verdict` when
/// given, else `run_dir/verdict.json` when present. Returns the page's path.
pub fn write_report(run_dir: &Path, verdict: Option<&Path>) -> Result<PathBuf, HtmlReportError> {
    if !run_dir.is_dir() {
        return Err(HtmlReportError::NoRunDir(run_dir.to_path_buf()));
    }
    let summary_path = run_dir.join("summary.json");
    let summary = read_json(&summary_path)?;
    if !summary.is_object() || !summary["tests"].is_array() {
        return Err(shape(
            &summary_path,
            "not an Aviary summary (expected an object with a `tests` array)",
        ));
    }
    write_page(run_dir, &summary, verdict)
}

/// Writes `run_dir/report.html` from the summary document and the verdict (as `write_report`).
fn write_page(
    run_dir: &Path,
    summary: &Value,
    verdict: Option<&Path>,
) -> Result<PathBuf, HtmlReportError> {
    let default_verdict = run_dir.join("verdict.json");
    let verdict_path = match verdict {
        Some(p) => Some(p.to_path_buf()),
        None => Some(default_verdict).filter(|p| p.is_file()),
    };
    let verdict = match &verdict_path {
        Some(p) => {
            let v = read_json(p)?;
            if !v["verdict"].is_string() {
                return Err(shape(
                    p,
                    "not a gate verdict (expected an object with a `verdict` string)",
                ));
            }
            Some(v)
        }
        None => None,
    };
    let page = html::render(summary, verdict.as_ref());
    let path = run_dir.join("report.html");
    let tmp = run_dir.join("report.html.tmp");
    let write_err = |source| HtmlReportError::Write {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, page).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(path)
}

/// Rewrites report.html whenever the run's record changes, from its own record of the events
/// (the same document summary.json holds), not by reading the file back.
pub struct HtmlReporter {
    run_dir: PathBuf,
    record: super::summary::RunRecord,
}

impl HtmlReporter {
    pub fn new(run_dir: PathBuf) -> Self {
        HtmlReporter {
            run_dir,
            record: Default::default(),
        }
    }
}

impl Reporter for HtmlReporter {
    fn on_event(&mut self, ev: &Event) -> anyhow::Result<()> {
        if !self.record.apply(ev) {
            return Ok(());
        }
        if let Some(summary) = self.record.document() {
            write_page(&self.run_dir, &summary, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reporter_renders_from_the_events_without_reading_summary_json() {
        use crate::report::read::tests::{info, test};
        use crate::runner::result::Outcome;
        let d = tempfile::tempdir().unwrap();
        let mut r = HtmlReporter::new(d.path().to_path_buf());
        r.on_event(&Event::RunStarted {
            info: info("r1"),
            total: 1,
        })
        .unwrap();
        let failed = Outcome::Failed {
            message: "expected exit 0, got 1".into(),
            detail: String::new(),
            cause: None,
        };
        r.on_event(&Event::TestFinished {
            result: test("users", failed),
        })
        .unwrap();
        r.on_event(&Event::RunFinished {
            end: crate::runner::RunEnd::Stopped(crate::runner::stop::Stopped {
                reason: "--fail-fast: s::users failed".into(),
                not_run: 0,
                cancelled: Vec::new(),
            }),
        })
        .unwrap();
        assert!(!d.path().join("summary.json").exists());
        let page = std::fs::read_to_string(d.path().join("report.html")).unwrap();
        assert!(page.contains("expected exit 0, got 1"), "{page}");
        assert!(page.contains("Stopped early: --fail-fast: s::users failed"));
    }

    #[test]
    fn errors_name_the_file_and_the_json_location() {
        let d = tempfile::tempdir().unwrap();
        let e = write_report(&d.path().join("nope"), None).unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.to_string().ends_with("nope: no such run folder"), "{e}");

        let e = write_report(d.path(), None).unwrap_err();
        assert!(e.to_string().contains("summary.json: cannot read"), "{e}");

        std::fs::write(d.path().join("summary.json"), "{\n  \"tests\": [,]\n}").unwrap();
        let e = write_report(d.path(), None).unwrap_err();
        let want = format!(
            "{}:2:13: invalid JSON: expected value",
            d.path().join("summary.json").display()
        );
        assert_eq!(e.to_string(), want);

        std::fs::write(d.path().join("summary.json"), "[]").unwrap();
        let e = write_report(d.path(), None).unwrap_err();
        assert!(e.to_string().contains("not an Aviary summary"), "{e}");
    }

    #[test]
    fn picks_up_the_run_folders_verdict() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("summary.json"), r#"{"tests": []}"#).unwrap();
        let page = write_report(d.path(), None).unwrap();
        assert!(!std::fs::read_to_string(&page)
            .unwrap()
            .contains("id=\"verdict\""));
        std::fs::write(d.path().join("verdict.json"), r#"{"verdict": "hold"}"#).unwrap();
        write_report(d.path(), None).unwrap();
        assert!(std::fs::read_to_string(&page).unwrap().contains("HOLD"));
        let e = write_report(d.path(), Some(&d.path().join("other.json"))).unwrap_err();
        assert!(e.to_string().contains("other.json: cannot read"), "{e}");
    }
}
