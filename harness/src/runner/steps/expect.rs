//! `expect`: facts of the running guest (os-release, kernel release, the booted slot) and the
//! slot state read offline from its disk.

use super::common::{fail, fill, machine_of};
use super::slots::{booted_slot, slots, Booted};
use super::StepEnv;
use crate::disk::SlotState;
use crate::failure::{Cause, Failure};
use crate::suite::{DiskExpect, ExpectStep};
use std::collections::BTreeMap;
use std::fmt::Write;

pub(super) async fn handle(
    env: &mut StepEnv<'_>,
    on: &str,
    step: &ExpectStep,
) -> Result<(), Failure> {
    let values = env.values(on);
    let machine = machine_of(env.machines, on);
    if let Some(want) = &step.disk {
        let seen = machine.read_slots().await?;
        let _ = writeln!(env.log, "disk of {on}: {}", describe(&seen));
        check_disk(want, &seen)
            .map_err(|m| Failure::candidate(Cause::Expectation, format!("on {on}: {m}")))?;
        if step.os_release.is_empty() && step.kernel.is_none() && step.slot.is_none() {
            return Ok(());
        }
    }
    let t = env.run_timeout;
    let out = machine
        .check(
            "cat /etc/os-release; echo @@; uname -r; echo @@; cat /proc/cmdline",
            t,
        )
        .await
        .map_err(|e| Failure::candidate(Cause::Ssh, format!("reading facts from {on}: {e:#}")))?;
    let parts: Vec<&str> = out.split("@@\n").collect();
    let (osr, uname, cmdline) = (
        parse_os_release(parts.first().copied().unwrap_or("")),
        parts.get(1).map(|s| s.trim()).unwrap_or(""),
        parts.get(2).map(|s| s.trim()).unwrap_or(""),
    );
    let mut problems = Vec::new();
    for (k, want) in &step.os_release {
        let want = fill(&values, want)?;
        let seen = osr.get(k).cloned();
        if seen.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "os-release {k}: expected `{want}`, seen `{}`",
                seen.unwrap_or_else(|| "(absent)".into())
            ));
        }
    }
    if let Some(k) = &step.kernel {
        let want = fill(&values, k)?;
        if uname != want {
            problems.push(format!("kernel: expected `{want}`, seen `{uname}`"));
        }
    }
    if let Some(s) = step.slot {
        let seen = match booted_slot(machine.profile(), cmdline) {
            Booted::Slot(x) => Some(x),
            Booted::ByPartuuid(_) => slots(&*machine, t).await.ok().map(|(b, _)| b),
            Booted::Unknown(_) => None,
        };
        if seen.as_deref() != Some(&s.to_string()) {
            problems.push(format!(
                "booted slot: expected {s}, seen {} (kernel command line: {cmdline})",
                seen.unwrap_or_else(|| "none".into())
            ));
        }
    }
    let _ = writeln!(
        env.log,
        "expect on {on}: {}",
        if problems.is_empty() {
            "ok"
        } else {
            "MISMATCH"
        }
    );
    if problems.is_empty() {
        Ok(())
    } else {
        fail(
            Cause::Expectation,
            format!("on {on}: {}", problems.join("; ")),
        )
    }
}

/// Parses os-release KEY=value lines, unquoting values.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// Compares the expected slot state with what the disk says.
fn check_disk(want: &DiskExpect, seen: &[SlotState]) -> Result<(), String> {
    let slot = want.slot.to_string();
    let s = seen
        .iter()
        .find(|s| s.slot == slot)
        .ok_or_else(|| format!("slot {slot} is not in the boot order"))?;
    let mut bad = Vec::new();
    for (name, w, v) in [
        ("active", want.active, s.active),
        ("tried", want.tried, s.tried),
        ("good", want.good, s.good),
    ] {
        if let Some(w) = w {
            if w != v {
                bad.push(format!("{name}: expected {w}, seen {v}"));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "disk slot {slot}: {} (all slots: {})",
            bad.join(", "),
            describe(seen)
        ))
    }
}

/// The slots as one line: `A active good; B tried not-good`.
fn describe(seen: &[SlotState]) -> String {
    seen.iter()
        .map(|s| {
            format!(
                "{}{}{}{}",
                s.slot,
                if s.active { " active" } else { "" },
                if s.tried { " tried" } else { "" },
                if s.good { " good" } else { " not-good" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Slot;

    fn st(slot: &str, active: bool, tried: bool, good: bool) -> SlotState {
        SlotState {
            slot: slot.into(),
            active,
            tried,
            good,
            priority: 1,
        }
    }

    #[test]
    fn os_release_values_are_unquoted() {
        let m =
            parse_os_release("NAME=\"Aviary Reference Linux\"\nID=aviary\nVERSION_ID='1000.0.0'\n");
        assert_eq!(m["NAME"], "Aviary Reference Linux");
        assert_eq!(m["ID"], "aviary");
        assert_eq!(m["VERSION_ID"], "1000.0.0");
    }

    #[test]
    fn disk_expectations_name_expected_and_seen() {
        let seen = vec![st("A", true, false, true), st("B", false, true, false)];
        let want = DiskExpect {
            slot: Slot::B,
            active: None,
            tried: Some(true),
            good: Some(false),
        };
        assert!(check_disk(&want, &seen).is_ok());
        let want = DiskExpect {
            slot: Slot::B,
            active: Some(true),
            tried: None,
            good: Some(true),
        };
        let e = check_disk(&want, &seen).unwrap_err();
        assert!(e.contains("active: expected true, seen false"), "{e}");
        assert!(e.contains("good: expected true, seen false"), "{e}");
        assert!(e.contains("A active good; B tried not-good"), "{e}");
    }
}
