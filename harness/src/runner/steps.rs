//! Executing one step against the test's machines.

use super::lookup::Values;
use crate::images::manifest::Manifest;
use crate::images::ResolvedImage;
use crate::machine::{Machine, MachineError};
use crate::suite::template::expand;
use crate::suite::{
    CopyDirection, CopyStep, ExpectStep, Pattern, RunStep, Step, StepKind, UpdateStep, WaitCond,
    WaitForStep,
};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// How a step went wrong.
#[derive(Debug)]
pub enum StepError {
    /// The expectation did not hold: expected vs seen.
    Failed(String),
    /// The harness or host failed.
    Infra(String),
}

impl From<MachineError> for StepError {
    fn from(e: MachineError) -> Self {
        match e {
            MachineError::Infra(m) => StepError::Infra(m),
            MachineError::Guest(m) => StepError::Failed(m),
            e @ MachineError::Boot { .. } => StepError::Failed(e.to_string()),
        }
    }
}

pub struct StepEnv<'a> {
    pub machines: &'a mut BTreeMap<String, Machine>,
    pub images: &'a BTreeMap<String, ResolvedImage>,
    /// Releases that `update` steps may offer, by channel.
    pub releases: &'a BTreeMap<String, ResolvedImage>,
    /// One update server per machine that takes updates.
    pub servers: &'a BTreeMap<String, crate::update_server::UpdateServer>,
    pub manifest: &'a Manifest,
    pub test_dir: &'a Path,
    pub run_timeout: Duration,
    pub wait_timeout: Duration,
    pub log: &'a mut String,
    /// Every `update` step's offer and what became of it, for the reports (the gate's evidence).
    pub updates: &'a mut Vec<super::result::UpdateRecord>,
}

fn fail<T>(msg: String) -> Result<T, StepError> {
    Err(StepError::Failed(msg))
}

fn excerpt(s: &str) -> String {
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
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub async fn run_step(step: &Step, env: &mut StepEnv<'_>) -> Result<(), StepError> {
    let on = step.on.clone();
    let image = env.images.get(&on).expect("validated machine").clone();
    let values = Values {
        image: &image,
        manifest: env.manifest,
    };
    let x = |s: &str| expand(s, &values).map_err(StepError::Infra);
    let machine = env.machines.get_mut(&on).expect("validated machine");
    match &step.kind {
        StepKind::Run(RunStep {
            cmd,
            exit,
            stdout,
            stderr,
            timeout,
        }) => {
            let cmd = x(cmd)?;
            let limit = timeout.unwrap_or(env.run_timeout);
            let ssh = machine.ssh()?.clone();
            let out = match ssh.exec(&cmd, limit).await {
                Ok(out) => out,
                Err(e) => {
                    return Err(match machine.unexpected_exit() {
                        Some(how) => StepError::Infra(format!(
                            "`{cmd}` on {on}: {e:#}; its QEMU {how} (not by Aviary)"
                        )),
                        None => StepError::Failed(format!("`{cmd}` on {on}: {e:#}")),
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
            if out.status != *exit {
                return fail(format!(
                    "`{cmd}` on {on} exited {}, expected {exit}\nstdout:\n{}\nstderr:\n{}",
                    out.status,
                    excerpt(&out.stdout),
                    excerpt(&out.stderr)
                ));
            }
            for (name, pat, seen) in [
                ("stdout", stdout, &out.stdout),
                ("stderr", stderr, &out.stderr),
            ] {
                if let Some(Pattern(p)) = pat {
                    let p = x(p)?;
                    let re = Pattern::compile(&p).map_err(|e| StepError::Infra(e.to_string()))?;
                    if !re.is_match(seen) {
                        return fail(format!(
                            "`{cmd}` on {on}: {name} does not match /{p}/\n{name} was:\n{}",
                            excerpt(seen)
                        ));
                    }
                }
            }
            Ok(())
        }
        StepKind::WaitFor(WaitForStep { cond, timeout }) => {
            let limit = timeout.unwrap_or(env.wait_timeout);
            let secs = limit.as_secs().max(1);
            let mut unit = None;
            let (what, guest_cmd) = match cond {
                WaitCond::Console(Pattern(p)) => {
                    let p = x(p)?;
                    let re = Pattern::compile(&p).map_err(|e| StepError::Infra(e.to_string()))?;
                    let console = machine.console.clone();
                    return match tokio::time::timeout(limit, console.wait_for(0, &re)).await {
                        Ok(line) => {
                            let _ = writeln!(env.log, "console of {on} matched /{p}/: {line}");
                            Ok(())
                        }
                        Err(_) => fail(format!(
                            "no console line of {on} matched /{p}/ within {:.0}s",
                            limit.as_secs_f64()
                        )),
                    };
                }
                // Waits run inside the guest, in one command, bounded by `timeout`.
                WaitCond::Unit(u) => {
                    let u = x(u)?;
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
                    let f = x(f)?;
                    (
                        format!("file {f} present"),
                        format!("timeout {secs} sh -c 'until sudo test -e \"$0\"; do sleep 0.5; done' {}", sq(&f)),
                    )
                }
            };
            let ssh = machine.ssh()?.clone();
            let out = ssh
                .exec(&guest_cmd, limit + Duration::from_secs(10))
                .await
                .map_err(|e| StepError::Failed(format!("waiting for {what} on {on}: {e:#}")))?;
            let _ = writeln!(env.log, "wait_for {what} on {on}: exit {}", out.status);
            match out.status {
                0 => Ok(()),
                124 => fail(format!(
                    "{what} on {on}: not reached within {:.0}s",
                    limit.as_secs_f64()
                )),
                3 => {
                    // Quote the unit's own last words: they say why (a health check, say).
                    let u = unit.unwrap_or_default();
                    let why = ssh
                        .exec(
                            &format!("sudo journalctl -b -u {} -n 6 -o cat --no-pager", sq(&u)),
                            Duration::from_secs(60),
                        )
                        .await
                        .map(|o| o.stdout.trim().to_string())
                        .unwrap_or_default();
                    fail(format!(
                        "{what} on {on}: the unit failed{}{}",
                        if why.is_empty() {
                            ""
                        } else {
                            "; its journal:\n"
                        },
                        why
                    ))
                }
                4 => fail(format!(
                    "{what} on {on}: the unit is masked (LoadState=masked): it can never start"
                )),
                5 => fail(format!(
                    "{what} on {on}: systemd has no such unit (LoadState=not-found for 5s)"
                )),
                s => fail(format!(
                    "waiting for {what} on {on}: exit {s}: {}",
                    out.stderr.trim()
                )),
            }
        }
        StepKind::Reboot => {
            let _ = writeln!(env.log, "reboot {on}");
            let (t0, resets) = (std::time::Instant::now(), machine.resets);
            machine.reboot().await?;
            machine.probe_phases().await;
            let b = machine
                .boots
                .last()
                .map(|b| b.qemu_to_login_s)
                .unwrap_or(0.0);
            let resets = machine.resets - resets;
            let _ = writeln!(
                env.log,
                "{on} is back {:.1}s after the reboot request ({} QEMU start(s): {resets} guest reset(s) during boot); last QEMU start to SSH login {b:.1}s",
                t0.elapsed().as_secs_f64(),
                resets + 1
            );
            Ok(())
        }
        StepKind::Copy(CopyStep {
            direction,
            from,
            to,
        }) => {
            let ssh = machine.ssh()?.clone();
            match direction {
                CopyDirection::In => {
                    let to = x(to)?;
                    ssh.upload(Path::new(from), &to).await.map_err(|e| {
                        StepError::Failed(format!("copy {from} → {on}:{to}: {e:#}"))
                    })?;
                    let _ = writeln!(env.log, "copied {from} → {on}:{to}");
                }
                CopyDirection::Out => {
                    let from = x(from)?;
                    let dest = env.test_dir.join(to);
                    ssh.download(&from, &dest).await.map_err(|e| {
                        StepError::Failed(format!("copy {on}:{from} → {}: {e:#}", dest.display()))
                    })?;
                    let _ = writeln!(env.log, "copied {on}:{from} → {}", dest.display());
                }
            }
            Ok(())
        }
        StepKind::Update(UpdateStep {
            to,
            payload,
            refused,
            cut_power,
            timeout,
        }) => {
            let rel = env
                .releases
                .get(to)
                .ok_or_else(|| StepError::Infra(format!("release `{to}` was not resolved")))?;
            let offer = crate::update_server::Offer {
                release: to.clone(),
                version: rel.version.clone(),
                payload: rel.payload.clone().ok_or_else(|| {
                    StepError::Infra(format!("image `{to}` has no update payload; rebuild it"))
                })?,
                sha256: rel.payload_sha256.clone().unwrap_or_default(),
                size: rel.payload_size.unwrap_or(0),
            };
            let server = env
                .servers
                .get(&on)
                .ok_or_else(|| StepError::Infra(format!("no update server for {on}")))?;
            let mut record = super::result::UpdateRecord {
                machine: on.clone(),
                channel: to.clone(),
                version: rel.version.clone(),
                sha256: rel.sha256.clone(),
                payload_sha256: offer.sha256.clone(),
                outcome: super::result::UpdateOutcome::Failed,
                in_setup: false,
                download_s: None,
                write_s: None,
            };
            let r = super::ab::update(
                machine,
                server,
                super::ab::UpdateArgs {
                    offer,
                    payload: *payload,
                    refused: *refused,
                    cut_power: *cut_power,
                    timeout: timeout.unwrap_or(env.run_timeout * 10),
                    log: env.log,
                    record: &mut record,
                },
            )
            .await;
            env.updates.push(record);
            r
        }
        StepKind::Fault(fault) => super::ab::fault(machine, *fault, env.log).await,
        StepKind::Expect(ExpectStep {
            os_release,
            kernel,
            slot,
            disk,
        }) => {
            if let Some(want) = disk {
                let seen = super::ab::disk_slots(machine).await?;
                let _ = writeln!(env.log, "disk of {on}: {}", super::ab::describe(&seen));
                super::ab::check_disk(want, &seen)
                    .map_err(|m| StepError::Failed(format!("on {on}: {m}")))?;
                if os_release.is_empty() && kernel.is_none() && slot.is_none() {
                    return Ok(());
                }
            }
            let ssh = machine.ssh()?.clone();
            let t = env.run_timeout;
            let out = ssh
                .check(
                    "cat /etc/os-release; echo @@; uname -r; echo @@; cat /proc/cmdline",
                    t,
                )
                .await
                .map_err(|e| StepError::Failed(format!("reading facts from {on}: {e:#}")))?;
            let parts: Vec<&str> = out.split("@@\n").collect();
            let (osr, uname, cmdline) = (
                parse_os_release(parts.first().copied().unwrap_or("")),
                parts.get(1).map(|s| s.trim()).unwrap_or(""),
                parts.get(2).map(|s| s.trim()).unwrap_or(""),
            );
            let mut problems = Vec::new();
            for (k, want) in os_release {
                let want = x(want)?;
                let seen = osr.get(k).cloned();
                if seen.as_deref() != Some(want.as_str()) {
                    problems.push(format!(
                        "os-release {k}: expected `{want}`, seen `{}`",
                        seen.unwrap_or_else(|| "(absent)".into())
                    ));
                }
            }
            if let Some(k) = kernel {
                let want = x(k)?;
                if uname != want {
                    problems.push(format!("kernel: expected `{want}`, seen `{uname}`"));
                }
            }
            if let Some(s) = slot {
                let seen = booted_slot(cmdline);
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
                fail(format!("on {on}: {}", problems.join("; ")))
            }
        }
    }
}

fn indent(s: &str, prefix: &str) -> String {
    s.lines().map(|l| format!("{prefix}{l}\n")).collect()
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

/// The slot the guest booted, from `rauc.slot=` on the kernel command line.
pub fn booted_slot(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values_are_unquoted() {
        let m =
            parse_os_release("NAME=\"Aviary Reference Linux\"\nID=aviary\nVERSION_ID='1000.0.0'\n");
        assert_eq!(m["NAME"], "Aviary Reference Linux");
        assert_eq!(m["ID"], "aviary");
        assert_eq!(m["VERSION_ID"], "1000.0.0");
    }

    #[test]
    fn slot_comes_from_the_command_line() {
        assert_eq!(
            booted_slot("BOOT_IMAGE=/vmlinuz root=PARTLABEL=ROOT-B rauc.slot=B console=ttyS0")
                .as_deref(),
            Some("B")
        );
        assert_eq!(booted_slot("root=/dev/vda1"), None);
    }
}
