//! `update: { on, to, payload, expect, cut_power, timeout }`.

use super::{machine, Checked};
use crate::suite::model::{PayloadFault, StepKind, UpdateStep};
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDef {
    pub on: S<String>,
    /// The channel whose release the update server offers.
    pub to: S<String>,
    /// Serve a bad payload: corrupt | truncate | stall.
    #[serde(default)]
    pub payload: Option<S<String>>,
    /// installed (default) | refused.
    #[serde(default)]
    pub expect: Option<S<String>>,
    /// Cut the power (QMP quit) while the payload is being written, then boot again.
    #[serde(default)]
    pub cut_power: Option<bool>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

pub(super) fn check(
    v: &mut Validator,
    u: &UpdateDef,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let f = format!("{field}.update");
    let on = machine(v, &u.on, &format!("{f}.on"), declared);
    if !v.ctx.channels.contains(&u.to.value) {
        v.err(
            &u.to,
            format!("{f}.to"),
            format!(
                "unknown channel `{}`; known: {}",
                u.to.value,
                v.ctx.channels.join(", ")
            ),
        );
    }
    let payload = u.payload.as_ref().and_then(|p| match p.value.as_str() {
        "corrupt" => Some(PayloadFault::Corrupt),
        "truncate" => Some(PayloadFault::Truncate),
        "stall" => Some(PayloadFault::Stall),
        other => {
            v.err(
                p,
                format!("{f}.payload"),
                format!("`{other}` is not a payload fault; expected corrupt, truncate or stall"),
            );
            None
        }
    });
    let refused = match u.expect.as_ref().map(|e| (e, e.value.as_str())) {
        None | Some((_, "installed")) => false,
        Some((_, "refused")) => true,
        Some((e, other)) => {
            v.err(
                e,
                format!("{f}.expect"),
                format!("`{other}` is not an update outcome; expected installed or refused"),
            );
            false
        }
    };
    if payload.is_some() && !refused {
        v.err(
            &u.on,
            &f,
            "a bad payload must be refused: add `expect: refused`",
        );
    }
    let update = UpdateStep {
        to: u.to.value.clone(),
        payload,
        refused,
        cut_power: u.cut_power.unwrap_or(false),
        timeout: v.duration(&u.timeout, &format!("{f}.timeout")),
    };
    Some((on, StepKind::Update(update)))
}
