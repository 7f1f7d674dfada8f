//! The steps of a suite file, one verb a file: each holds the verb's definition as written
//! (serde types with spans) and its validation into the model's `StepKind`. `step` dispatches
//! one line per verb.

mod copy;
mod expect;
mod fault;
mod reboot;
mod run;
mod update;
mod wait_for;

use super::model::{Step, StepKind};
use super::validator::Validator;
use super::validator::S;
use serde::Deserialize;
use std::collections::BTreeSet;

/// A step as written: one key, the verb.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepDef {
    Run(run::RunDef),
    WaitFor(wait_for::WaitForDef),
    Reboot(S<String>),
    Copy(copy::CopyDef),
    Expect(expect::ExpectDef),
    Update(update::UpdateDef),
    Fault(fault::FaultDef),
}

/// The hint for a step written with two keys.
pub(super) const ONE_KEY: &str =
    "a step is one key: run, wait_for, reboot, copy, expect, update or fault";

/// A validated step: its machine and what it does.
type Checked = Option<(String, StepKind)>;

/// Validates one step at `field` (`tests[0].steps[1]`) of a test whose machines are
/// `declared`; None when it is too broken to build (its errors are recorded).
pub(super) fn step(
    v: &mut Validator,
    s: &S<StepDef>,
    field: &str,
    declared: &BTreeSet<String>,
) -> Option<Step> {
    let loc = v.loc(s);
    let (on, kind) = match &s.value {
        StepDef::Run(d) => run::check(v, d, field, declared),
        StepDef::WaitFor(d) => wait_for::check(v, d, field, declared),
        StepDef::Reboot(d) => reboot::check(v, d, field, declared),
        StepDef::Copy(d) => copy::check(v, d, field, declared),
        StepDef::Expect(d) => expect::check(v, d, field, declared),
        StepDef::Update(d) => update::check(v, d, field, declared),
        StepDef::Fault(d) => fault::check(v, d, field, declared),
    }?;
    Some(Step { loc, on, kind })
}

/// The machine a step names, which the test must declare.
fn machine(v: &mut Validator, on: &S<String>, field: &str, declared: &BTreeSet<String>) -> String {
    if !declared.contains(&on.value) {
        let known: Vec<&str> = declared.iter().map(String::as_str).collect();
        v.err_hint(
            on,
            field,
            format!(
                "machine `{}` is not declared by this test (declared: {})",
                on.value,
                known.join(", ")
            ),
            Some("declare it under the test's `machines:`".into()),
        );
    }
    on.value.clone()
}
