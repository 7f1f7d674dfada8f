//! What the suite's checks share: where each value was written, the problems found so far, and
//! the checks every verb uses (durations, placeholders, patterns). `load.rs` checks a file's
//! suite and tests with it, `machines.rs` their machines, `verbs/` their steps.

use super::duration;
use super::errors::LoadError;
use super::model::*;
use super::template;
use serde_saphyr::Spanned;
use std::path::PathBuf;
use std::time::Duration;

/// A value with the place it was written.
pub type S<T> = Spanned<T>;

/// What the loader needs to know about the world: the channels that exist.
#[derive(Debug, Clone)]
pub struct LoadContext {
    pub channels: Vec<String>,
}

/// Checks a parsed suite file and builds the model, recording every problem it finds. A test's
/// machines are checked in `machines.rs`, its steps in `verbs/` (one file a verb).
pub(super) struct Validator<'a> {
    pub(super) file: PathBuf,
    /// The suite's folder: host paths are relative to it.
    pub(super) dir: PathBuf,
    pub(super) ctx: &'a LoadContext,
    pub(super) errors: Vec<LoadError>,
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

    pub(super) fn boot_mode(&mut self, s: &Option<S<String>>, field: &str) -> Option<BootMode> {
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
}
