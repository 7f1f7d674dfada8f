//! What qualifying a release runs: every test the policy requires for the transition, each the
//! way its evidence mode asks. A test counted by a boot boots the candidate on every machine;
//! a test counted by an update (into the candidate from the channel below it, as the suite
//! writes it) runs as written. Pure: suites and policy in, tests out.

use super::exercise::Mode;
use super::policy::Transition;
use crate::error::BadInput;
use crate::suite::{ImageRef, StepKind, Suite, Test};
use std::collections::BTreeMap;

/// One test of the plan, ready for the runner, and how it exercises the candidate.
#[derive(Debug, Clone)]
pub struct Planned {
    pub test: Test,
    /// The evidence mode it is counted with (never `Auto`).
    pub mode: Mode,
    /// How it runs, for the plan's listing: "boots beta", "as written: updates stable → beta".
    pub how: String,
}

/// The declared tests of each suite, by name (what `expand_required` matches globs against).
pub fn catalog(suites: &[Suite]) -> BTreeMap<String, Vec<String>> {
    suites
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.tests.iter().map(|t| t.name.clone()).collect(),
            )
        })
        .collect()
}

/// The tests `t` requires of the release in channel `candidate`, in suite then file order.
pub fn plan(t: &Transition, suites: &[Suite], candidate: &str) -> Result<Vec<Planned>, BadInput> {
    let catalog = catalog(suites);
    for s in &t.required_suites {
        if !catalog.contains_key(s) {
            return Err(BadInput(format!(
                "error: {}: transition {} -> {} requires suite `{s}`, but no suite file declares it (suites: {})",
                t.loc,
                t.from,
                t.to,
                catalog.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut ids: Vec<String> = t
        .required_suites
        .iter()
        .flat_map(|s| catalog[s].iter().map(move |n| format!("{s}::{n}")))
        .collect();
    for id in super::expand_required(t, &catalog)? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut out = Vec::new();
    for s in suites {
        for test in &s.tests {
            let id = format!("{}::{}", s.name, test.name);
            if ids.contains(&id) {
                out.push(one(t, test.clone(), candidate));
            }
        }
    }
    if out.is_empty() {
        return Err(BadInput(format!(
            "error: {}: transition {} -> {} requires no test (required_suites and required_tests are empty): there is nothing to qualify {candidate} with",
            t.loc, t.from, t.to
        )));
    }
    Ok(out)
}

fn one(t: &Transition, mut test: Test, candidate: &str) -> Planned {
    let updates: Vec<&str> = test
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Update { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect();
    let mode = match t.evidence.mode_for(&test.suite, &test.name) {
        Mode::Auto if updates.is_empty() => Mode::Boot,
        Mode::Auto => Mode::Update,
        m => m,
    };
    let how = if mode == Mode::Boot {
        for m in &mut test.machines {
            m.image = ImageRef::Channel(candidate.to_string());
        }
        format!("boots {candidate}")
    } else {
        let from: Vec<String> = test.machines.iter().map(|m| m.image.to_string()).collect();
        let mut from = from;
        from.dedup();
        if updates.is_empty() {
            format!("as written: boots {}", from.join(", "))
        } else {
            let mut to: Vec<&str> = updates.clone();
            to.dedup();
            format!(
                "as written: boots {}, updates to {}",
                from.join(", "),
                to.join(", ")
            )
        }
    };
    Planned { test, mode, how }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn suites() -> Vec<Suite> {
        let ctx = crate::suite::LoadContext {
            channels: ["alpha", "beta", "stable"].map(String::from).to_vec(),
        };
        let p = "suite: provisioning\ntests:\n  - name: users\n    machines: { node: { image: stable } }\n    steps:\n      - run: { on: node, cmd: \"true\" }\n  - name: files\n    machines: { a: { image: stable }, b: { image: alpha } }\n    steps:\n      - run: { on: a, cmd: \"true\" }\n";
        let u = "suite: upgrade\ntests:\n  - name: stable-to-beta\n    machines: { node: { image: stable } }\n    steps:\n      - update: { on: node, to: beta }\n  - name: stable-to-alpha\n    machines: { node: { image: stable } }\n    steps:\n      - update: { on: node, to: alpha }\n";
        vec![
            crate::suite::load_str(Path::new("p.yaml"), p, &ctx).unwrap(),
            crate::suite::load_str(Path::new("u.yaml"), u, &ctx).unwrap(),
        ]
    }

    fn transition(extra: &str) -> Transition {
        let text = format!("transitions:\n  - from: beta\n    to: stable\n{extra}");
        let channels = ["alpha", "beta", "stable"].map(String::from);
        super::super::policy::load_str(Path::new("promotion.yaml"), &text, &channels)
            .unwrap()
            .transitions
            .remove(0)
    }

    #[test]
    fn boot_tests_boot_the_candidate_and_update_tests_run_as_written() {
        let t = transition(
            "    required_suites: [provisioning]\n    required_tests: [\"upgrade::*-to-beta\"]\n",
        );
        let p = plan(&t, &suites(), "beta").unwrap();
        let ids: Vec<String> = p
            .iter()
            .map(|x| format!("{}::{} {} ({})", x.test.suite, x.test.name, x.mode, x.how))
            .collect();
        assert_eq!(
            ids,
            [
                "provisioning::users boot (boots beta)",
                "provisioning::files boot (boots beta)",
                "upgrade::stable-to-beta update (as written: boots stable, updates to beta)"
            ]
        );
        assert!(p[1]
            .test
            .machines
            .iter()
            .all(|m| m.image == ImageRef::Channel("beta".into())));
        assert_eq!(
            p[2].test.machines[0].image,
            ImageRef::Channel("stable".into())
        );
    }

    #[test]
    fn a_policy_naming_what_no_suite_declares_is_bad_input() {
        let e = plan(
            &transition("    required_suites: [containers]\n"),
            &suites(),
            "beta",
        )
        .unwrap_err();
        assert!(
            e.0.contains("requires suite `containers`, but no suite file declares it (suites: provisioning, upgrade)"),
            "{}",
            e.0
        );
        let e = plan(&transition(""), &suites(), "beta").unwrap_err();
        assert!(e.0.contains("requires no test"), "{}", e.0);
        // A boot-mode override for an update test: it boots the candidate.
        let t = transition(
            "    required_tests: [upgrade::stable-to-alpha]\n    evidence: { suites: { upgrade: boot } }\n",
        );
        let p = plan(&t, &suites(), "beta").unwrap();
        assert_eq!(p[0].how, "boots beta");
    }
}
