//! The SSH port a machine forwards: one the kernel has free now, and another when QEMU finds
//! it taken between the choice and its bind.

use super::MachineError;

/// QEMU starts (one fresh port each) before a machine gives up forwarding SSH.
pub(super) const SSH_PORT_TRIES: u32 = 5;

/// A port the kernel has free now. It is released again before QEMU binds it, so another
/// process may take it in between: QEMU then fails at start (`port_taken`) and the machine
/// tries another (`PortTries`).
pub(super) fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Whether QEMU's start-up error says the SSH forward's host port could not be bound. Only
/// that message: any other `-netdev` error also quotes the `hostfwd=` option, and retrying it
/// would not help.
pub(super) fn port_taken(qemu_stderr: &str) -> bool {
    qemu_stderr
        .to_ascii_lowercase()
        .contains("could not set up host forwarding rule")
}

/// The SSH ports one QEMU start tried: a fresh one per try, up to `max`, then a clear error
/// naming every port that was taken and QEMU's last word.
pub(super) struct PortTries {
    machine: String,
    max: u32,
    taken: Vec<u16>,
    last_err: String,
}

impl PortTries {
    pub(super) fn new(machine: &str, max: u32) -> PortTries {
        PortTries {
            machine: machine.to_string(),
            max,
            taken: Vec::new(),
            last_err: String::new(),
        }
    }

    /// The port for the next try, from `pick`; an error once `max` ports were taken.
    pub(super) fn next(
        &self,
        pick: impl FnOnce() -> std::io::Result<u16>,
    ) -> Result<u16, MachineError> {
        if self.taken.len() as u32 >= self.max {
            let ports: Vec<String> = self.taken.iter().map(u16::to_string).collect();
            return Err(MachineError::Infra(format!(
                "machine `{}`: could not forward an SSH port: QEMU started {} times and each time its port was taken before it could bind it (127.0.0.1 ports {}); last QEMU error: {}\n  hint: another program on this host is taking local ports as fast as they come free",
                self.machine,
                self.max,
                ports.join(", "),
                self.last_err
            )));
        }
        pick().map_err(|e| {
            MachineError::Infra(format!(
                "machine `{}`: cannot find a free local port for SSH (binding 127.0.0.1:0 failed: {e})",
                self.machine
            ))
        })
    }

    /// QEMU could not bind `port` (`port_taken`); `err` is what it said.
    pub(super) fn taken(&mut self, port: u16, err: String) {
        self.taken.push(port);
        self.last_err = err;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU (7.2 and 10.0 alike) prints when the hostfwd port is already bound.
    const TAKEN: &str = "qemu-system-x86_64: -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40001-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:40001-:22'";

    #[test]
    fn a_taken_port_is_retried_on_a_fresh_one() {
        assert!(port_taken(TAKEN));
        assert!(!port_taken(
            "qemu-system-x86_64: -drive x: Could not open 'x'"
        ));
        // Another error of the same -netdev option is not a taken port.
        assert!(!port_taken(
            "qemu-system-x86_64: -netdev user,id=net0,hostfwd=tcp:127.0.0.1:1-:22,guestfwd=x: Invalid guest forwarding rule 'x'"
        ));
        // A port really held by another process: the next try gets another one.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held = holder.local_addr().unwrap().port();
        let mut tries = PortTries::new("node", 5);
        let first = tries.next(|| Ok(held)).unwrap();
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", first)).is_err(),
            "held"
        );
        tries.taken(first, TAKEN.into());
        let second = tries.next(free_port).unwrap();
        assert_ne!(second, held);
        assert!(std::net::TcpListener::bind(("127.0.0.1", second)).is_ok());
    }

    #[test]
    fn ports_taken_every_time_give_up_naming_them() {
        let mut tries = PortTries::new("node-b", 3);
        for port in [40001, 40002, 40003] {
            assert_eq!(tries.next(|| Ok(port)).unwrap(), port);
            tries.taken(port, TAKEN.into());
        }
        let e = tries.next(|| Ok(40004)).unwrap_err().to_string();
        assert!(
            e.starts_with("machine `node-b`: could not forward an SSH port"),
            "{e}"
        );
        assert!(e.contains("QEMU started 3 times"), "{e}");
        assert!(e.contains("127.0.0.1 ports 40001, 40002, 40003"), "{e}");
        assert!(
            e.contains("last QEMU error: qemu-system-x86_64: -netdev"),
            "{e}"
        );
        // No free port at all: said at once.
        let e = PortTries::new("node", 5)
            .next(|| Err(std::io::Error::from(std::io::ErrorKind::AddrNotAvailable)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot find a free local port for SSH"), "{e}");
    }
}
