//! `expect: { on, os_release, version, kernel, slot, disk }`.

use super::{machine, Checked};
use crate::suite::model::{DiskExpect, ExpectStep, Slot, StepKind};
use crate::suite::template;
use crate::suite::validator::Validator;
use crate::suite::validator::S;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDef {
    pub on: S<String>,
    #[serde(default)]
    pub os_release: Option<S<BTreeMap<String, String>>>,
    #[serde(default)]
    pub kernel: Option<S<String>>,
    #[serde(default)]
    pub slot: Option<S<String>>,
    /// Shorthand for os_release VERSION_ID.
    #[serde(default)]
    pub version: Option<S<String>>,
    /// Slot state read offline from the disk (the machine is stopped for the read).
    #[serde(default)]
    pub disk: Option<S<DiskDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskDef {
    pub slot: S<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub tried: Option<bool>,
    #[serde(default)]
    pub good: Option<bool>,
}

pub(super) fn check(
    v: &mut Validator,
    e: &ExpectDef,
    field: &str,
    declared: &BTreeSet<String>,
) -> Checked {
    let f = format!("{field}.expect");
    let on = machine(v, &e.on, &format!("{f}.on"), declared);
    if e.os_release.is_none()
        && e.kernel.is_none()
        && e.slot.is_none()
        && e.version.is_none()
        && e.disk.is_none()
    {
        v.err(
            &e.on,
            &f,
            "expected at least one of os_release, version, kernel, slot, disk",
        );
    }
    let disk = e
        .disk
        .as_ref()
        .and_then(|d| match d.value.slot.value.parse::<Slot>() {
            Ok(slot) => Some(DiskExpect {
                slot,
                active: d.value.active,
                tried: d.value.tried,
                good: d.value.good,
            }),
            Err(m) => {
                v.err(&d.value.slot, format!("{f}.disk.slot"), m);
                None
            }
        });
    if let Some(ver) = &e.version {
        v.templates(ver, &format!("{f}.version"));
    }
    let slot = e.slot.as_ref().and_then(|s| match s.value.parse::<Slot>() {
        Ok(slot) => Some(slot),
        Err(m) => {
            v.err(s, format!("{f}.slot"), m);
            None
        }
    });
    if let Some(k) = &e.kernel {
        v.templates(k, &format!("{f}.kernel"));
    }
    let mut os_release = e.os_release.as_ref().map(|o| {
        for value in o.value.values() {
            if let Err(m) = template::placeholders(value).and_then(|ps| {
                ps.iter()
                    .try_for_each(|p| template::check_path(p, &v.ctx.channels))
            }) {
                v.err(o, format!("{f}.os_release"), m);
            }
        }
        o.value.clone()
    });
    if let Some(ver) = &e.version {
        os_release
            .get_or_insert_with(BTreeMap::new)
            .insert("VERSION_ID".into(), ver.value.clone());
    }
    let expect = ExpectStep {
        os_release: os_release.unwrap_or_default(),
        kernel: e.kernel.as_ref().map(|k| k.value.clone()),
        slot,
        disk,
    };
    Some((on, StepKind::Expect(expect)))
}
