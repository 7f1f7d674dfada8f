//! `copy: { on, from_host | from_guest, to }`.

use super::{machine, Checked};
use crate::suite::model::{CopyDirection, CopyStep, StepKind};
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyDef {
    pub on: S<String>,
    #[serde(default)]
    pub from_host: Option<S<String>>,
    #[serde(default)]
    pub from_guest: Option<S<String>>,
    pub to: S<String>,
}

pub(super) fn check(
    v: &mut Validator,
    c: &CopyDef,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let f = format!("{field}.copy");
    let on = machine(v, &c.on, &format!("{f}.on"), declared);
    let copy = match (&c.from_host, &c.from_guest) {
        (Some(h), None) => {
            let p = v.dir.join(&h.value);
            if !p.is_file() {
                v.err(
                    h,
                    format!("{f}.from_host"),
                    format!("host file `{}` does not exist", p.display()),
                );
            }
            if !c.to.value.starts_with('/') {
                v.err(&c.to, format!("{f}.to"), "guest path must be absolute");
            }
            CopyStep {
                direction: CopyDirection::In,
                from: p.to_string_lossy().into_owned(),
                to: c.to.value.clone(),
            }
        }
        (None, Some(g)) => {
            let to = &c.to.value;
            if to.starts_with('/') || to.split('/').any(|p| p == "..") || to.is_empty() {
                v.err(
                    &c.to,
                    format!("{f}.to"),
                    "expected a relative name inside the test's artifact folder",
                );
            }
            CopyStep {
                direction: CopyDirection::Out,
                from: g.value.clone(),
                to: to.clone(),
            }
        }
        _ => {
            v.err(&c.on, &f, "expected exactly one of from_host, from_guest");
            return None;
        }
    };
    Some((on, StepKind::Copy(copy)))
}
