//! A suite file's problems: each at FILE:LINE:COLUMN with the field, what was expected, and a
//! hint; YAML syntax errors rewritten the same way.

use super::model::Loc;
use std::fmt;
use std::path::Path;

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
pub(super) fn yaml_hint(message: &str) -> Option<String> {
    if message == "unexpected end of input" {
        Some("the file is empty, or it ends early".into())
    } else if message.starts_with("tabs disallowed") {
        Some("indent with spaces; YAML does not allow tabs there".into())
    } else {
        None
    }
}
