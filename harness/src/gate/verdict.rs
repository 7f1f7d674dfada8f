//! The gate's verdict: every reason, as verdict.json and as text a person reads.

use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Promote,
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Waived,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Waived => "WAIVED",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub rule: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracker: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub run_id: String,
    pub dir: PathBuf,
    pub started: String,
    pub tests: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub verdict: Decision,
    pub release: String,
    pub from: String,
    pub to: String,
    pub digest: String,
    pub evaluated_at: String,
    pub runs: Vec<RunRef>,
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// What the terminal shows: the failing reasons first, then warnings, waivers and passes.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "aviary gate: {} {} -> {} (sha256 {}), {} run(s)",
            self.from,
            self.release,
            self.to,
            self.digest.get(..16).unwrap_or(&self.digest),
            self.runs.len()
        );
        for status in [Status::Fail, Status::Warn, Status::Waived, Status::Pass] {
            for r in self.reasons.iter().filter(|r| r.status == status) {
                let _ = writeln!(s, "  {:<6}  {:<15} {}", status.label(), r.rule, r.message);
            }
        }
        let fails = self
            .reasons
            .iter()
            .filter(|r| r.status == Status::Fail)
            .count();
        match self.verdict {
            Decision::Promote => {
                let _ = writeln!(
                    s,
                    "verdict: PROMOTE {} from {} to {}",
                    self.release, self.from, self.to
                );
            }
            Decision::Hold => {
                let _ = writeln!(
                    s,
                    "verdict: HOLD {} in {} ({fails} reason(s) above marked FAIL)",
                    self.release, self.from
                );
            }
        }
        s
    }

    /// Writes verdict.json atomically; returns the sha256 of the bytes written.
    pub fn write(&self, path: &Path) -> anyhow::Result<String> {
        use anyhow::Context;
        let body = serde_json::to_string_pretty(self)? + "\n";
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &body).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(crate::images::cache::sha256_bytes(body.as_bytes()))
    }
}
