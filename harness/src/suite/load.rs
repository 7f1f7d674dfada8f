//! Loading and validating suite files. Everything is checked here, before any VM starts.

use super::duration;
use super::machines::valid_machine_name;
use super::model::*;
use super::raw::{self, S};
use super::template;
use super::verbs;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Machines one test may declare: far more than one host runs, and few enough that the
/// cluster's default addresses (10.77.0.11 up) and MACs stay in their last byte.
pub const MAX_MACHINES: usize = 64;

/// One problem in a suite file, at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub loc: Loc,
    /// The field's path in the document, e.g. `tests[1].steps[0].run.on`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.loc, self.message)?;
        } else {
            write!(f, "{}: {}: {}", self.loc, self.field, self.message)?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl LoadError {
    /// A problem with the file as a whole (it cannot be read).
    pub fn whole_file(path: &Path, message: String) -> LoadError {
        LoadError {
            loc: Loc {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
            },
            field: String::new(),
            message,
            hint: None,
        }
    }

    /// serde-saphyr's parse error, at its place, in words for the user (see [`yaml_message`]),
    /// with a hint where one helps. An error without a place (not UTF-8) is put at 1:1.
    pub fn yaml(path: &Path, e: &serde_saphyr::Error) -> LoadError {
        let inner = e.without_snippet();
        let (line, column) = inner
            .location()
            .map(|l| (l.line().max(1), l.column().max(1)))
            .unwrap_or((1, 1));
        let message = yaml_message(&inner.to_string());
        LoadError {
            loc: Loc {
                file: path.to_path_buf(),
                line,
                column,
            },
            field: String::new(),
            hint: yaml_hint(&message),
            message,
        }
    }
}

/// All the problems found in one or more suite files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// What the loader needs to know about the world: the channels that exist.
#[derive(Debug, Clone)]
pub struct LoadContext {
    pub channels: Vec<String>,
}

/// Reads and validates one suite file.
pub fn load_file(path: &Path, ctx: &LoadContext) -> Result<Suite, LoadErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadErrors(vec![LoadError::whole_file(
            path,
            format!("cannot read suite file: {e}"),
        )])
    })?;
    load_str(path, &text, ctx)
}

/// Validates suite text; `path` is used for locations and to resolve relative host paths.
pub fn load_str(path: &Path, text: &str, ctx: &LoadContext) -> Result<Suite, LoadErrors> {
    let parsed: raw::SuiteFile = serde_saphyr::from_str(text).map_err(|e| {
        let mut err = LoadError::yaml(path, &e);
        err.hint = hint_for(&err.message);
        LoadErrors(vec![err])
    })?;
    let mut v = Validator {
        file: path.to_path_buf(),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        ctx,
        errors: Vec::new(),
    };
    let suite = v.suite(parsed, text);
    if v.errors.is_empty() {
        Ok(suite)
    } else {
        Err(LoadErrors(v.errors))
    }
}

/// serde-saphyr appends "at line X, column Y"; we print the location first instead.
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    match first.rfind(" at line ") {
        Some(i) => first[..i].trim_end_matches(',').to_string(),
        None => first.to_string(),
    }
}

/// serde-saphyr's message as a user reads it: without its location, without its advice to
/// the programmer (`set … in Options`), numbers' ranges and its limits said in words.
fn yaml_message(msg: &str) -> String {
    let m = strip_location(msg);
    for advice in [", set DuplicateKeyPolicy", ". If you just use !!binary"] {
        if let Some(i) = m.find(advice) {
            return m[..i].to_string();
        }
    }
    let range = match m.strip_prefix("invalid ") {
        Some("u16") => Some("0 to 65535"),
        Some("u32") => Some("0 to 4294967295"),
        Some("u64") => Some("0 to 18446744073709551615"),
        Some("i32") => Some("-2147483648 to 2147483647"),
        _ => None,
    };
    if let Some(r) = range {
        return format!("expected a whole number from {r}");
    }
    if let Some(b) = m.strip_prefix("budget breached: ") {
        if b.starts_with("Depth") {
            return "nested too deeply (more than 64 levels of lists and mappings)".into();
        }
        return format!("the document is too large or too complex ({b})");
    }
    m
}

/// Hints for what any YAML reader may meet.
fn yaml_hint(message: &str) -> Option<String> {
    if message == "unexpected end of input" {
        Some("the file is empty, or it ends early".into())
    } else if message.starts_with("tabs disallowed") {
        Some("indent with spaces; YAML does not allow tabs there".into())
    } else {
        None
    }
}

/// Hints for suite files, over [`yaml_hint`]'s.
fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") || message.contains("unknown variant") {
        Some("see docs/suite-language.md for the keys each level takes".into())
    } else if message == "expected end of mapping after enum variant value" {
        Some(verbs::ONE_KEY.into())
    } else {
        yaml_hint(message)
    }
}

/// Checks a parsed suite file and builds the model, recording every problem it finds. A test's
/// machines are checked in `machines.rs`, its steps in `verbs/` (one file a verb).
pub(super) struct Validator<'a> {
    file: PathBuf,
    /// The suite's folder: host paths are relative to it.
    pub(super) dir: PathBuf,
    pub(super) ctx: &'a LoadContext,
    errors: Vec<LoadError>,
}

impl Validator<'_> {
    pub(super) fn loc<T>(&self, s: &S<T>) -> Loc {
        Loc {
            file: self.file.clone(),
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }

    pub(super) fn err<T>(
        &mut self,
        at: &S<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.err_hint(at, field, message, None);
    }

    pub(super) fn err_loc(
        &mut self,
        loc: Loc,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(LoadError {
            loc,
            field: field.into(),
            message: message.into(),
            hint: None,
        });
    }

    pub(super) fn err_hint<T>(
        &mut self,
        at: &S<T>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let loc = self.loc(at);
        self.errors.push(LoadError {
            loc,
            field: field.into(),
            message: message.into(),
            hint,
        });
    }

    fn boot_mode(&mut self, s: &Option<S<String>>, field: &str) -> Option<BootMode> {
        let s = s.as_ref()?;
        match s.value.as_str() {
            "snapshot" => Some(BootMode::Snapshot),
            "cold" => Some(BootMode::Cold),
            other => {
                self.err(
                    s,
                    field,
                    format!("unknown boot mode `{other}`; expected `snapshot` or `cold`"),
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, s: &Option<S<String>>, field: &str) -> Option<Duration> {
        let s = s.as_ref()?;
        match duration::parse(&s.value) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(s, field, m);
                None
            }
        }
    }

    /// Checks the `{{ … }}` placeholders of a string.
    pub(super) fn templates(&mut self, s: &S<String>, field: &str) {
        match template::placeholders(&s.value) {
            Ok(paths) => {
                for p in paths {
                    if let Err(m) = template::check_path(&p, &self.ctx.channels) {
                        self.err(s, field, m);
                    }
                }
            }
            Err(m) => self.err(s, field, m),
        }
    }

    pub(super) fn pattern(&mut self, s: &Option<S<String>>, field: &str) -> Option<Pattern> {
        let s = s.as_ref()?;
        self.templates(s, field);
        // Placeholders expand to plain text; check the rest of the regex now.
        let probe = s.value.replace("{{", "").replace("}}", "");
        if let Err(e) = Pattern::compile(&probe) {
            self.err(
                s,
                field,
                format!("invalid regular expression: {}", regex_reason(&e)),
            );
        }
        Some(Pattern(s.value.clone()))
    }

    fn suite(&mut self, f: raw::SuiteFile, text: &str) -> Suite {
        if !valid_name(&f.suite.value) {
            self.err(
                &f.suite,
                "suite",
                format!(
                    "`{}` is not a valid suite name; use letters, digits, '-', '_' and '.'",
                    f.suite.value
                ),
            );
        }
        let defaults = f.defaults.unwrap_or_default();
        let default_timeout = self
            .duration(&defaults.timeout, "defaults.timeout")
            .unwrap_or(DEFAULT_TEST_TIMEOUT);
        let default_boot = self
            .boot_mode(&defaults.boot, "defaults.boot")
            .unwrap_or_default();
        let default_image = defaults.image.map(|i| {
            let r = self.image_ref(&i, "defaults.image");
            (i, r)
        });
        if f.tests.value.is_empty() {
            self.err(&f.tests, "tests", "a suite needs at least one test");
        }
        let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
        let mut tests = Vec::new();
        for (i, t) in f.tests.value.into_iter().enumerate() {
            let field = format!("tests[{i}]");
            if let Some(first) = seen.get(&t.name.value) {
                let first = first.clone();
                self.err(
                    &t.name,
                    format!("{field}.name"),
                    format!("duplicate test name `{}` (first at {first})", t.name.value),
                );
            }
            seen.insert(t.name.value.clone(), self.loc(&t.name));
            tests.push(self.test(
                t,
                &field,
                &f.suite.value,
                default_timeout,
                default_boot,
                default_image.as_ref().map(|(_, r)| r.clone()),
            ));
        }
        Suite {
            name: f.suite.value,
            description: f.description,
            path: self.file.clone(),
            source: text.to_string(),
            tests,
        }
    }

    pub(super) fn image_ref(&mut self, s: &S<String>, field: &str) -> ImageRef {
        let v = s.value.trim();
        if ImageRef::names_a_file(v) {
            let p = PathBuf::from(v);
            let p = if p.is_absolute() { p } else { self.dir.join(p) };
            if !p.is_file() {
                self.err(
                    s,
                    field,
                    format!("image file `{}` does not exist", p.display()),
                );
            }
            ImageRef::Path(p)
        } else {
            if !self.ctx.channels.iter().any(|c| c == v) {
                let known = self.ctx.channels.join(", ");
                self.err_hint(
                    s,
                    field,
                    format!("unknown image `{v}`; known channels: {known}"),
                    Some("an image is a channel from images/channels.yaml or a path to a .qcow2 file".into()),
                );
            }
            ImageRef::Channel(v.to_string())
        }
    }

    fn test(
        &mut self,
        t: raw::TestDef,
        field: &str,
        suite: &str,
        default_timeout: Duration,
        default_boot: BootMode,
        default_image: Option<ImageRef>,
    ) -> Test {
        if !valid_name(&t.name.value) {
            self.err(
                &t.name,
                format!("{field}.name"),
                format!(
                    "`{}` is not a valid test name; use letters, digits, '-', '_' and '.'",
                    t.name.value
                ),
            );
        }
        if t.machines.value.is_empty() {
            self.err(
                &t.machines,
                format!("{field}.machines"),
                "a test needs at least one machine",
            );
        }
        if t.machines.value.len() > MAX_MACHINES {
            self.err(
                &t.machines,
                format!("{field}.machines"),
                format!(
                    "{} machines; a test declares at most {MAX_MACHINES}",
                    t.machines.value.len()
                ),
            );
        }
        let mut machines = Vec::new();
        for (name, m) in &t.machines.value {
            let mfield = format!("{field}.machines.{name}");
            if !valid_machine_name(name) {
                self.err(
                    m,
                    &mfield,
                    format!("`{name}` is not a valid machine name; use 1-32 lowercase letters, digits and '-'"),
                );
            }
            machines.push(self.machine(name, &m.value, m, &mfield, default_image.clone()));
        }
        self.cluster(&mut machines, &t.machines, field);
        let declared: BTreeSet<String> = t.machines.value.keys().cloned().collect();
        let timeout = self
            .duration(&t.timeout, &format!("{field}.timeout"))
            .unwrap_or(default_timeout);
        let boot = self
            .boot_mode(&t.boot, &format!("{field}.boot"))
            .unwrap_or(default_boot);
        let checks = t.checks.unwrap_or_default();
        let checks = Checks {
            console: checks.console.unwrap_or(true),
            journal: checks.journal.unwrap_or(true),
            failed_units: checks.failed_units.unwrap_or(true),
        };
        if t.steps.value.is_empty() {
            self.err(
                &t.steps,
                format!("{field}.steps"),
                "a test needs at least one step",
            );
        }
        let mut steps = Vec::new();
        let mut setup = 0;
        if let Some(list) = &t.setup {
            if list.value.is_empty() {
                self.err(
                    list,
                    format!("{field}.setup"),
                    "an empty setup; leave `setup:` out or give it steps",
                );
            }
            for (j, s) in list.value.iter().enumerate() {
                let sfield = format!("{field}.setup[{j}]");
                if let Some(step) = verbs::step(self, s, &sfield, &declared) {
                    steps.push(step);
                }
            }
            setup = steps.len();
        }
        for (j, s) in t.steps.value.iter().enumerate() {
            let sfield = format!("{field}.steps[{j}]");
            if let Some(step) = verbs::step(self, s, &sfield, &declared) {
                steps.push(step);
            }
        }
        Test {
            loc: self.loc(&t.name),
            name: t.name.value,
            description: t.description,
            suite: suite.to_string(),
            machines,
            timeout,
            checks,
            boot,
            setup,
            steps,
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
