//! images/promotion.yaml: what a release must show before it moves from one channel to the next.
//! Loading validates everything and names file:line:column and the field, like suite files.

use super::budget::{Budget, Phase};
use super::exercise::{EvidencePolicy, Mode};
use crate::suite::{duration, LoadError, LoadErrors, Loc};
use serde::Deserialize;
use serde_saphyr::Spanned as S;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long before its expiry a known issue starts to warn, unless a transition says otherwise.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    transitions: S<Vec<S<TransitionDef>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionDef {
    from: S<String>,
    to: S<String>,
    #[serde(default)]
    required_suites: Vec<S<String>>,
    #[serde(default)]
    required_tests: Vec<S<String>>,
    #[serde(default)]
    min_runs: Option<S<u32>>,
    #[serde(default)]
    min_soak: Option<S<String>>,
    #[serde(default)]
    flake_budget: Option<S<u32>>,
    #[serde(default)]
    expiry_warning: Option<S<String>>,
    #[serde(default)]
    known_issues: Vec<S<KnownIssueDef>>,
    #[serde(default)]
    evidence: Option<S<EvidenceDef>>,
    /// Phase → its budget.
    #[serde(default)]
    budgets: Ordered<S<BudgetDef>>,
}

/// One regression budget: how much slower (or bigger) the candidate may be than the release it
/// would replace. Passing both limits holds the release.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetDef {
    #[serde(default)]
    ratio: Option<S<f64>>,
    #[serde(default)]
    seconds: Option<S<f64>>,
    #[serde(default)]
    mib: Option<S<f64>>,
}

/// `evidence:`: what a test must have done with the release for its pass to count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceDef {
    #[serde(default)]
    default: Option<S<String>>,
    /// Suite name → mode.
    #[serde(default)]
    suites: Ordered<S<String>>,
    /// Glob over SUITE::TEST → mode, tried in the file's order.
    #[serde(default)]
    tests: Ordered<S<String>>,
}

/// A YAML mapping read in the file's order.
#[derive(Debug)]
struct Ordered<V>(Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownIssueDef {
    tests: S<String>,
    #[serde(default)]
    message: Option<S<String>>,
    tracker: S<String>,
    reason: S<String>,
    expires: S<String>,
}

/// The rules for one channel transition.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub loc: Loc,
    pub required_suites: Vec<String>,
    /// `suite::test` ids.
    pub required_tests: Vec<String>,
    /// Every required test passed in at least this many runs.
    pub min_runs: u32,
    /// Time since the release entered its channel.
    pub min_soak: Duration,
    /// Flaky tests (failed, then passed on a retry) allowed.
    pub flake_budget: u32,
    pub expiry_warning: Duration,
    pub known_issues: Vec<KnownIssue>,
    /// What a passing test must have done with the release to count for it.
    pub evidence: EvidencePolicy,
    /// Regression budgets against the release it would replace (`gate::budget`).
    pub budgets: Vec<Budget>,
}

/// A failure that is understood and tracked: waived until it expires.
#[derive(Debug, Clone)]
pub struct KnownIssue {
    /// Glob over `suite::test`.
    pub tests: String,
    pub matcher: globset::GlobMatcher,
    /// Regex over the failure's message; None matches any failure of those tests.
    pub message: Option<regex::Regex>,
    pub tracker: String,
    pub reason: String,
    /// The expiry date as written (YYYY-MM-DD), and its end (the next midnight UTC) in seconds.
    pub expires: String,
    pub expires_at: i64,
    pub loc: Loc,
}

impl KnownIssue {
    pub fn matches(&self, test_id: &str, message: &str) -> bool {
        self.matcher.is_match(test_id) && self.message.as_ref().is_none_or(|r| r.is_match(message))
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    pub transitions: Vec<Transition>,
}

impl Policy {
    pub fn transition(&self, from: &str, to: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.from == from && t.to == to)
    }
}

pub fn load_file(path: &Path, channels: &[String]) -> Result<Policy, LoadErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadErrors(vec![LoadError::whole_file(
            path,
            format!("cannot read the promotion policy: {e}"),
        )])
    })?;
    load_str(path, &text, channels)
}

pub fn load_str(path: &Path, text: &str, channels: &[String]) -> Result<Policy, LoadErrors> {
    let parsed: PolicyFile = serde_saphyr::from_str(text).map_err(|e| {
        let mut err = LoadError::yaml(path, &e);
        if err.message.contains("unknown field") {
            err.hint = Some("images/promotion.yaml documents the keys a transition takes".into());
        }
        LoadErrors(vec![err])
    })?;
    let mut v = Check {
        file: path.to_path_buf(),
        channels,
        errors: Vec::new(),
    };
    let mut transitions: Vec<Transition> = Vec::new();
    for (i, t) in parsed.transitions.value.iter().enumerate() {
        if let Some(t) = v.transition(&format!("transitions[{i}]"), t) {
            if let Some(prev) = transitions
                .iter()
                .find(|p| p.from == t.from && p.to == t.to)
            {
                v.errors.push(LoadError {
                    loc: t.loc.clone(),
                    field: format!("transitions[{i}]"),
                    message: format!(
                        "a second rule set for {} -> {} (the first is at {})",
                        t.from, t.to, prev.loc
                    ),
                    hint: None,
                });
            }
            transitions.push(t);
        }
    }
    if v.errors.is_empty() {
        Ok(Policy {
            path: path.to_path_buf(),
            transitions,
        })
    } else {
        Err(LoadErrors(v.errors))
    }
}

struct Check<'a> {
    file: PathBuf,
    channels: &'a [String],
    errors: Vec<LoadError>,
}

impl Check<'_> {
    fn loc<T>(&self, s: &S<T>) -> Loc {
        Loc {
            file: self.file.clone(),
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }

    fn err<T>(&mut self, at: &S<T>, field: String, message: String) {
        let loc = self.loc(at);
        self.errors.push(LoadError {
            loc,
            field,
            message,
            hint: None,
        });
    }

    fn channel(&mut self, s: &S<String>, field: String) -> bool {
        if self.channels.contains(&s.value) {
            return true;
        }
        let known = self.channels.join(", ");
        self.err(
            s,
            field,
            format!("unknown channel `{}`; channels.yaml has: {known}", s.value),
        );
        false
    }

    fn span(&mut self, s: &Option<S<String>>, field: String, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => duration::parse_span(&s.value).unwrap_or_else(|m| {
                self.err(s, field, m);
                default
            }),
        }
    }

    fn transition(&mut self, field: &str, t: &S<TransitionDef>) -> Option<Transition> {
        let before = self.errors.len();
        let d = &t.value;
        self.channel(&d.from, format!("{field}.from"));
        self.channel(&d.to, format!("{field}.to"));
        if d.from.value == d.to.value {
            self.err(
                &d.to,
                format!("{field}.to"),
                "a transition goes from one channel to another".into(),
            );
        }
        for (i, s) in d.required_suites.iter().enumerate() {
            if !is_name(&s.value) {
                self.err(
                    s,
                    format!("{field}.required_suites[{i}]"),
                    format!("`{}` is not a suite name (letters, digits, - _ .)", s.value),
                );
            }
        }
        for (i, s) in d.required_tests.iter().enumerate() {
            let ok = s
                .value
                .split_once("::")
                .is_some_and(|(a, b)| is_name(a) && is_test_pattern(b));
            if !ok {
                self.err(
                    s,
                    format!("{field}.required_tests[{i}]"),
                    format!(
                        "`{}` is not a test id; expected SUITE::TEST (TEST may be a glob such as stable-to-beta*)",
                        s.value
                    ),
                );
            }
        }
        let evidence = match &d.evidence {
            Some(e) => self.evidence(&format!("{field}.evidence"), &e.value),
            None => EvidencePolicy::default(),
        };
        let budgets = d
            .budgets
            .0
            .iter()
            .filter_map(|(phase, b)| self.budget(&format!("{field}.budgets.{phase}"), phase, b))
            .collect();
        let min_soak = self.span(&d.min_soak, format!("{field}.min_soak"), Duration::ZERO);
        let expiry_warning = self.span(
            &d.expiry_warning,
            format!("{field}.expiry_warning"),
            DEFAULT_EXPIRY_WARNING,
        );
        if let Some(m) = &d.min_runs {
            if m.value == 0 {
                self.err(
                    m,
                    format!("{field}.min_runs"),
                    "must be at least 1: a release with no run shows nothing".into(),
                );
            }
        }
        let mut known_issues = Vec::new();
        for (i, k) in d.known_issues.iter().enumerate() {
            if let Some(k) = self.known_issue(&format!("{field}.known_issues[{i}]"), k) {
                known_issues.push(k);
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Transition {
            from: d.from.value.clone(),
            to: d.to.value.clone(),
            loc: self.loc(t),
            required_suites: d.required_suites.iter().map(|s| s.value.clone()).collect(),
            required_tests: d.required_tests.iter().map(|s| s.value.clone()).collect(),
            min_runs: d.min_runs.as_ref().map_or(1, |m| m.value),
            min_soak,
            flake_budget: d.flake_budget.as_ref().map_or(0, |f| f.value),
            expiry_warning,
            known_issues,
            evidence,
            budgets,
        })
    }

    fn budget(&mut self, field: &str, phase: &str, b: &S<BudgetDef>) -> Option<Budget> {
        let Some(p) = Phase::parse(phase) else {
            self.err(
                b,
                field.to_string(),
                format!(
                    "unknown phase `{phase}`; expected one of {}",
                    Phase::names()
                ),
            );
            return None;
        };
        let d = &b.value;
        let before = self.errors.len();
        if let Some(r) = &d.ratio {
            if !(r.value >= 1.0 && r.value.is_finite()) {
                self.err(
                    r,
                    format!("{field}.ratio"),
                    format!(
                        "`{}` is not a ratio of at least 1 (1.25 allows 25 % more)",
                        r.value
                    ),
                );
            }
        }
        let (abs, wrong) = if p.is_memory() {
            (&d.mib, d.seconds.as_ref().map(|s| (s, "seconds", "mib")))
        } else {
            (&d.seconds, d.mib.as_ref().map(|s| (s, "mib", "seconds")))
        };
        if let Some((s, key, want)) = wrong {
            self.err(
                s,
                format!("{field}.{key}"),
                format!(
                    "phase `{phase}` is measured in {}; give `{want}`",
                    if p.is_memory() { "MiB" } else { "seconds" }
                ),
            );
        }
        if let Some(a) = abs {
            if !(a.value >= 0.0 && a.value.is_finite()) {
                self.err(
                    a,
                    format!("{field}.{}", if p.is_memory() { "mib" } else { "seconds" }),
                    format!("`{}` is not an amount of at least 0", a.value),
                );
            }
        }
        if d.ratio.is_none() && abs.is_none() && wrong.is_none() {
            self.err(
                b,
                field.to_string(),
                "a budget needs `ratio`, or `seconds` (`mib` for memory), or both".into(),
            );
        }
        (self.errors.len() == before).then(|| Budget {
            phase: p,
            ratio: d.ratio.as_ref().map(|r| r.value),
            abs: abs.as_ref().map(|a| a.value),
        })
    }

    fn mode(&mut self, s: &S<String>, field: String) -> Mode {
        Mode::parse(&s.value).unwrap_or_else(|| {
            self.err(
                s,
                field,
                format!(
                    "unknown evidence mode `{}`; expected one of {}",
                    s.value,
                    Mode::NAMES
                ),
            );
            Mode::Auto
        })
    }

    fn evidence(&mut self, field: &str, d: &EvidenceDef) -> EvidencePolicy {
        let mut p = EvidencePolicy::default();
        if let Some(m) = &d.default {
            p.default = self.mode(m, format!("{field}.default"));
        }
        for (suite, m) in &d.suites.0 {
            let mode = self.mode(m, format!("{field}.suites.{suite}"));
            if !is_name(suite) {
                self.err(
                    m,
                    format!("{field}.suites.{suite}"),
                    format!("`{suite}` is not a suite name (letters, digits, - _ .)"),
                );
            }
            p.suites.push((suite.clone(), mode));
        }
        for (glob, m) in &d.tests.0 {
            let mode = self.mode(m, format!("{field}.tests.{glob}"));
            match globset::Glob::new(glob) {
                Ok(g) if glob.contains("::") => p.tests.push((g.compile_matcher(), mode)),
                Ok(_) => self.err(
                    m,
                    format!("{field}.tests.{glob}"),
                    format!("`{glob}` is not a glob over SUITE::TEST (it has no `::`)"),
                ),
                Err(e) => self.err(
                    m,
                    format!("{field}.tests.{glob}"),
                    format!("`{glob}` is not a glob over SUITE::TEST: {e}"),
                ),
            }
        }
        p
    }

    fn known_issue(&mut self, field: &str, k: &S<KnownIssueDef>) -> Option<KnownIssue> {
        let before = self.errors.len();
        let d = &k.value;
        let matcher = match globset::Glob::new(&d.tests.value) {
            Ok(g) => Some(g.compile_matcher()),
            Err(e) => {
                self.err(
                    &d.tests,
                    format!("{field}.tests"),
                    format!("not a glob over SUITE::TEST: {e}"),
                );
                None
            }
        };
        let message = d
            .message
            .as_ref()
            .and_then(|m| match regex::Regex::new(&m.value) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.err(
                        m,
                        format!("{field}.message"),
                        format!("not a regex: {}", crate::suite::regex_reason(&e)),
                    );
                    None
                }
            });
        let url = &d.tracker.value;
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            self.err(
                &d.tracker,
                format!("{field}.tracker"),
                format!("`{url}` is not a link to the issue tracker (http:// or https://…)"),
            );
        }
        if d.reason.value.trim().is_empty() {
            self.err(
                &d.reason,
                format!("{field}.reason"),
                "say why the failure is waived".into(),
            );
        }
        let expires_at = match crate::clock::parse_date(&d.expires.value) {
            Ok(t) => t + 86_400,
            Err(m) => {
                self.err(&d.expires, format!("{field}.expires"), m);
                0
            }
        };
        if self.errors.len() > before {
            return None;
        }
        Some(KnownIssue {
            tests: d.tests.value.clone(),
            matcher: matcher?,
            message,
            tracker: url.clone(),
            reason: d.reason.value.clone(),
            expires: d.expires.value.clone(),
            expires_at,
            loc: self.loc(k),
        })
    }
}

/// A test name, or a glob over test names.
fn is_test_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '?' | '[' | ']')
        })
        && globset::Glob::new(s).is_ok()
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels() -> Vec<String> {
        ["alpha", "beta", "stable"].map(String::from).to_vec()
    }

    const GOOD: &str = "\
transitions:
  - from: beta
    to: stable
    required_suites: [provisioning]
    required_tests: [upgrade-rollback::stable-to-beta]
    min_runs: 2
    min_soak: 7d
    flake_budget: 1
    known_issues:
      - tests: \"containers::*\"
        message: \"OOM\"
        tracker: https://tracker.example/aviary/12
        reason: the kernel's OOM message changed
        expires: 2027-01-31
";

    fn errors(text: &str) -> String {
        load_str(Path::new("promotion.yaml"), text, &channels())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn loads_a_transition() {
        let p = load_str(Path::new("promotion.yaml"), GOOD, &channels()).unwrap();
        let t = p.transition("beta", "stable").unwrap();
        assert_eq!(t.min_runs, 2);
        assert_eq!(t.min_soak, Duration::from_secs(7 * 86_400));
        assert_eq!(t.flake_budget, 1);
        assert_eq!(t.expiry_warning, DEFAULT_EXPIRY_WARNING);
        let k = &t.known_issues[0];
        assert!(k.matches("containers::oom", "killed: OOM"));
        assert!(!k.matches("containers::oom", "timed out"));
        assert!(!k.matches("provisioning::x", "OOM"));
        assert_eq!(
            k.expires_at,
            crate::clock::parse_date("2027-02-01").unwrap()
        );
        assert!(p.transition("alpha", "beta").is_none());
    }

    #[test]
    fn every_bad_field_is_named_with_its_place() {
        let e = errors(&GOOD.replace("to: stable", "to: gamma"));
        assert!(
            e.contains("promotion.yaml:3:9: transitions[0].to: unknown channel `gamma`"),
            "{e}"
        );
        let e = errors(&GOOD.replace("min_soak: 7d", "min_soak: 7 days"));
        assert!(
            e.contains("transitions[0].min_soak: `7 days` is not a duration"),
            "{e}"
        );
        let e = errors(&GOOD.replace("2027-01-31", "2027-02-30"));
        assert!(
            e.contains(
                "transitions[0].known_issues[0].expires: `2027-02-30` is not a calendar date"
            ),
            "{e}"
        );
        let e = errors(&GOOD.replace("https://tracker.example/aviary/12", "AV-12"));
        assert!(
            e.contains("known_issues[0].tracker: `AV-12` is not a link"),
            "{e}"
        );
        let e = errors(&GOOD.replace("message: \"OOM\"", "message: \"(\""));
        assert!(e.contains("known_issues[0].message: not a regex"), "{e}");
        let e = errors(&GOOD.replace("upgrade-rollback::stable-to-beta", "stable-to-beta"));
        assert!(e.contains("expected SUITE::TEST"), "{e}");
        let e = errors(&GOOD.replace("min_runs: 2", "min_runs: 0"));
        assert!(
            e.contains("transitions[0].min_runs: must be at least 1"),
            "{e}"
        );
        let e = errors(&GOOD.replace("to: stable", "to: beta"));
        assert!(e.contains("from one channel to another"), "{e}");
        let e = errors(&GOOD.replace("flake_budget", "flake_budjet"));
        assert!(
            e.contains("promotion.yaml:8:5") && e.contains("flake_budjet"),
            "{e}"
        );
        let e = errors(&GOOD.replace("flake_budget: 1", "flake_budget: -1"));
        assert!(e.starts_with("error: promotion.yaml:8:"), "{e}");
        let twice = format!("{GOOD}{}", &GOOD["transitions:\n".len()..]);
        let e = errors(&twice);
        assert!(
            e.contains("a second rule set for beta -> stable (the first is at promotion.yaml:2:5)"),
            "{e}"
        );
    }
}
