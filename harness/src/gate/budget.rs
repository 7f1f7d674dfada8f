//! Non-functional regression budgets: the candidate against the release it would replace, in
//! the same run (this host's speed moves by a fifth within hours, so only ratios within one run
//! mean anything). `aviary qualify` boots each release several times, alternating, and updates
//! into each, as the tests of suite `budget`; the gate compares the medians phase by phase and
//! holds when one grew past its budget, naming the part of the boot that grew most.

use super::verdict::{Reason, Status};
use crate::runner::result::{MachineReport, UpdateOutcome, UpdateRecord};
use std::fmt;

/// The suite `aviary qualify` generates for the budgets; only its tests are samples.
pub const SUITE: &str = "budget";

/// What a budget measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// QEMU's start to the kernel's (firmware and bootloader).
    Bootloader,
    /// The kernel's start to the real root's PID 1 (kernel and initramfs).
    Initramfs,
    /// The real root's PID 1 to ssh.service active.
    UserspaceToSshd,
    /// QEMU's start to sshd's banner.
    BootToSsh,
    /// QEMU's start to the run's login.
    BootToLogin,
    /// QEMU's start to the first command's answer.
    FirstCommand,
    /// QEMU's start to multi-user.target (when reached by the probe).
    MultiUser,
    /// Memory in use after boot, MiB.
    Memory,
    /// An update's download and digest check.
    UpdateDownload,
    /// An update's slot write.
    UpdateWrite,
}

const ALL: [(Phase, &str); 10] = [
    (Phase::Bootloader, "bootloader"),
    (Phase::Initramfs, "initramfs"),
    (Phase::UserspaceToSshd, "userspace_to_sshd"),
    (Phase::BootToSsh, "boot_to_ssh"),
    (Phase::BootToLogin, "boot_to_login"),
    (Phase::FirstCommand, "first_command"),
    (Phase::MultiUser, "multi_user"),
    (Phase::Memory, "memory"),
    (Phase::UpdateDownload, "update_download"),
    (Phase::UpdateWrite, "update_write"),
];

impl Phase {
    pub fn parse(s: &str) -> Option<Phase> {
        ALL.iter().find(|(_, n)| *n == s).map(|(p, _)| *p)
    }

    pub fn names() -> String {
        ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
    }

    pub fn is_memory(self) -> bool {
        self == Phase::Memory
    }

    pub fn is_update(self) -> bool {
        matches!(self, Phase::UpdateDownload | Phase::UpdateWrite)
    }

    pub(super) fn unit(self) -> &'static str {
        if self.is_memory() {
            "MiB"
        } else {
            "s"
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = ALL.iter().find(|(p, _)| p == self).map_or("?", |(_, n)| n);
        f.write_str(n)
    }
}

/// One budget: the candidate's median may exceed the baseline's by the ratio and by the
/// absolute amount (seconds, or MiB for memory), not both. Either may be absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub phase: Phase,
    pub ratio: Option<f64>,
    pub abs: Option<f64>,
}

impl Budget {
    pub(super) fn exceeded(&self, candidate: f64, baseline: f64) -> bool {
        let by_ratio = self.ratio.is_none_or(|r| candidate > baseline * r);
        let by_abs = self.abs.is_none_or(|a| candidate - baseline > a);
        by_ratio && by_abs
    }

    pub(super) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.ratio {
            parts.push(format!("+{:.0} %", (r - 1.0) * 100.0));
        }
        if let Some(a) = self.abs {
            parts.push(format!("+{a} {}", self.phase.unit()));
        }
        parts.join(" and ")
    }
}

/// One measurement of a release (by disk digest).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub digest: String,
    pub phase: Phase,
    pub value: f64,
}

/// The samples one budget test's report holds: each machine's first boot, when cold, and every
/// update it installed.
pub fn samples(machines: &[MachineReport], updates: &[UpdateRecord]) -> Vec<Sample> {
    let mut out = Vec::new();
    for m in machines {
        let Some(b) = m.boots.first().filter(|b| !b.from_snapshot) else {
            continue;
        };
        let mut add = |phase, v: Option<f64>| {
            if let Some(value) = v {
                out.push(Sample {
                    digest: m.sha256.clone(),
                    phase,
                    value,
                });
            }
        };
        add(Phase::BootToSsh, Some(b.qemu_to_ssh_banner_s));
        add(Phase::BootToLogin, Some(b.qemu_to_login_s));
        add(Phase::FirstCommand, m.first_command_s);
        if let Some(p) = &b.phases {
            add(Phase::Bootloader, Some(p.kernel_s));
            add(Phase::Initramfs, p.userspace_s.map(|u| u - p.kernel_s));
            add(
                Phase::UserspaceToSshd,
                p.userspace_s.zip(p.sshd_s).map(|(u, s)| s - u),
            );
            add(Phase::MultiUser, p.multi_user_s);
            add(Phase::Memory, p.memory_used_mib);
        }
    }
    for u in updates
        .iter()
        .filter(|u| u.outcome == UpdateOutcome::Installed)
    {
        for (phase, v) in [
            (Phase::UpdateDownload, u.download_s),
            (Phase::UpdateWrite, u.write_s),
        ] {
            if let Some(value) = v {
                out.push(Sample {
                    digest: u.sha256.clone(),
                    phase,
                    value,
                });
            }
        }
    }
    out
}

/// A release as the budgets name it: "beta 1001.0.0", and its disk digest.
#[derive(Debug, Clone)]
pub struct Side {
    pub label: String,
    pub digest: String,
}

pub(super) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub(super) fn values(samples: &[Sample], digest: &str, phase: Phase) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.digest == digest && s.phase == phase)
        .map(|s| s.value)
        .collect()
}

pub(super) fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The boot's parts, for naming the one that grew.
const PARTS: [Phase; 3] = [Phase::Bootloader, Phase::Initramfs, Phase::UserspaceToSshd];

/// The part of the boot whose median grew most, with its growth.
fn grew_most(samples: &[Sample], candidate: &Side, baseline: &Side) -> Option<(Phase, f64)> {
    PARTS
        .iter()
        .filter_map(|p| {
            let c = median(values(samples, &candidate.digest, *p))?;
            let b = median(values(samples, &baseline.digest, *p))?;
            Some((*p, c - b))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// A run of the evidence that ended early (`runner::stop`): why, and whether the verdict holds
/// already for other reasons.
#[derive(Debug, Clone, Copy)]
pub struct EarlyStop<'a> {
    pub why: &'a str,
    pub held_elsewhere: bool,
}

/// One reason per budget (rule `budgets`). A budget left without measurements because a run
/// stopped early says so, and is only a warning when the release is held anyway (the budget
/// run stops once another budget's hold is certain).
pub fn evaluate(
    budgets: &[Budget],
    samples: &[Sample],
    candidate: &Side,
    baseline: Option<&Side>,
    stop: Option<EarlyStop>,
) -> Vec<Reason> {
    let mut out = Vec::new();
    let mut unmeasured = Vec::new();
    for b in budgets {
        let reason = |status, message| Reason {
            rule: "budgets".into(),
            status,
            message,
            tests: Vec::new(),
            tracker: None,
        };
        let Some(base) = baseline else {
            out.push(reason(
                Status::Fail,
                format!("{}: the release {} would replace is not built, so there is nothing to compare with", b.phase, candidate.label),
            ));
            continue;
        };
        let (cv, bv) = (
            values(samples, &candidate.digest, b.phase),
            values(samples, &base.digest, b.phase),
        );
        let (Some(c), Some(m)) = (median(cv.clone()), median(bv.clone())) else {
            unmeasured.push(out.len());
            out.push(reason(
                Status::Fail,
                format!(
                    "{}: no measurement to compare ({} of {}, {} of {}); `aviary qualify` measures both in suite `{SUITE}`",
                    b.phase,
                    cv.len(),
                    candidate.label,
                    bv.len(),
                    base.label
                ),
            ));
            continue;
        };
        let unit = b.phase.unit();
        let pct = if m > 0.0 { (c / m - 1.0) * 100.0 } else { 0.0 };
        let mut text = format!(
            "{}: {} {c:.1} {unit} (median of {}: {}) against {} {m:.1} {unit} ({}): {pct:+.0} %, {:+.1} {unit}; budget {}",
            b.phase,
            candidate.label,
            cv.len(),
            list(&cv),
            base.label,
            list(&bv),
            c - m,
            b.describe()
        );
        if !b.exceeded(c, m) {
            out.push(reason(Status::Pass, text));
            continue;
        }
        if !b.phase.is_update() && !b.phase.is_memory() && !PARTS.contains(&b.phase) {
            if let Some((part, grew)) = grew_most(samples, candidate, base) {
                text.push_str(&format!("; the part that grew most: {part} ({grew:+.1} s)"));
            }
        }
        out.push(reason(
            Status::Fail,
            format!("{} grew past its budget: {text}", b.phase),
        ));
    }
    if let Some(stop) = stop {
        let held = stop.held_elsewhere
            || out
                .iter()
                .enumerate()
                .any(|(i, r)| r.status == Status::Fail && !unmeasured.contains(&i));
        for i in unmeasured {
            out[i]
                .message
                .push_str(&format!("; a run stopped early: {}", stop.why));
            if held {
                out[i].status = Status::Warn;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(digest: &str, phase: Phase, value: f64) -> Sample {
        Sample {
            digest: digest.repeat(64),
            phase,
            value,
        }
    }

    fn sides() -> (Side, Side) {
        let (b, a) = ("b".repeat(64), "a".repeat(64));
        (
            Side {
                label: "beta 1001.0.0".into(),
                digest: b,
            },
            Side {
                label: "stable 1000.0.0".into(),
                digest: a,
            },
        )
    }

    fn boots(digest: &str, ssh: [f64; 3], sshd_part: [f64; 3]) -> Vec<Sample> {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(s(digest, Phase::BootToSsh, ssh[i]));
            v.push(s(digest, Phase::Bootloader, 1.0));
            v.push(s(digest, Phase::Initramfs, 10.0));
            v.push(s(digest, Phase::UserspaceToSshd, sshd_part[i]));
        }
        v
    }

    #[test]
    fn a_slower_boot_past_both_limits_holds_and_names_the_part_that_grew() {
        let (cand, base) = sides();
        let budget = [Budget {
            phase: Phase::BootToSsh,
            ratio: Some(1.25),
            abs: Some(10.0),
        }];
        let mut samples = boots("a", [49.0, 50.0, 52.0], [8.0, 8.5, 9.0]);
        samples.extend(boots("b", [70.0, 71.0, 69.0], [28.0, 29.0, 28.5]));
        let r = evaluate(&budget, &samples, &cand, Some(&base), None);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, Status::Fail);
        assert_eq!(
            r[0].message,
            "boot_to_ssh grew past its budget: boot_to_ssh: beta 1001.0.0 70.0 s (median of 3: 70.0, 71.0, 69.0) against stable 1000.0.0 50.0 s (49.0, 50.0, 52.0): +40 %, +20.0 s; budget +25 % and +10 s; the part that grew most: userspace_to_sshd (+20.0 s)"
        );
        // 20 % slower, or 8 s slower: within the budget (both limits must be passed).
        let mut near = boots("a", [49.0, 50.0, 52.0], [8.0; 3]);
        near.extend(boots("b", [60.0, 60.0, 60.0], [8.0; 3]));
        let r = evaluate(&budget, &near, &cand, Some(&base), None);
        assert_eq!(r[0].status, Status::Pass, "{}", r[0].message);
    }

    #[test]
    fn missing_measurements_or_baseline_hold_saying_so() {
        let (cand, base) = sides();
        let budget = [Budget {
            phase: Phase::UpdateWrite,
            ratio: Some(1.5),
            abs: None,
        }];
        let only_candidate = vec![s("b", Phase::UpdateWrite, 11.0)];
        let r = evaluate(&budget, &only_candidate, &cand, Some(&base), None);
        assert_eq!(r[0].status, Status::Fail);
        assert!(r[0].message.starts_with("update_write: no measurement to compare (1 of beta 1001.0.0, 0 of stable 1000.0.0)"), "{}", r[0].message);
        let r = evaluate(&budget, &only_candidate, &cand, None, None);
        assert!(r[0].message.contains("is not built"), "{}", r[0].message);
        let both = vec![
            s("b", Phase::UpdateWrite, 17.0),
            s("a", Phase::UpdateWrite, 11.0),
        ];
        let r = evaluate(&budget, &both, &cand, Some(&base), None);
        assert_eq!(r[0].status, Status::Fail, "+55 %");
        assert!(
            r[0].message
                .starts_with("update_write grew past its budget"),
            "{}",
            r[0].message
        );
        assert!(!r[0].message.contains("part that grew"), "{}", r[0].message);
    }

    #[test]
    fn samples_come_from_cold_first_boots_and_installed_updates() {
        use crate::machine::phases::BootPhases;
        use crate::machine::BootRecord;
        let boot = |from_snapshot| BootRecord {
            qemu_to_ssh_banner_s: 20.0,
            qemu_to_login_s: 21.0,
            from_snapshot,
            phases: Some(BootPhases {
                kernel_s: 2.0,
                userspace_s: Some(12.0),
                sshd_s: Some(19.0),
                multi_user_s: None,
                memory_used_mib: Some(150.0),
            }),
        };
        let m = |from_snapshot| MachineReport {
            name: "node".into(),
            image: "beta".into(),
            version: "1001.0.0".into(),
            sha256: "b".into(),
            boots: vec![boot(from_snapshot), boot(false)],
            first_command_s: Some(21.5),
            first_command_at_ms: None,
            ssh: None,
        };
        let got = samples(&[m(false)], &[]);
        let by = |p| got.iter().find(|s| s.phase == p).map(|s| s.value);
        assert_eq!(by(Phase::BootToSsh), Some(20.0));
        assert_eq!(by(Phase::Initramfs), Some(10.0));
        assert_eq!(by(Phase::UserspaceToSshd), Some(7.0));
        assert_eq!(by(Phase::Memory), Some(150.0));
        assert_eq!(by(Phase::MultiUser), None);
        assert_eq!(
            got.iter().filter(|s| s.phase == Phase::BootToSsh).count(),
            1,
            "first boot only"
        );
        assert!(
            samples(&[m(true)], &[]).is_empty(),
            "a restored machine is no boot sample"
        );
        assert_eq!(Phase::parse("update_write"), Some(Phase::UpdateWrite));
        assert_eq!(Phase::parse("boot"), None);
        assert_eq!(Phase::UserspaceToSshd.to_string(), "userspace_to_sshd");
    }
}
