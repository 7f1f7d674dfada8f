//! One typed failure for everything a test can end with short of a pass: whose fault it is
//! (`Blame`: the candidate's, which is a verdict, or the harness's, which is not) and what
//! went wrong (`Cause`), with its one-line message and its detail. Steps, machines and
//! templates fail with it; `Outcome::from` turns it into the test's result, and reports write
//! its cause (`boot:kernel`, `exit-status`, …) beside the message.

use crate::machine::boot_watch::Stage;
use crate::machine::MachineError;
use std::fmt;

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The candidate misbehaved: the test failed.
    Candidate,
    /// The harness or the host could not do its job: the test erred, no verdict.
    Harness,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Cause {
    /// A boot failed for certain at this stage.
    Boot(Stage),
    /// The guest never came up or answered within its deadline.
    Timeout,
    /// A command exited otherwise than the step expects.
    ExitStatus,
    /// A command's output did not match.
    Output,
    /// A fact of the guest (os-release, kernel, slot, disk state) was not as expected.
    Expectation,
    /// A unit, port or file never came, or a unit is masked, missing or failed.
    Wait,
    /// An update was refused, failed, or changed what it must not.
    Update,
    /// The console, journal or failed-unit checks found a problem.
    Checks,
    /// The SSH session or a file transfer broke.
    Ssh,
    /// QEMU ended although Aviary did not end it.
    QemuDied,
    /// The run was interrupted, or never got to the test.
    Interrupted,
    /// The harness panicked.
    Panic,
    /// Anything else on the host side (QEMU missing, disk errors, a bad placeholder).
    Host,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Boot(stage) => write!(f, "boot:{stage}"),
            other => f.write_str(match other {
                Cause::Timeout => "timeout",
                Cause::ExitStatus => "exit-status",
                Cause::Output => "output",
                Cause::Expectation => "expectation",
                Cause::Wait => "wait",
                Cause::Update => "update",
                Cause::Checks => "checks",
                Cause::Ssh => "ssh",
                Cause::QemuDied => "qemu-died",
                Cause::Interrupted => "interrupted",
                Cause::Panic => "panic",
                Cause::Host | Cause::Boot(_) => "host",
            }),
        }
    }
}

impl From<Cause> for String {
    fn from(c: Cause) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for Cause {
    type Error = String;
    fn try_from(s: String) -> Result<Cause, String> {
        let stages = [
            Stage::Firmware,
            Stage::Bootloader,
            Stage::Kernel,
            Stage::Initramfs,
            Stage::Userspace,
            Stage::Sshd,
            Stage::Login,
        ];
        let all = stages.into_iter().map(Cause::Boot).chain([
            Cause::Timeout,
            Cause::ExitStatus,
            Cause::Output,
            Cause::Expectation,
            Cause::Wait,
            Cause::Update,
            Cause::Checks,
            Cause::Ssh,
            Cause::QemuDied,
            Cause::Interrupted,
            Cause::Panic,
            Cause::Host,
        ]);
        let mut all = all;
        all.find(|c| c.to_string() == s)
            .ok_or_else(|| format!("unknown failure cause `{s}`"))
    }
}

/// A test, step, machine or template that did not do what it should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub blame: Blame,
    pub cause: Cause,
    /// One line, for the progress line, JUnit's message and the gate's reasons.
    pub message: String,
    /// Everything said: expected and seen, output, evidence.
    pub detail: String,
}

impl Failure {
    /// The candidate failed: `msg`'s first line is the message, all of it the detail.
    pub fn candidate(cause: Cause, msg: impl Into<String>) -> Failure {
        Failure::new(Blame::Candidate, cause, msg.into())
    }

    /// The harness failed.
    pub fn harness(cause: Cause, msg: impl Into<String>) -> Failure {
        Failure::new(Blame::Harness, cause, msg.into())
    }

    fn new(blame: Blame, cause: Cause, msg: String) -> Failure {
        Failure {
            blame,
            cause,
            message: first_line(&msg),
            detail: msg,
        }
    }

    /// The same failure, its message prefixed with where it happened (`step 3 (run, …)`).
    pub fn at(mut self, place: &str) -> Failure {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A machine's error, blamed: a boot that failed at a stage or a guest that did not answer is
/// the candidate's; the host side is the harness's.
impl From<MachineError> for Failure {
    fn from(e: MachineError) -> Failure {
        match e {
            MachineError::Infra(m) => Failure::harness(Cause::Host, m),
            MachineError::Guest(m) => Failure::candidate(Cause::Timeout, m),
            e @ MachineError::Boot { .. } => {
                let stage = match &e {
                    MachineError::Boot { failure, .. } => failure.stage(),
                    _ => unreachable!("matched above"),
                };
                Failure::candidate(Cause::Boot(stage), e.to_string())
            }
        }
    }
}

pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_back_as_written() {
        for c in [
            Cause::Boot(Stage::Initramfs),
            Cause::ExitStatus,
            Cause::QemuDied,
            Cause::Host,
        ] {
            assert_eq!(Cause::try_from(c.to_string()), Ok(c));
        }
        assert_eq!(Cause::Boot(Stage::Kernel).to_string(), "boot:kernel");
        assert!(Cause::try_from("boot:moon".to_string()).is_err());
    }

    #[test]
    fn a_machine_error_is_blamed_once_here() {
        let boot = MachineError::Boot {
            machine: "node".into(),
            failure: crate::machine::boot_watch::BootFailure::Ignition {
                line: "Ignition failed: fetching config".into(),
            },
            console: "/r/console.log".into(),
        };
        let f = Failure::from(boot);
        assert_eq!(f.blame, Blame::Candidate);
        assert_eq!(f.cause, Cause::Boot(Stage::Initramfs));
        let f = Failure::from(MachineError::Infra("qemu-img: no space\nmore".into()));
        assert_eq!((f.blame, f.cause), (Blame::Harness, Cause::Host));
        assert_eq!(f.message, "qemu-img: no space");
        assert_eq!(f.at("booting").message, "booting: qemu-img: no space");
    }
}
