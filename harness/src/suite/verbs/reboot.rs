//! `reboot: MACHINE`.

use super::{machine, Checked};
use crate::suite::model::StepKind;
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use std::collections::BTreeSet;

pub(super) fn check(
    v: &mut Validator,
    on: &S<String>,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let on = machine(v, on, &format!("{field}.reboot"), declared);
    Some((on, StepKind::Reboot))
}
