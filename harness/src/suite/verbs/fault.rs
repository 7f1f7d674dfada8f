//! `fault: { on, corrupt | panic | health_fail: inactive-slot }`.

use super::{machine, Checked};
use crate::suite::model::{Fault, StepKind};
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDef {
    pub on: S<String>,
    /// inactive-slot: zero the start of the inactive slot's filesystem.
    #[serde(default)]
    pub corrupt: Option<S<String>>,
    /// inactive-slot: its init exits at once, so its kernel panics at boot.
    #[serde(default)]
    pub panic: Option<S<String>>,
    /// inactive-slot: add a health check that always fails to it.
    #[serde(default)]
    pub health_fail: Option<S<String>>,
}

pub(super) fn check(
    v: &mut Validator,
    x: &FaultDef,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let f = format!("{field}.fault");
    let on = machine(v, &x.on, &format!("{f}.on"), declared);
    let given: Vec<(&S<String>, Fault, &str)> = [
        (x.corrupt.as_ref(), Fault::CorruptInactiveSlot, "corrupt"),
        (x.panic.as_ref(), Fault::PanicInactiveSlot, "panic"),
        (
            x.health_fail.as_ref(),
            Fault::HealthFailInactiveSlot,
            "health_fail",
        ),
    ]
    .into_iter()
    .filter_map(|(value, k, n)| value.map(|value| (value, k, n)))
    .collect();
    if given.len() != 1 {
        v.err(
            &x.on,
            &f,
            format!(
                "expected exactly one of corrupt, panic, health_fail; found {}",
                given.len()
            ),
        );
        return None;
    }
    let (value, fault, name) = given[0];
    if value.value != "inactive-slot" {
        v.err(
            value,
            format!("{f}.{name}"),
            format!("`{}` is not a target; expected inactive-slot", value.value),
        );
    }
    Some((on, StepKind::Fault(fault)))
}
