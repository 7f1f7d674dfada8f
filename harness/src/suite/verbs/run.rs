//! `run: { on, cmd, exit, stdout, stderr, timeout }`.

use super::{machine, Checked};
use crate::suite::model::{RunStep, StepKind};
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDef {
    pub on: S<String>,
    pub cmd: S<String>,
    #[serde(default)]
    pub exit: Option<i32>,
    #[serde(default)]
    pub stdout: Option<S<String>>,
    #[serde(default)]
    pub stderr: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

pub(super) fn check(
    v: &mut Validator,
    r: &RunDef,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let f = format!("{field}.run");
    let on = machine(v, &r.on, &format!("{f}.on"), declared);
    v.templates(&r.cmd, &format!("{f}.cmd"));
    let run = RunStep {
        cmd: r.cmd.value.clone(),
        exit: r.exit.unwrap_or(0),
        stdout: v.pattern(&r.stdout, &format!("{f}.stdout")),
        stderr: v.pattern(&r.stderr, &format!("{f}.stderr")),
        timeout: v.duration(&r.timeout, &format!("{f}.timeout")),
    };
    Some((on, StepKind::Run(run)))
}
