//! `run`: a command in the guest; its exit status, stdout and stderr checked.

use super::common::{excerpt, fail, fill, indent, machine_of, pattern, ssh_cause};
use super::StepEnv;
use crate::failure::{Cause, Failure};
use crate::suite::RunStep;
use std::fmt::Write;

pub(super) async fn handle(env: &mut StepEnv<'_>, on: &str, step: &RunStep) -> Result<(), Failure> {
    let values = env.values(on);
    let cmd = fill(&values, &step.cmd)?;
    let exit = step.exit;
    let limit = step.timeout.unwrap_or(env.run_timeout);
    let machine = machine_of(env.machines, on);
    let out = match machine.exec(&cmd, limit).await {
        Ok(out) => out,
        Err(e) => {
            return Err(match machine.unexpected_exit() {
                Some(how) => Failure::harness(
                    Cause::QemuDied,
                    format!("`{cmd}` on {on}: {e:#}; its QEMU {how} (not by Aviary)"),
                ),
                None => Failure::candidate(ssh_cause(&e), format!("`{cmd}` on {on}: {e:#}")),
            })
        }
    };
    let _ = writeln!(
        env.log,
        "$ {cmd}   # on {on}, exit {}\n{}{}",
        out.status,
        indent(&out.stdout, "  | "),
        indent(&out.stderr, "  ! ")
    );
    if out.status != exit {
        return fail(
            Cause::ExitStatus,
            format!(
                "`{cmd}` on {on} exited {}, expected {exit}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                excerpt(&out.stdout),
                excerpt(&out.stderr)
            ),
        );
    }
    for (name, pat, seen) in [
        ("stdout", &step.stdout, &out.stdout),
        ("stderr", &step.stderr, &out.stderr),
    ] {
        if let Some(pat) = pat {
            let (p, re) = pattern(&values, pat)?;
            if !re.is_match(seen) {
                return fail(
                    Cause::Output,
                    format!(
                        "`{cmd}` on {on}: {name} does not match /{p}/\n{name} was:\n{}",
                        excerpt(seen)
                    ),
                );
            }
        }
    }
    Ok(())
}
