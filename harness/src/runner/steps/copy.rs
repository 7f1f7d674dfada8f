//! `copy`: a host file into the guest, or a guest file into the test's artifact folder.

use super::common::{fill, machine_of};
use super::StepEnv;
use crate::failure::{Cause, Failure};
use crate::suite::{CopyDirection, CopyStep};
use std::fmt::Write;
use std::path::Path;

pub(super) async fn handle(
    env: &mut StepEnv<'_>,
    on: &str,
    step: &CopyStep,
) -> Result<(), Failure> {
    let values = env.values(on);
    let m = machine_of(env.machines, on);
    let (from, to) = (&step.from, &step.to);
    match step.direction {
        CopyDirection::In => {
            let to = fill(&values, to)?;
            m.upload(Path::new(from), &to).await.map_err(|e| {
                Failure::candidate(Cause::Ssh, format!("copy {from} → {on}:{to}: {e:#}"))
            })?;
            let _ = writeln!(env.log, "copied {from} → {on}:{to}");
        }
        CopyDirection::Out => {
            let from = fill(&values, from)?;
            let dest = env.test_dir.join(to);
            m.download(&from, &dest).await.map_err(|e| {
                Failure::candidate(
                    Cause::Ssh,
                    format!("copy {on}:{from} → {}: {e:#}", dest.display()),
                )
            })?;
            let _ = writeln!(env.log, "copied {on}:{from} → {}", dest.display());
        }
    }
    Ok(())
}
