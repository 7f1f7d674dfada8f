//! `update`: Aviary's update server offers a release (its signed RAUC bundle) and the guest's
//! agent downloads it through guestfwd, checks it and installs it into the inactive slot; or
//! refuses a bad payload, or has the power cut while it writes the slot.

use super::common::{failed, machine_of};
use super::slots::{grubenv, slots};
use super::StepEnv;
use crate::failure::{Cause, Failure};
use crate::machine::Machine;
use crate::runner::result::{UpdateOutcome, UpdateRecord};
use crate::suite::{PayloadFault, UpdateStep};
use crate::update_server::{Offer, UpdateServer};
use regex::Regex;
use std::fmt::Write;
use std::time::Duration;

pub(super) async fn handle(
    env: &mut StepEnv<'_>,
    on: &str,
    step: &UpdateStep,
) -> Result<(), Failure> {
    let to = &step.to;
    let rel = env
        .releases
        .get(to)
        .ok_or_else(|| Failure::harness(Cause::Host, format!("release `{to}` was not resolved")))?;
    let offer = Offer {
        release: to.clone(),
        version: rel.version.clone(),
        payload: rel.payload.clone().ok_or_else(|| {
            Failure::harness(
                Cause::Host,
                format!("image `{to}` has no update payload; rebuild it"),
            )
        })?,
        sha256: rel.payload_sha256.clone().unwrap_or_default(),
        size: rel.payload_size.unwrap_or(0),
    };
    let server = env
        .servers
        .get(on)
        .ok_or_else(|| Failure::harness(Cause::Host, format!("no update server for {on}")))?;
    let mut record = UpdateRecord {
        machine: on.to_string(),
        channel: to.clone(),
        version: rel.version.clone(),
        sha256: rel.sha256.clone(),
        payload_sha256: offer.sha256.clone(),
        outcome: UpdateOutcome::Failed,
        in_setup: false,
        download_s: None,
        write_s: None,
    };
    let r = update(
        machine_of(env.machines, on),
        server,
        UpdateArgs {
            offer,
            payload: step.payload,
            refused: step.refused,
            cut_power: step.cut_power,
            timeout: step.timeout.unwrap_or(env.run_timeout * 10),
            log: env.log,
            record: &mut record,
        },
    )
    .await;
    env.updates.push(record);
    r
}

struct UpdateArgs<'a> {
    offer: Offer,
    payload: Option<PayloadFault>,
    refused: bool,
    cut_power: bool,
    timeout: Duration,
    log: &'a mut crate::runner::trail::Log,
    /// What became of the offer, filled in as the step learns it (it starts as `Failed`).
    record: &'a mut UpdateRecord,
}

/// The seconds the agent reports after `label` ("downloaded N bytes in 12.3s", "RAUC wrote
/// slot B in 4.5s").
fn agent_seconds(out: &str, label: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.split_once(label).map(|(_, rest)| rest))
        .find_map(|rest| {
            let (_, tail) = rest.rsplit_once(" in ")?;
            tail.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()?
                .parse()
                .ok()
        })
}

const AGENT: &str = "sudo aviary-update-agent --server http://10.0.2.100";

/// Offers a release to the machine and runs its update agent.
async fn update(
    m: &mut dyn Machine,
    server: &UpdateServer,
    a: UpdateArgs<'_>,
) -> Result<(), Failure> {
    let t = a.timeout;
    let (booted, inactive) = slots(m, Duration::from_secs(60)).await?;
    server.offer(Some(a.offer.clone()));
    server.set_fault(a.payload);
    let before = grubenv(m).await?;
    if a.cut_power {
        // Start the agent, wait for RAUC to report writing the slot, then pull the plug.
        let mark = m.console().mark();
        m.fire(&format!("{AGENT} >/dev/null 2>&1"))
            .await
            .map_err(|e| failed(Cause::Ssh, format!("starting the update agent: {e:#}")))?;
        let writing =
            Regex::new(r"aviary-update-agent: .*(Copying image|installing)").expect("static regex");
        let console = m.console().clone();
        let line = tokio::time::timeout(t, console.wait_for(mark, &writing))
            .await
            .map_err(|_| {
                failed(
                    Cause::Update,
                    format!(
                        "the agent never reported writing slot {inactive} within {:.0}s",
                        t.as_secs_f64()
                    ),
                )
            })?;
        let _ = writeln!(
            a.log,
            "console: {line}\ncutting the power (QMP quit) while slot {inactive} is written"
        );
        a.record.outcome = UpdateOutcome::PowerCut;
        m.power_cut().await?;
        m.boot().await?;
        let _ = writeln!(a.log, "booted again after the power cut");
        server.offer(None);
        return Ok(());
    }
    let out = m
        .exec(&format!("{AGENT} 2>&1"), t)
        .await
        .map_err(|e| failed(Cause::Ssh, format!("running the update agent: {e:#}")))?;
    let _ = writeln!(
        a.log,
        "$ {AGENT}  # exit {}\n{}",
        out.status,
        out.stdout.trim_end()
    );
    server.offer(None);
    server.set_fault(None);
    a.record.download_s = agent_seconds(&out.stdout, "aviary-update-agent: downloaded ");
    a.record.write_s = agent_seconds(&out.stdout, "aviary-update-agent: RAUC wrote slot ");
    let requests: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.status, r.path))
        .collect();
    let _ = writeln!(a.log, "update server saw: {}", requests.join(", "));
    let sentinel = m
        .exec("test -e /run/reboot-required", Duration::from_secs(60))
        .await
        .map_err(|e| failed(Cause::Ssh, format!("{e:#}")))?
        .status
        == 0;
    a.record.outcome = match out.status {
        0 if sentinel => UpdateOutcome::Installed,
        2 => UpdateOutcome::Refused,
        _ => UpdateOutcome::Failed,
    };
    if a.refused {
        if out.status == 0 {
            return Err(failed(Cause::Update, format!(
                "expected the update to {} to be refused ({:?} payload), but the agent installed it:\n{}",
                a.offer.release,
                a.payload,
                out.stdout.trim_end()
            )));
        }
        let after = grubenv(m).await?;
        if after != before || sentinel {
            return Err(failed(Cause::Update, format!(
                "the refused update changed the boot state (slot {inactive}):\nbefore:\n{before}\nafter:\n{after}reboot-required: {sentinel}"
            )));
        }
        return Ok(());
    }
    if out.status != 0 {
        return Err(failed(
            Cause::Update,
            format!(
                "the update agent failed (exit {}) installing {} {} into slot {inactive}:\n{}",
                out.status,
                a.offer.release,
                a.offer.version,
                out.stdout.trim_end()
            ),
        ));
    }
    if !sentinel {
        return Err(failed(
            Cause::Update,
            "the agent succeeded but wrote no /run/reboot-required".into(),
        ));
    }
    let _ = writeln!(
        a.log,
        "installed {} {} into slot {inactive} (booted {booted})",
        a.offer.release, a.offer.version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::agent_seconds;

    #[test]
    fn reads_the_agents_download_and_write_seconds() {
        let out = "aviary-update-agent: downloading http://10.0.2.100/p\n\
                   aviary-update-agent: downloaded 234064148 bytes in 15.8s, sha256 ok\n\
                   aviary-update-agent: installing 1001.0.0 into slot B (RAUC: Copying image)\n\
                   aviary-update-agent: RAUC wrote slot B in 11.2s\n";
        let d = agent_seconds(out, "aviary-update-agent: downloaded ");
        assert_eq!(d, Some(15.8));
        let w = agent_seconds(out, "aviary-update-agent: RAUC wrote slot ");
        assert_eq!(w, Some(11.2));
        assert_eq!(agent_seconds("refused: short file", "downloaded "), None);
    }
}
