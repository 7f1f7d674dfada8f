//! `wait_for: { on, unit | port | file | console, timeout }`.

use super::{machine, Checked};
use crate::suite::model::{StepKind, WaitCond, WaitForStep};
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForDef {
    pub on: S<String>,
    #[serde(default)]
    pub unit: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<u16>>,
    #[serde(default)]
    pub file: Option<S<String>>,
    #[serde(default)]
    pub console: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

pub(super) fn check(
    v: &mut Validator,
    w: &WaitForDef,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let f = format!("{field}.wait_for");
    let on = machine(v, &w.on, &format!("{f}.on"), declared);
    let n = [
        w.unit.is_some(),
        w.port.is_some(),
        w.file.is_some(),
        w.console.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        v.err(
            &w.on,
            &f,
            format!("expected exactly one of unit, port, file, console; found {n}"),
        );
        return None;
    }
    let cond = if let Some(u) = &w.unit {
        WaitCond::Unit(u.value.clone())
    } else if let Some(p) = &w.port {
        if p.value == 0 {
            v.err(p, format!("{f}.port"), "port must be 1..=65535");
        }
        WaitCond::Port(p.value)
    } else if let Some(file) = &w.file {
        WaitCond::File(file.value.clone())
    } else {
        WaitCond::Console(v.pattern(&w.console, &format!("{f}.console"))?)
    };
    let timeout = v.duration(&w.timeout, &format!("{f}.timeout"));
    Some((on, StepKind::WaitFor(WaitForStep { cond, timeout })))
}
