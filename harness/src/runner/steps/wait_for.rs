//! `wait_for`: a unit active, a TCP port listening or a file present in the guest (one command
//! in the guest, bounded by the step's timeout), or a console line on the host.

use super::common::{fail, fill, machine_of, pattern, sq};
use super::StepEnv;
use crate::failure::{Cause, Failure};
use crate::machine::Machine;
use crate::runner::lookup::Values;
use crate::suite::{Pattern, WaitCond, WaitForStep};
use std::fmt::Write;
use std::time::Duration;

pub(super) async fn handle(
    env: &mut StepEnv<'_>,
    on: &str,
    step: &WaitForStep,
) -> Result<(), Failure> {
    let limit = step.timeout.unwrap_or(env.wait_timeout);
    let secs = limit.as_secs().max(1);
    let values = env.values(on);
    let mut unit = None;
    let (what, guest_cmd) = match &step.cond {
        WaitCond::Console(p) => return console(env, on, &values, p, limit).await,
        // Waits run inside the guest, in one command, bounded by `timeout`.
        WaitCond::Unit(u) => {
            let u = fill(&values, u)?;
            unit = Some(u.clone());
            (
                format!("unit {u} active"),
                // A masked unit can never start (exit 4); one systemd does not know for
                // 5 s is not coming (exit 5); a failed one has given up (exit 3).
                format!(
                    "timeout {secs} sh -c 'nf=0; until systemctl is-active -q \"$0\"; do case $(systemctl show -P LoadState \"$0\" 2>/dev/null) in masked) exit 4;; not-found) nf=$((nf+1)); [ $nf -ge 10 ] && exit 5;; *) nf=0;; esac; if systemctl is-failed -q \"$0\"; then exit 3; fi; sleep 0.5; done' {}",
                    sq(&u)
                ),
            )
        }
        WaitCond::Port(p) => (
            format!("TCP port {p} listening"),
            format!("timeout {secs} sh -c 'until ss -Hltn \"sport = :{p}\" | grep -q .; do sleep 0.5; done'"),
        ),
        WaitCond::File(f) => {
            let f = fill(&values, f)?;
            (
                format!("file {f} present"),
                format!("timeout {secs} sh -c 'until sudo test -e \"$0\"; do sleep 0.5; done' {}", sq(&f)),
            )
        }
    };
    let m = machine_of(env.machines, on);
    let out = m
        .exec(&guest_cmd, limit + Duration::from_secs(10))
        .await
        .map_err(|e| {
            Failure::candidate(Cause::Ssh, format!("waiting for {what} on {on}: {e:#}"))
        })?;
    let _ = writeln!(env.log, "wait_for {what} on {on}: exit {}", out.status);
    match out.status {
        0 => Ok(()),
        124 => fail(
            Cause::Wait,
            format!(
                "{what} on {on}: not reached within {:.0}s",
                limit.as_secs_f64()
            ),
        ),
        3 => unit_failed(m, &what, on, &unit.unwrap_or_default()).await,
        4 => fail(
            Cause::Wait,
            format!("{what} on {on}: the unit is masked (LoadState=masked): it can never start"),
        ),
        5 => fail(
            Cause::Wait,
            format!("{what} on {on}: systemd has no such unit (LoadState=not-found for 5s)"),
        ),
        s => fail(
            Cause::Wait,
            format!(
                "waiting for {what} on {on}: exit {s}: {}",
                out.stderr.trim()
            ),
        ),
    }
}

/// Waits on the host for a line of the machine's serial console (from its start) to match.
async fn console(
    env: &mut StepEnv<'_>,
    on: &str,
    values: &Values<'_>,
    p: &Pattern,
    limit: Duration,
) -> Result<(), Failure> {
    let (p, re) = pattern(values, p)?;
    let console = machine_of(env.machines, on).console().clone();
    match tokio::time::timeout(limit, console.wait_for(0, &re)).await {
        Ok(line) => {
            let _ = writeln!(env.log, "console of {on} matched /{p}/: {line}");
            Ok(())
        }
        Err(_) => fail(
            Cause::Wait,
            format!(
                "no console line of {on} matched /{p}/ within {:.0}s",
                limit.as_secs_f64()
            ),
        ),
    }
}

/// The unit failed: the failure quotes the unit's own last words, which say why (a health
/// check, say).
async fn unit_failed(m: &dyn Machine, what: &str, on: &str, u: &str) -> Result<(), Failure> {
    let why = m
        .exec(
            &format!("sudo journalctl -b -u {} -n 6 -o cat --no-pager", sq(u)),
            Duration::from_secs(60),
        )
        .await
        .map(|o| o.stdout.trim().to_string())
        .unwrap_or_default();
    fail(
        Cause::Wait,
        format!(
            "{what} on {on}: the unit failed{}{}",
            if why.is_empty() {
                ""
            } else {
                "; its journal:\n"
            },
            why
        ),
    )
}
