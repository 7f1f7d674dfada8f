//! Loading a suite file: parse it (`raw.rs`), then check the suite and each test, building the
//! model. Everything is checked here, before any VM starts.

use super::errors::{yaml_hint, LoadError, LoadErrors};
use super::machines::{valid_machine_name, MAX_MACHINES};
use super::model::*;
use super::raw::{self, S};
use super::validator::{LoadContext, Validator};
use super::verbs;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(600);

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

impl Validator<'_> {
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
