//! Reading images/profiles/NAME.yaml: every field required, unknown fields refused, and each
//! mechanism checked against what it needs; errors at FILE:LINE:COLUMN.

use super::{BootedSlot, Mechanism, Profile};
use crate::suite::{LoadError, Loc};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The profiles of a workspace (its images/profiles folder), each read once.
#[derive(Debug, Clone)]
pub struct Profiles {
    dir: PathBuf,
    read: Arc<Mutex<BTreeMap<String, Arc<Profile>>>>,
}

impl Profiles {
    pub fn new(dir: PathBuf) -> Profiles {
        Profiles {
            dir,
            read: Default::default(),
        }
    }

    /// The profile called `name`; an unknown name's error lists the known ones.
    pub fn get(&self, name: &str) -> Result<Arc<Profile>, String> {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = read.get(name) {
            return Ok(p.clone());
        }
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let path = self.dir.join(format!("{name}.yaml"));
        if !ok || !path.is_file() {
            return Err(format!(
                "no profile `{name}` (known: {}; a profile is a file {}/NAME.yaml)",
                self.known().join(", "),
                self.dir.display()
            ));
        }
        let p = Arc::new(load(&path).map_err(|e| e.to_string())?);
        read.insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// The names of the profiles in the folder.
    pub fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.strip_suffix(".yaml").map(String::from)
            })
            .collect();
        names.sort();
        names
    }
}

/// Reads and checks one profile file; its name is the file's stem.
pub fn load(path: &Path) -> Result<Profile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        loc: Loc {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
        },
        field: String::new(),
        message: format!("cannot read the profile: {e}"),
        hint: None,
    })?;
    parse(path, &text)
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Profile, LoadError> {
    let mut p: Profile = serde_saphyr::from_str(text).map_err(|e| LoadError::yaml(path, &e))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let named = std::mem::replace(&mut p.name, stem);
    let checked = match named.is_empty() || named == p.name {
        true => check(&p),
        false => Err((
            "name".into(),
            format!("expected `{}`, the file's name", p.name),
        )),
    };
    if let Err((field, message)) = checked {
        let (line, column) = place(text, &field);
        return Err(LoadError {
            loc: Loc {
                file: path.to_path_buf(),
                line,
                column,
            },
            field,
            message,
            hint: None,
        });
    }
    Ok(p)
}

/// The first field that does not hold together: its dotted path and why.
fn check(p: &Profile) -> Result<(), (String, String)> {
    let bad = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
    if !p.ignition_fw_cfg.starts_with("opt/") || p.ignition_fw_cfg.len() <= 4 {
        return bad(
            "ignition_fw_cfg",
            "expected a fw_cfg key under opt/, e.g. opt/com.coreos/config",
        );
    }
    if matches!(&p.booted_slot, BootedSlot::Cmdline(k) if k.is_empty() || k.contains(char::is_whitespace))
    {
        return bad("booted_slot", "expected {cmdline: KEY}, KEY one word");
    }
    let labels = &p.slots.partitions;
    if labels.A.is_empty() || labels.A == labels.B {
        return bad(
            "slots.partitions",
            "expected two different partition labels, {A: LABEL, B: LABEL}",
        );
    }
    if matches!(p.update, Mechanism::Apply) {
        return bad("update", "expected aviary-agent or {skip: WHY}");
    }
    for (name, m) in p.faults.named() {
        let field = format!("faults.{name}");
        match m {
            Mechanism::AviaryAgent => return bad(&field, "expected apply or {skip: WHY}"),
            Mechanism::Skip(why) if why.trim().is_empty() => {
                return bad(&field, "a skip says why the scenario has no meaning here")
            }
            Mechanism::Apply if name == "panic" && p.slots.init.is_none() => {
                return bad(
                    &field,
                    "applying it needs slots.init (init's path in a slot)",
                )
            }
            Mechanism::Apply if name == "health_fail" && p.slots.health_dir.is_none() => {
                return bad(&field, "applying it needs slots.health_dir")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where a dotted field (`update`, `faults.panic`) starts in the text; 1:1 when it cannot tell.
fn place(text: &str, field: &str) -> (u64, u64) {
    #[derive(Deserialize)]
    struct Nested {
        #[serde(default)]
        slots: HashMap<String, Spanned<IgnoredAny>>,
        #[serde(default)]
        faults: HashMap<String, Spanned<IgnoredAny>>,
    }
    let at = |s: &Spanned<IgnoredAny>| {
        let l = &s.referenced;
        (l.line().max(1), l.column().max(1))
    };
    let found = match field.split_once('.') {
        None => serde_saphyr::from_str::<HashMap<String, Spanned<IgnoredAny>>>(text)
            .ok()
            .and_then(|top| top.get(field).map(at)),
        Some((outer, inner)) => serde_saphyr::from_str::<Nested>(text).ok().and_then(|n| {
            let m = if outer == "slots" { n.slots } else { n.faults };
            m.get(inner).map(at)
        }),
    };
    found.unwrap_or((1, 1))
}

#[cfg(test)]
mod tests;
