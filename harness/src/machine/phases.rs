//! Where a boot's time went: the guest's own clocks (its uptime, systemd's monotonic
//! timestamps) read once after the first command, placed on the host's clock from QEMU's start.
//! The regression budgets compare these between a candidate and the release it would replace.

use serde::{Deserialize, Serialize};

/// Seconds from QEMU's start to each point of one boot, and the memory in use then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootPhases {
    /// The kernel started: firmware and bootloader took this long (the host's time at the probe
    /// less the guest's uptime then).
    pub kernel_s: f64,
    /// The real root's PID 1 started: the kernel and the initramfs were done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userspace_s: Option<f64>,
    /// ssh.service became active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sshd_s: Option<f64>,
    /// multi-user.target was reached (None when it was not yet, at the probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_user_s: Option<f64>,
    /// MemTotal − MemAvailable at the probe, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_mib: Option<f64>,
}

/// What the guest runs (as core) to report its clocks: one `key=value` per line.
pub const PROBE: &str = "echo uptime=$(cut -d' ' -f1 /proc/uptime); \
echo userspace=$(systemctl show -P UserspaceTimestampMonotonic); \
echo sshd=$(systemctl show -P ActiveEnterTimestampMonotonic ssh.service); \
echo multi_user=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target); \
awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print \"mem_used_kib=\" t-a}' /proc/meminfo";

/// Places the probe's answer on the host's clock: `at_s` is the host's seconds from QEMU's
/// start when the guest read its uptime. Monotonic timestamps are µs since the kernel started;
/// 0 means "not yet".
pub fn parse(out: &str, at_s: f64) -> Option<BootPhases> {
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let uptime = get("uptime")?;
    let kernel_s = (at_s - uptime).max(0.0);
    let mono = |k: &str| get(k).filter(|us| *us > 0.0).map(|us| kernel_s + us / 1e6);
    Some(BootPhases {
        kernel_s,
        userspace_s: mono("userspace"),
        sshd_s: mono("sshd"),
        multi_user_s: mono("multi_user"),
        memory_used_mib: get("mem_used_kib").map(|k| k / 1024.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_the_guests_clocks_on_the_hosts() {
        let out =
            "uptime=20.50\nuserspace=9250000\nsshd=17500000\nmulti_user=0\nmem_used_kib=153600\n";
        let p = parse(out, 23.0).unwrap();
        assert_eq!(p.kernel_s, 2.5);
        assert_eq!(p.userspace_s, Some(11.75));
        assert_eq!(p.sshd_s, Some(20.0));
        assert_eq!(p.multi_user_s, None, "not reached yet");
        assert_eq!(p.memory_used_mib, Some(150.0));
        assert_eq!(parse("garbage", 1.0), None);
        // A guest clock ahead of the host's never gives a negative bootloader time.
        assert_eq!(parse("uptime=30\n", 23.0).unwrap().kernel_s, 0.0);
    }
}
