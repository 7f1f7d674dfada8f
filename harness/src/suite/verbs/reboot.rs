//! `reboot: MACHINE`.

use super::{machine, Checked};
use crate::suite::load::Validator;
use crate::suite::model::StepKind;
use crate::suite::raw::S;
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
