//! The suite language: YAML files of tests, machines and steps.
//!
//! `raw.rs` is a suite file as written, `load.rs` validates it (a test's machines in
//! `machines.rs`, its steps in `verbs/`, all with the shared checks of `validator.rs`; problems
//! as `errors.rs` words them) into `model.rs`, which the planner and runner consume.
//!
//! # Adding a step verb
//!
//! A verb `VERB` lives in two files of its own and a few lines of the model:
//!
//! 1. `suite/model.rs`: its arguments (`VerbStep`), a `StepKind::Verb(VerbStep)` variant, and
//!    its name in `StepKind::verb`.
//! 2. `suite/verbs/VERB.rs` (new): `VerbDef`, the step as written (serde, `deny_unknown_fields`,
//!    spans), and `check`, which validates it into the model (`machine` first, then each field,
//!    errors at the field's place). Register it in `suite/verbs/mod.rs`: `mod VERB;`, a
//!    `StepDef` variant, one dispatch line in `step`, and the verb in the `ONE_KEY` hint.
//! 3. `runner/steps/VERB.rs` (new): `handle(env, on, args)`, which runs it on the machine
//!    (a `failure::Failure`: `Failure::candidate(cause, …)` when the guest falls short,
//!    `Failure::harness(…)` when the host does). Register it in `runner/steps/mod.rs`:
//!    `mod VERB;` and one dispatch line in `run_step`.
//!
//! Then document it in docs/suite-language.md (the example and its notes); the
//! `ONE_KEY` hint is quoted in README's bad-input table and `bad_input/table.rs`. Tests: loading
//! and its errors in `suite/tests.rs`, the handler's pure parts inline, the handler against a
//! scripted machine in `runner/tests/lifecycle.rs` (`machine::fake`), the guest side in
//! `harness/tests/vm.rs`.

pub mod duration;
mod errors;
mod load;
mod machines;
pub mod model;
mod raw;
pub mod template;
mod validator;
mod verbs;

pub use errors::{LoadError, LoadErrors};
pub use load::{load_file, load_str};
pub use model::*;
pub use validator::LoadContext;

#[cfg(test)]
mod tests;
