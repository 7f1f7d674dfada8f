//! What the verbs' handlers share: the step's machine, placeholders, failures, and how output
//! is quoted in messages and the step log.

use crate::failure::{Cause, Failure};
use crate::machine::Machine;
use crate::runner::lookup::Values;
use crate::suite::template::expand;
use crate::suite::Pattern;
use regex::Regex;
use std::collections::BTreeMap;

/// The step's machine (the loader checked that the test declares it). Takes the map, not the
/// whole `StepEnv`, so that the step log can be written while the machine is borrowed.
pub(super) fn machine_of<'m>(
    machines: &'m mut BTreeMap<String, Box<dyn Machine>>,
    on: &str,
) -> &'m mut dyn Machine {
    machines.get_mut(on).expect("validated machine").as_mut()
}

/// A step's string with its `{{ … }}` placeholders filled in (`StepEnv::values`).
pub(super) fn fill(values: &Values, s: &str) -> Result<String, Failure> {
    expand(s, values).map_err(|e| Failure::harness(Cause::Host, e))
}

/// The candidate is at fault: expected vs seen.
pub(super) fn failed(cause: Cause, msg: String) -> Failure {
    Failure::candidate(cause, msg)
}

pub(super) fn fail<T>(cause: Cause, msg: String) -> Result<T, Failure> {
    Err(failed(cause, msg))
}

/// What a broken guest command says: its deadline passed, or the session broke.
pub(super) fn ssh_cause(e: &anyhow::Error) -> Cause {
    if format!("{e:#}").contains("timed out") {
        Cause::Timeout
    } else {
        Cause::Ssh
    }
}

/// The last 2,000 bytes of `s` (on a character boundary), without trailing white space.
pub(super) fn excerpt(s: &str) -> String {
    let t = s.trim_end();
    if t.len() > 2000 {
        let mut i = t.len() - 2000;
        while !t.is_char_boundary(i) {
            i += 1;
        }
        format!("…{}", &t[i..])
    } else {
        t.to_string()
    }
}

/// Shell-quotes for the guest's sh.
pub(super) fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(super) fn indent(s: &str, prefix: &str) -> String {
    s.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

/// A step's pattern with its placeholders filled in, and compiled (`Pattern::compile`).
pub(super) fn pattern(values: &Values, p: &Pattern) -> Result<(String, Regex), Failure> {
    let p = fill(values, &p.0)?;
    let re = Pattern::compile(&p).map_err(|e| Failure::harness(Cause::Host, e.to_string()))?;
    Ok((p, re))
}
