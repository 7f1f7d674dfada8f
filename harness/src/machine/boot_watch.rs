//! Watching one boot: where it got to (bootloader, kernel, initramfs, userspace, sshd, login)
//! from the serial console and the SSH conversation, and the moment a failure is certain.
//!
//! A boot that cannot succeed ends at once with its stage and the console line that proves
//! it, instead of waiting for the boot's deadline: an emergency or rescue shell, Ignition
//! failing, a kernel panic on two starts in a row, two starts that never got past the
//! bootloader, a guest that powers itself off, a finished boot with nothing answering on the
//! SSH port, sshd refusing the run's key. Pure logic over text and instants: the machine feeds
//! it, the tests drive it with console transcripts.
//!
//! "sshd never listened" is certain only once the guest says its boot finished
//! (`BOOT_FINISHED`, printed by the reference images' mark-good-trigger.service) and the guest
//! then refuses every connection to the SSH port: a login prompt alone is not enough, since a
//! healthy but slower candidate may start sshd well after its getty (the slow-boot fixture
//! does, 25 s later), and a port that merely stays quiet is a guest too busy to answer (a
//! loaded host), not a failure. An image that says nothing of the kind waits for the boot's
//! deadline.

use crate::ssh::PortAnswer;
use std::fmt;
use std::time::{Duration, Instant};

/// How far a boot got, as the console and SSH show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// No output yet.
    Firmware,
    /// The bootloader printed, nothing after it yet (a quiet kernel prints nothing either).
    Bootloader,
    /// Kernel messages.
    Kernel,
    /// The initramfs (dracut, Ignition).
    Initramfs,
    /// The real root's userspace (a login prompt, systemd's status lines).
    Userspace,
    /// sshd answered with its banner.
    Sshd,
    /// Logged in with the run's key.
    Login,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Firmware => "firmware",
            Stage::Bootloader => "bootloader",
            Stage::Kernel => "kernel",
            Stage::Initramfs => "initramfs",
            Stage::Userspace => "userspace",
            Stage::Sshd => "sshd",
            Stage::Login => "login",
        })
    }
}

/// Why a boot failed: the candidate's fault, with the stage and the evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum BootFailure {
    /// The firmware found nothing it would boot; `refused` is its first refusal before that
    /// (UEFI Secure Boot's `Access Denied` for an unsigned loader).
    NothingToBoot {
        line: String,
        refused: Option<String>,
    },
    /// QEMU started `starts` times and each time the guest reset with no output after the
    /// bootloader's: it never started a kernel.
    NoKernel { starts: u32, last: String },
    /// A kernel panic on `panics` starts in a row.
    PanicLoop { panics: u32, line: String },
    /// A kernel panic, and no reset within the grace.
    PanicHang { line: String, grace: Duration },
    /// An emergency or rescue shell, or the initramfs' own failure report; `cause` is the
    /// first unit failure the console showed before it.
    Emergency {
        stage: Stage,
        line: String,
        cause: Option<String>,
    },
    /// Ignition reported a failure.
    Ignition { line: String },
    /// A first boot with an Ignition config reached sshd unprovisioned: Ignition never ran.
    IgnitionNeverRan { evidence: String },
    /// The guest powered itself off before SSH came up.
    PoweredOff { stage: Stage, last: String },
    /// The guest kept resetting at a later stage.
    Resets {
        starts: u32,
        stage: Stage,
        last: String,
    },
    /// sshd's unit failed to start.
    SshdFailed { line: String },
    /// The guest said its boot finished (`finished`), and then refused every connection to the
    /// SSH port for `waited`.
    SshdSilent { finished: String, waited: Duration },
    /// sshd answered, and refused the run's key.
    KeyRefused {
        methods: String,
        tries: u32,
        diagnosis: Option<String>,
    },
    /// Nothing definite, and the boot's deadline passed.
    Timeout {
        stage: Stage,
        waited: Duration,
        last: String,
    },
}

impl BootFailure {
    pub fn stage(&self) -> Stage {
        match self {
            BootFailure::NothingToBoot { .. } => Stage::Firmware,
            BootFailure::NoKernel { .. } => Stage::Bootloader,
            BootFailure::PanicLoop { .. } | BootFailure::PanicHang { .. } => Stage::Kernel,
            BootFailure::Emergency { stage, .. }
            | BootFailure::PoweredOff { stage, .. }
            | BootFailure::Resets { stage, .. }
            | BootFailure::Timeout { stage, .. } => *stage,
            BootFailure::Ignition { .. } | BootFailure::IgnitionNeverRan { .. } => Stage::Initramfs,
            BootFailure::SshdFailed { .. } | BootFailure::SshdSilent { .. } => Stage::Sshd,
            BootFailure::KeyRefused { .. } => Stage::Login,
        }
    }
}

impl fmt::Display for BootFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boot failed at the {} stage: ", self.stage())?;
        match self {
            BootFailure::NothingToBoot { line, refused } => {
                write!(f, "the firmware found nothing to boot: `{line}`")?;
                if let Some(r) = refused {
                    write!(f, "; before that it refused: `{r}`")?;
                    if r.contains("Access Denied") || r.contains("Security Violation") {
                        write!(f, " (Secure Boot refuses an unsigned or untrusted loader)")?;
                    }
                }
                Ok(())
            }
            BootFailure::NoKernel { starts, last } => write!(
                f,
                "the bootloader never started a kernel: {starts} starts in a row reset with no output after the bootloader's; last console line: `{last}`"
            ),
            BootFailure::PanicLoop { panics, line } => {
                write!(f, "kernel panic on {panics} starts of one boot: `{line}`")
            }
            BootFailure::PanicHang { line, grace } => write!(
                f,
                "kernel panic, and the guest did not reset within {}s: `{line}`",
                grace.as_secs()
            ),
            BootFailure::Emergency { line, cause, .. } => {
                write!(f, "emergency shell: console shows `{line}`")?;
                if let Some(c) = cause {
                    write!(f, "; the first failure before it: `{c}`")?;
                }
                Ok(())
            }
            BootFailure::Ignition { line } => write!(f, "Ignition failed: console shows `{line}`"),
            BootFailure::IgnitionNeverRan { evidence } => write!(
                f,
                "Ignition never ran on this first boot with a config: {evidence}"
            ),
            BootFailure::PoweredOff { last, .. } => write!(
                f,
                "the guest powered itself off before SSH came up; last console line: `{last}`"
            ),
            BootFailure::Resets { starts, last, .. } => write!(
                f,
                "the guest reset {starts} times before SSH came up; last console line: `{last}`"
            ),
            BootFailure::SshdFailed { line } => write!(f, "sshd did not start: console shows `{line}`"),
            BootFailure::SshdSilent { finished, waited } => write!(
                f,
                "sshd never listened: the console says `{finished}`, and the guest refused every connection to the SSH port for {:.0}s after that",
                waited.as_secs_f64()
            ),
            BootFailure::KeyRefused {
                methods,
                tries,
                diagnosis,
            } => {
                write!(
                    f,
                    "sshd answered but refused the run's key ({tries} tries; the server offered: {methods})"
                )?;
                if let Some(d) = diagnosis {
                    write!(f, "; {d}")?;
                }
                Ok(())
            }
            BootFailure::Timeout { waited, last, .. } => write!(
                f,
                "no SSH banner within {:.0}s; last console line: `{last}`",
                waited.as_secs_f64()
            ),
        }
    }
}

/// Console lines that end a boot at once, with the stage they prove.
const EMERGENCY: &[(&str, Stage)] = &[
    ("aviary-emergency:", Stage::Initramfs),
    ("Starting dracut-emergency.service", Stage::Initramfs),
    ("dracut-emergency", Stage::Initramfs),
    ("rdsosreport.txt", Stage::Initramfs),
    ("You are in emergency mode", Stage::Userspace),
    ("You are in rescue mode", Stage::Userspace),
    ("Entering emergency mode", Stage::Userspace),
    ("Starting emergency.service", Stage::Userspace),
    ("Starting rescue.service", Stage::Userspace),
];

/// Ignition's own failure report, or its unit's: only crit-level journal lines reach the
/// console, so a retrying fetch never shows there.
fn is_ignition_failure(line: &str) -> bool {
    line.contains("Ignition failed")
        || line.contains("Failed to start ignition")
        || (line.contains("ignition[") && line.contains("CRITICAL"))
}

/// What firmware prints when no boot option worked: OVMF, SeaBIOS.
const NOTHING_TO_BOOT: &[&str] = &[
    "No bootable option or device was found",
    "No bootable device.",
];

const SSHD_FAILED: &[&str] = &[
    "Failed to start ssh.service",
    "Failed to start sshd.service",
    "Failed to start OpenBSD Secure Shell server",
];

const PANIC: &str = "Kernel panic - not syncing";

/// What a reference image prints on its console once its boot finished (no job left): sshd
/// would have started by then.
pub const BOOT_FINISHED: &str = "aviary-boot: the boot finished";

/// The stage `text` (one QEMU start's console) shows.
pub fn stage_of(text: &str) -> Stage {
    let mut stage = Stage::Firmware;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let s = if is_prompt(l) || l.contains("[  OK  ]") || l.starts_with("Debian GNU/Linux") {
            Stage::Userspace
        } else if l.contains("dracut") || l.contains("ignition") || l.contains("Ignition") {
            Stage::Initramfs
        } else if is_kernel_line(l) {
            Stage::Kernel
        } else {
            Stage::Bootloader
        };
        stage = stage.max(s);
    }
    stage
}

/// A getty's prompt: "NAME login:" at the end of the console.
fn is_prompt(line: &str) -> bool {
    line.ends_with(" login:") || line == "login:"
}

/// A kernel message: "[    1.234567] …".
fn is_kernel_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return line.contains(PANIC);
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim();
    !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(crate::checks::clean)
        .unwrap_or_else(|| "(no console output)".into())
}

/// Follows one boot (all its QEMU starts) and says when it has failed for certain.
#[derive(Debug)]
pub struct BootWatch {
    /// QEMU starts so far in this boot (1 once the first started).
    starts: u32,
    /// Starts of this boot that ended in a kernel panic, and in a reset before any kernel
    /// output. A/B fallback costs at most one of each; a bootloader's "no bootable slot"
    /// reset may come between two panics of the same slot.
    panics: u32,
    silent: u32,
    /// The panic of the current start, and when it was seen.
    panicked: Option<(String, Instant)>,
    /// The guest's "boot finished" line of the current start, and since when the guest has
    /// refused every connection to the SSH port after it.
    finished: Option<String>,
    refused_since: Option<Instant>,
    /// How long sshd may stay silent after the boot finished; how long a panicked guest may
    /// take to reset.
    sshd_grace: Duration,
    panic_grace: Duration,
    max_starts: u32,
}

/// What the machine should do after QEMU ended during a boot.
#[derive(Debug, PartialEq)]
pub enum AfterExit {
    /// Start QEMU again (a reset: a bootloader may fall back to the other slot).
    Restart,
    Fail(BootFailure),
}

impl BootWatch {
    pub fn new(sshd_grace: Duration, panic_grace: Duration, max_starts: u32) -> BootWatch {
        BootWatch {
            starts: 1,
            panics: 0,
            silent: 0,
            panicked: None,
            finished: None,
            refused_since: None,
            sshd_grace,
            panic_grace,
            max_starts,
        }
    }

    /// Checks the current start's console (`text`) and the SSH port's last answer (`port`, no
    /// banner yet) at `now`.
    pub fn check(&mut self, text: &str, port: PortAnswer, now: Instant) -> Result<(), BootFailure> {
        // Lines without terminal escapes: systemd colours unit names inside its messages.
        let lines: Vec<String> = text.lines().map(crate::checks::clean).collect();
        for (i, line) in lines.iter().enumerate() {
            if NOTHING_TO_BOOT.iter().any(|p| line.contains(p)) {
                let refused = lines[..i]
                    .iter()
                    .find(|l| l.contains("failed to load") || l.contains("failed to start"))
                    .cloned();
                return Err(BootFailure::NothingToBoot {
                    line: line.clone(),
                    refused,
                });
            }
            if is_ignition_failure(line) {
                return Err(BootFailure::Ignition { line: line.clone() });
            }
            if let Some((_, stage)) = EMERGENCY.iter().find(|(p, _)| line.contains(p)) {
                let cause = lines[..i]
                    .iter()
                    .find(|l| l.contains("Failed to ") || l.contains("failed to "))
                    .cloned();
                return Err(BootFailure::Emergency {
                    stage: *stage,
                    line: line.clone(),
                    cause,
                });
            }
            if SSHD_FAILED.iter().any(|p| line.contains(p)) {
                return Err(BootFailure::SshdFailed { line: line.clone() });
            }
            if line.contains(PANIC) && self.panicked.is_none() {
                self.panicked = Some((line.clone(), now));
            }
        }
        if let Some((line, seen)) = &self.panicked {
            if now.duration_since(*seen) > self.panic_grace {
                return Err(BootFailure::PanicHang {
                    line: line.clone(),
                    grace: self.panic_grace,
                });
            }
        }
        if self.finished.is_none() {
            self.finished = lines.iter().find(|l| l.contains(BOOT_FINISHED)).cloned();
        }
        let Some(finished) = &self.finished else {
            return Ok(());
        };
        if port != PortAnswer::Refused {
            self.refused_since = None;
            return Ok(());
        }
        let since = *self.refused_since.get_or_insert(now);
        let waited = now.duration_since(since);
        if waited > self.sshd_grace {
            return Err(BootFailure::SshdSilent {
                finished: finished.clone(),
                waited,
            });
        }
        Ok(())
    }

    /// QEMU ended by itself during the boot; `text` is that start's console and
    /// `powered_off` whether the guest asked for a poweroff (QMP SHUTDOWN, guest-shutdown).
    pub fn exited(&mut self, text: &str, powered_off: bool) -> AfterExit {
        let stage = stage_of(text);
        let last = last_line(text);
        if powered_off {
            return AfterExit::Fail(BootFailure::PoweredOff { stage, last });
        }
        let panic = self.panicked.take().map(|(l, _)| l).or_else(|| {
            text.lines()
                .find(|l| l.contains(PANIC))
                .map(crate::checks::clean)
        });
        self.finished = None;
        self.refused_since = None;
        match &panic {
            Some(_) => self.panics += 1,
            None if stage <= Stage::Bootloader => self.silent += 1,
            None => {}
        }
        if self.panics >= 2 {
            return AfterExit::Fail(BootFailure::PanicLoop {
                panics: self.panics,
                line: panic.unwrap_or_default(),
            });
        }
        // Only a boot that never panicked is said to have no kernel.
        if self.silent >= 2 && self.panics == 0 {
            return AfterExit::Fail(BootFailure::NoKernel {
                starts: self.silent,
                last,
            });
        }
        if self.starts >= self.max_starts {
            return AfterExit::Fail(BootFailure::Resets {
                starts: self.starts,
                stage,
                last,
            });
        }
        self.starts += 1;
        AfterExit::Restart
    }

    /// The boot's deadline passed with nothing definite.
    pub fn timed_out(&self, text: &str, waited: Duration) -> BootFailure {
        BootFailure::Timeout {
            stage: stage_of(text),
            waited,
            last: last_line(text),
        }
    }

    pub fn starts(&self) -> u32 {
        self.starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    const QUIET: PortAnswer = PortAnswer::Silent;
    const REFUSED: PortAnswer = PortAnswer::Refused;

    fn watch() -> BootWatch {
        BootWatch::new(20 * S, 20 * S, 4)
    }

    const GRUB: &str = "  Booting `Slot A (OK=1 TRY=1)'\n\naviary: booting slot A\n";
    const HEALTHY: &str = "  Booting `Slot A (OK=1 TRY=1)'\n\naviary: booting slot A\n\n\nDebian GNU/Linux 12 node ttyS0\n\nnode login: ";

    #[test]
    fn stages_follow_the_console() {
        assert_eq!(stage_of(""), Stage::Firmware);
        assert_eq!(stage_of(GRUB), Stage::Bootloader);
        assert_eq!(
            stage_of(&format!("{GRUB}[    3.101] EXT4-fs (vda3): mounted\n")),
            Stage::Kernel
        );
        assert_eq!(
            stage_of(&format!(
                "{GRUB}[    9.1] ignition[312]: fetch: fetched config\n"
            )),
            Stage::Initramfs
        );
        assert_eq!(stage_of(HEALTHY), Stage::Userspace);
    }

    #[test]
    fn a_prompt_without_sshd_is_waited_for_until_the_guest_says_its_boot_finished() {
        let t0 = Instant::now();
        let mut w = watch();
        assert_eq!(w.check(GRUB, REFUSED, t0), Ok(()));
        // A slower candidate may start sshd long after its getty: no verdict from the prompt.
        assert_eq!(w.check(HEALTHY, REFUSED, t0 + 30 * S), Ok(()));
        assert_eq!(w.check(HEALTHY, REFUSED, t0 + 300 * S), Ok(()));
        let done =
            format!("{HEALTHY}\n[   41.2] aviary-boot: the boot finished (system running)\n");
        assert_eq!(w.check(&done, REFUSED, t0 + 301 * S), Ok(()));
        assert_eq!(w.check(&done, REFUSED, t0 + 320 * S), Ok(()));
        match w.check(&done, REFUSED, t0 + 322 * S) {
            Err(f @ BootFailure::SshdSilent { .. }) => {
                assert_eq!(f.stage(), Stage::Sshd);
                assert_eq!(
                    f.to_string(),
                    "boot failed at the sshd stage: sshd never listened: the console says `[   41.2] aviary-boot: the boot finished (system running)`, and the guest refused every connection to the SSH port for 21s after that"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_finished_boot_whose_port_stays_quiet_is_a_busy_guest_not_a_failure() {
        // On a loaded host a guest may take longer than a probe to answer: a quiet port is not
        // a refused one, and a quiet answer starts the count again.
        let t0 = Instant::now();
        let mut w = watch();
        let done =
            format!("{HEALTHY}\n[   41.2] aviary-boot: the boot finished (system running)\n");
        assert_eq!(w.check(&done, QUIET, t0), Ok(()));
        assert_eq!(w.check(&done, QUIET, t0 + 100 * S), Ok(()));
        assert_eq!(w.check(&done, REFUSED, t0 + 101 * S), Ok(()));
        assert_eq!(w.check(&done, QUIET, t0 + 115 * S), Ok(()));
        assert_eq!(w.check(&done, REFUSED, t0 + 116 * S), Ok(()));
        assert_eq!(w.check(&done, REFUSED, t0 + 130 * S), Ok(()));
        assert!(matches!(
            w.check(&done, REFUSED, t0 + 137 * S),
            Err(BootFailure::SshdSilent { .. })
        ));
    }

    #[test]
    fn emergency_shells_and_ignition_fail_at_once_with_their_stage() {
        let t0 = Instant::now();
        let initrd = format!("{GRUB}[   16.6] ext4: Unknown parameter 'x'\n\u{1b}[0;1;31mFAILED\u{1b}[0m] Failed to mount \u{1b}[0;1;39msysroot.mount\u{1b}[0m - /sysroot.\naviary-emergency: the first-boot initramfs failed; powering off\n");
        let f = watch().check(&initrd, QUIET, t0).unwrap_err();
        assert_eq!(f.stage(), Stage::Initramfs);
        assert_eq!(
            f.to_string(),
            "boot failed at the initramfs stage: emergency shell: console shows `aviary-emergency: the first-boot initramfs failed; powering off`; the first failure before it: `FAILED] Failed to mount sysroot.mount - /sysroot.`"
        );
        let root =
            format!("{GRUB}You are in emergency mode. After logging in, type \"journalctl -xb\"\n");
        let f = watch().check(&root, QUIET, t0).unwrap_err();
        assert_eq!(f.stage(), Stage::Userspace);
        assert!(
            f.to_string()
                .contains("emergency shell: console shows `You are in emergency mode."),
            "{f}"
        );
        let rescue = "You are in rescue mode. After logging in\n";
        assert!(matches!(
            watch().check(rescue, QUIET, t0),
            Err(BootFailure::Emergency { .. })
        ));
        let ign = format!(
            "{GRUB}[   12.0] ignition[401]: Ignition failed: failed to create users/groups\n"
        );
        let f = watch().check(&ign, QUIET, t0).unwrap_err();
        assert!(matches!(f, BootFailure::Ignition { .. }), "{f:?}");
        assert_eq!(f.stage(), Stage::Initramfs);
        // systemd colours the unit's name: the escapes do not hide it.
        let ign = "[\u{1b}[0;1;31mFAILED\u{1b}[0m] Failed to start \u{1b}[0;1;39mignition-f…es.service\u{1b}[0m - Ignition (files).\naviary-emergency: the first-boot initramfs failed; powering off\n";
        let f = watch().check(ign, QUIET, t0).unwrap_err();
        assert_eq!(
            f.to_string(),
            "boot failed at the initramfs stage: Ignition failed: console shows `[FAILED] Failed to start ignition-f…es.service - Ignition (files).`"
        );
        let sshd = "[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.\n";
        assert!(matches!(
            watch().check(sshd, QUIET, t0),
            Err(BootFailure::SshdFailed { .. })
        ));
        // A finished Ignition run is not a failure.
        let ok = "[   10.0] ignition[400]: Ignition finished successfully\n";
        assert_eq!(watch().check(ok, QUIET, t0), Ok(()));
    }

    #[test]
    fn one_panic_may_fall_back_but_two_are_a_loop() {
        let t0 = Instant::now();
        let panic = format!("{GRUB}[    4.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n");
        let mut w = watch();
        assert_eq!(w.check(&panic, QUIET, t0), Ok(()));
        assert_eq!(w.exited(&panic, false), AfterExit::Restart);
        // The next start boots the other slot: a healthy prompt, then SSH.
        assert_eq!(w.check(HEALTHY, QUIET, t0 + 10 * S), Ok(()));
        let mut w = watch();
        assert_eq!(w.exited(&panic, false), AfterExit::Restart);
        match w.exited(&panic, false) {
            AfterExit::Fail(f @ BootFailure::PanicLoop { .. }) => {
                assert!(f.to_string().starts_with("boot failed at the kernel stage: kernel panic on 2 starts of one boot: `[    4.1] Kernel panic"), "{f}");
            }
            other => panic!("{other:?}"),
        }
        // The RAUC scheme's "no bootable slot" reset between two panics of slot A.
        let no_slot =
            "aviary: no bootable slot (ORDER=A B A_OK=1 B_OK=0); TRY flags reset, rebooting\n";
        let mut w = watch();
        assert_eq!(w.exited(&panic, false), AfterExit::Restart);
        assert_eq!(w.exited(no_slot, false), AfterExit::Restart);
        assert!(matches!(
            w.exited(&panic, false),
            AfterExit::Fail(BootFailure::PanicLoop { panics: 2, .. })
        ));
        // A panic the guest never resets from.
        let mut w = watch();
        assert_eq!(w.check(&panic, QUIET, t0), Ok(()));
        assert!(matches!(
            w.check(&panic, QUIET, t0 + 21 * S),
            Err(BootFailure::PanicHang { .. })
        ));
    }

    #[test]
    fn firmware_with_nothing_to_boot_fails_at_once_naming_what_it_refused() {
        // OVMF with Secure Boot, an unsigned GRUB on the ESP (as seen here).
        let text = "BdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\n\
            BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Access Denied\n\
            BdsDxe: No bootable option or device was found.\n";
        let mut w = BootWatch::new(Duration::from_secs(30), Duration::from_secs(30), 3);
        let e = w
            .check(text, PortAnswer::Refused, Instant::now())
            .unwrap_err();
        assert_eq!(e.stage(), Stage::Firmware);
        let m = e.to_string();
        assert!(m.starts_with("boot failed at the firmware stage: the firmware found nothing to boot: `BdsDxe: No bootable option"), "{m}");
        assert!(
            m.contains("Access Denied` (Secure Boot refuses an unsigned or untrusted loader)"),
            "{m}"
        );
        let bios = "SeaBIOS (version 1.16.3)\nBooting from Hard Disk...\nNo bootable device.\n";
        let e = w
            .check(bios, PortAnswer::Refused, Instant::now())
            .unwrap_err();
        assert!(
            matches!(e, BootFailure::NothingToBoot { refused: None, .. }),
            "{e}"
        );
    }

    #[test]
    fn two_starts_that_never_leave_the_bootloader_mean_no_kernel() {
        let loop_ =
            "aviary: no bootable slot (ORDER=A B A_OK=1 B_OK=0); TRY flags reset, rebooting\n";
        let mut w = watch();
        assert_eq!(w.exited(loop_, false), AfterExit::Restart);
        match w.exited("error: invalid magic number.\n", false) {
            AfterExit::Fail(f) => assert_eq!(
                f.to_string(),
                "boot failed at the bootloader stage: the bootloader never started a kernel: 2 starts in a row reset with no output after the bootloader's; last console line: `error: invalid magic number.`"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_guest_that_powers_off_or_keeps_resetting_fails_with_its_stage() {
        let mut w = watch();
        match w.exited(HEALTHY, true) {
            AfterExit::Fail(f) => assert_eq!(f.stage(), Stage::Userspace),
            other => panic!("{other:?}"),
        }
        let mut w = BootWatch::new(20 * S, 20 * S, 2);
        assert_eq!(w.exited(HEALTHY, false), AfterExit::Restart);
        assert_eq!(w.starts(), 2);
        assert!(matches!(
            w.exited(HEALTHY, false),
            AfterExit::Fail(BootFailure::Resets { starts: 2, .. })
        ));
        let t = w.timed_out(GRUB, 300 * S);
        assert_eq!(
            t.to_string(),
            "boot failed at the bootloader stage: no SSH banner within 300s; last console line: `aviary: booting slot A`"
        );
    }
}
