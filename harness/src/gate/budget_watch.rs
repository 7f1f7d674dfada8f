//! The budget run may end as soon as a budget's hold is certain: when the candidate's median can
//! no longer fall, nor the baseline's rise, far enough to meet the budget, whatever the tests
//! still to finish measure. `aviary qualify` gives this rule to its budget run
//! (`runner::stop`), so a candidate that is only slower is held after two boots of each release
//! rather than three, and a definite regression is reported as soon as it is certain.

use super::budget::{self, Budget, Sample, Side};
use crate::runner::result::TestResult;
use crate::suite::{ImageRef, StepKind, Test};
use std::collections::BTreeSet;

/// What one machine or update step of a planned budget test may measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measures {
    /// A boot of the disk with this digest (one sample per boot phase).
    Boots(String),
    /// An update into the release with this disk digest (download and write).
    UpdatesInto(String),
}

pub struct Watch {
    budgets: Vec<Budget>,
    candidate: Side,
    baseline: Side,
    /// Each planned test's id and what it may measure.
    planned: Vec<(String, Vec<Measures>)>,
}

impl Watch {
    pub fn new(
        budgets: Vec<Budget>,
        candidate: Side,
        baseline: Side,
        planned: Vec<(String, Vec<Measures>)>,
    ) -> Watch {
        Watch {
            budgets,
            candidate,
            baseline,
            planned,
        }
    }

    /// What the budget suite's tests may measure, each channel's disk digest from `digest`:
    /// every `update` step an update into its release, and every machine of a test that boots
    /// cold (all of them when the run is `cold`) a boot of its image; a machine restored from a
    /// boot-once snapshot is no boot sample (`budget::samples`).
    pub fn plan(
        tests: &[Test],
        cold: bool,
        digest: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, Vec<Measures>)> {
        tests
            .iter()
            .map(|t| {
                let boots_cold = cold || t.boot == crate::suite::BootMode::Cold;
                let machines = t.machines.iter().filter(|_| boots_cold);
                let boots = machines.filter_map(|m| match &m.image {
                    ImageRef::Channel(c) => digest(c).map(Measures::Boots),
                    ImageRef::Path(_) => None,
                });
                let updates = t.steps.iter().filter_map(|s| match &s.kind {
                    StepKind::Update(u) => digest(&u.to).map(Measures::UpdatesInto),
                    _ => None,
                });
                (t.id().into(), boots.chain(updates).collect())
            })
            .collect()
    }

    /// Given every final result so far, the budget whose hold is certain and why; None while
    /// every budget could still be met.
    pub fn check(&self, results: &[TestResult]) -> Option<String> {
        let samples: Vec<Sample> = results
            .iter()
            .filter(|r| r.suite == budget::SUITE)
            .flat_map(|r| budget::samples(&r.machines, &r.updates))
            .collect();
        let done: BTreeSet<String> = results.iter().map(|r| r.id().into()).collect();
        self.budgets
            .iter()
            .find_map(|b| self.certain(b, &samples, &done))
    }

    fn certain(&self, b: &Budget, samples: &[Sample], done: &BTreeSet<String>) -> Option<String> {
        let side = |r: &Side, fill: f64| {
            let seen = budget::values(samples, &r.digest, b.phase);
            let left = self.left(done, b, &r.digest);
            (bound(seen.clone(), left, fill), seen, left)
        };
        let (low, cv, c_left) = side(&self.candidate, f64::NEG_INFINITY);
        let (high, bv, b_left) = side(&self.baseline, f64::INFINITY);
        let (low, high) = (low?, high?);
        if !b.exceeded(low, high) {
            return None;
        }
        let unit = b.phase.unit();
        Some(format!(
            "{} is past its budget ({}) whatever the tests left measure: {} {low:.1} {unit} or more (so far {}; {c_left} sample(s) to come) against {} {high:.1} {unit} or less (so far {}; {b_left} to come)",
            b.phase,
            b.describe(),
            self.candidate.label,
            budget::list(&cv),
            self.baseline.label,
            budget::list(&bv),
        ))
    }

    /// How many more samples of `b`'s phase the planned tests not yet finished may add for the
    /// disk `digest`.
    fn left(&self, done: &BTreeSet<String>, b: &Budget, digest: &str) -> usize {
        self.planned
            .iter()
            .filter(|(id, _)| !done.contains(id))
            .flat_map(|(_, m)| m.iter())
            .filter(|m| match m {
                Measures::Boots(d) => !b.phase.is_update() && d == digest,
                Measures::UpdatesInto(d) => b.phase.is_update() && d == digest,
            })
            .count()
    }
}

/// The median of `seen` with `left` more values all at `fill`: with −∞ the lowest the median
/// can still fall to, with +∞ the highest it can still rise to (a value that never comes moves
/// it less than one at the extreme). None when that is unbounded.
fn bound(mut seen: Vec<f64>, left: usize, fill: f64) -> Option<f64> {
    seen.extend(std::iter::repeat_n(fill, left));
    budget::median(seen).filter(|m| m.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::budget::Phase;
    use proptest::prelude::*;

    fn watch(planned_boots: usize) -> Watch {
        let planned = (1..=planned_boots)
            .flat_map(|i| {
                [
                    (
                        format!("budget::boot-{i}-beta"),
                        vec![Measures::Boots("b".into())],
                    ),
                    (
                        format!("budget::boot-{i}-stable"),
                        vec![Measures::Boots("a".into())],
                    ),
                ]
            })
            .chain([(
                "budget::update-1-into-beta".to_string(),
                vec![Measures::UpdatesInto("b".into())],
            )])
            .collect();
        Watch::new(
            vec![Budget {
                phase: Phase::BootToSsh,
                ratio: Some(1.25),
                abs: Some(10.0),
            }],
            Side {
                label: "beta 1001.0.0".into(),
                digest: "b".into(),
            },
            Side {
                label: "stable 1000.0.0".into(),
                digest: "a".into(),
            },
            planned,
        )
    }

    fn boot(name: &str, digest: &str, ssh: f64) -> TestResult {
        let mut r = crate::report::read::tests::test(name, crate::runner::result::Outcome::Passed);
        r.suite = budget::SUITE.into();
        r.machines = vec![crate::runner::result::MachineReport {
            name: "node".into(),
            image: String::new(),
            version: String::new(),
            sha256: digest.into(),
            boots: vec![crate::machine::BootRecord {
                qemu_to_ssh_banner_s: ssh,
                qemu_to_login_s: ssh + 1.0,
                from_snapshot: false,
                phases: None,
            }],
            first_command_s: None,
            first_command_at_ms: None,
            ssh: None,
        }];
        r
    }

    #[test]
    fn a_slow_candidate_is_certain_after_two_boots_of_each_not_one() {
        let w = watch(3);
        let mut results = vec![
            boot("boot-1-stable", "a", 27.0),
            boot("boot-1-beta", "b", 52.0),
        ];
        assert_eq!(w.check(&results), None, "one of three boots bounds nothing");
        results.push(boot("boot-2-stable", "a", 25.0));
        assert_eq!(
            w.check(&results),
            None,
            "the candidate's median is unbounded below"
        );
        results.push(boot("boot-2-beta", "b", 50.0));
        let why = w
            .check(&results)
            .expect("certain: 50 > 27 × 1.25 and 50 − 27 > 10");
        assert_eq!(
            why,
            "boot_to_ssh is past its budget (+25 % and +10 s) whatever the tests left measure: beta 1001.0.0 50.0 s or more (so far 52.0, 50.0; 1 sample(s) to come) against stable 1000.0.0 27.0 s or less (so far 27.0, 25.0; 1 to come)"
        );
    }

    #[test]
    fn a_stalled_baseline_boot_or_a_close_call_waits_for_more() {
        let w = watch(3);
        // The baseline's second boot stalled: its median could still be 57.6.
        let stalled = vec![
            boot("boot-1-stable", "a", 27.0),
            boot("boot-1-beta", "b", 52.0),
            boot("boot-2-stable", "a", 57.6),
            boot("boot-2-beta", "b", 50.0),
        ];
        assert_eq!(w.check(&stalled), None);
        // 30 % slower but only 8 s: both limits must be passed.
        let close = vec![
            boot("boot-1-stable", "a", 27.0),
            boot("boot-1-beta", "b", 35.0),
            boot("boot-2-stable", "a", 26.0),
            boot("boot-2-beta", "b", 35.1),
        ];
        assert_eq!(w.check(&close), None);
    }

    #[test]
    fn the_plan_counts_each_machine_and_each_update_step() {
        let channels = ["beta", "stable"].map(String::from);
        let policy = "transitions:\n  - from: beta\n    to: stable\n    budgets:\n      boot_to_ssh: { ratio: 1.25, seconds: 10 }\n      update_write: { ratio: 1.5 }\n";
        let t = crate::gate::policy::load_str(std::path::Path::new("p.yaml"), policy, &channels)
            .expect("policy")
            .transitions
            .remove(0);
        let text = crate::gate::plan::budget_suite(&t, "beta").expect("budgets");
        let ctx = crate::suite::LoadContext {
            channels: channels.to_vec(),
        };
        let suite = crate::suite::load_str(std::path::Path::new("budget.yaml"), &text, &ctx)
            .expect("the generated suite loads");
        let digest = |c: &str| Some(format!("{c}-digest"));
        let plan = Watch::plan(&suite.tests, false, digest);
        let boots = |plan: &[(String, Vec<Measures>)]| {
            plan.iter()
                .filter(|(_, m)| m.contains(&Measures::Boots("beta-digest".into())))
                .count()
        };
        let into_beta = plan
            .iter()
            .filter(|(_, m)| m.contains(&Measures::UpdatesInto("beta-digest".into())))
            .count();
        // The update tests restore their machines from a snapshot: no boot samples there,
        // unless the whole run boots cold.
        assert_eq!(boots(&plan), crate::gate::plan::BUDGET_BOOTS);
        assert_eq!(into_beta, crate::gate::plan::BUDGET_UPDATES);
        let cold = Watch::plan(&suite.tests, true, digest);
        assert_eq!(
            boots(&cold),
            crate::gate::plan::BUDGET_BOOTS + crate::gate::plan::BUDGET_UPDATES
        );
    }

    proptest! {
        /// Whenever the watch says certain, every way the remaining tests could end (any values,
        /// or none) leaves the gate's medians past the budget.
        #[test]
        fn certain_means_every_completion_holds(
            cand in prop::collection::vec(10.0f64..90.0, 3),
            base in prop::collection::vec(10.0f64..90.0, 3),
            seen in 0usize..=3,
            later in prop::collection::vec(prop::option::of(0.0f64..200.0), 6),
        ) {
            let w = watch(3);
            let mut results = Vec::new();
            for i in 0..seen {
                results.push(boot(&format!("boot-{}-beta", i + 1), "b", cand[i]));
                results.push(boot(&format!("boot-{}-stable", i + 1), "a", base[i]));
            }
            if w.check(&results).is_some() {
                let b = &w.budgets[0];
                let mut c: Vec<f64> = cand[..seen].to_vec();
                let mut a: Vec<f64> = base[..seen].to_vec();
                for (i, v) in later.iter().enumerate().take(2 * (3 - seen)) {
                    if let Some(v) = v {
                        if i % 2 == 0 { c.push(*v) } else { a.push(*v) }
                    }
                }
                let (cm, am) = (budget::median(c).unwrap(), budget::median(a).unwrap());
                prop_assert!(b.exceeded(cm, am), "{cm} vs {am}");
            }
        }
    }
}
