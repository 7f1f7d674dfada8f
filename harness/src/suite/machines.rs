//! Validating a test's machines: image, memory, vCPUs, Ignition (hostname, files, units,
//! contents from host files), and the private cluster segment that links several machines.

use super::model::*;
use super::raw::{self, S};
use super::validator::Validator;
use std::collections::BTreeMap;

/// Machines one test may declare: far more than one host runs, and few enough that the
/// cluster's default addresses (10.77.0.11 up) and MACs stay in their last byte.
pub const MAX_MACHINES: usize = 64;
pub const DEFAULT_MEMORY_MIB: u32 = 1024;
pub const DEFAULT_CPUS: u32 = 1;

impl Validator<'_> {
    /// Links the machines of a test with several machines (or an explicit address) on one
    /// private segment: default addresses, one subnet, unique addresses, a MAC each, and every
    /// member's name in every member's /etc/hosts.
    pub(super) fn cluster(
        &mut self,
        machines: &mut [MachineSpec],
        at: &S<BTreeMap<String, S<raw::MachineDef>>>,
        field: &str,
    ) {
        if machines.len() < 2 && machines.iter().all(|m| m.cluster.is_none())
            || machines.len() > MAX_MACHINES
        {
            return;
        }
        let prefix = machines
            .iter()
            .find_map(|m| m.cluster.as_ref().map(|c| c.prefix))
            .unwrap_or(24);
        let [a, b, c] = CLUSTER_SUBNET;
        for (i, m) in machines.iter_mut().enumerate() {
            let nic = m.cluster.get_or_insert(ClusterNic {
                address: std::net::Ipv4Addr::new(a, b, c, 11 + i as u8),
                prefix,
                mac: String::new(),
            });
            nic.mac = format!("52:54:00:a7:00:{:02x}", i + 1);
        }
        let net = |n: &ClusterNic| u32::from(n.address) & (u32::MAX << (32 - n.prefix as u32));
        let first = machines[0].cluster.clone().expect("set above");
        let mut seen = BTreeMap::new();
        for m in machines.iter() {
            let n = m.cluster.as_ref().expect("set above");
            let mfield = format!("{field}.machines.{}.address", m.name);
            let raw = &at.value[&m.name];
            let loc = match &raw.value.address {
                Some(a) => self.loc(a),
                None => self.loc(raw),
            };
            if n.prefix != first.prefix || net(n) != net(&first) {
                self.err_loc(
                    loc.clone(),
                    &mfield,
                    format!(
                        "{}/{} is not in the cluster's subnet {}/{} (one segment, one subnet)",
                        n.address,
                        n.prefix,
                        std::net::Ipv4Addr::from(net(&first)),
                        first.prefix
                    ),
                );
            }
            if let Some(other) = seen.insert(n.address, m.name.clone()) {
                self.err_loc(
                    loc,
                    &mfield,
                    format!("{} is already the address of `{other}`", n.address),
                );
            }
        }
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n");
        for m in machines.iter() {
            let n = m.cluster.as_ref().expect("set above");
            let host = m.ignition.hostname.as_deref().unwrap_or(&m.name);
            if host == m.name {
                hosts.push_str(&format!("{}\t{}\n", n.address, m.name));
            } else {
                hosts.push_str(&format!("{}\t{} {}\n", n.address, host, m.name));
            }
        }
        for m in machines.iter_mut() {
            let n = m.cluster.clone().expect("set above");
            let network = format!(
                "# Aviary: this machine's NIC on the test's private cluster segment.\n[Match]\nMACAddress={}\n\n[Link]\nRequiredForOnline=no\n\n[Network]\nAddress={}/{}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
                n.mac, n.address, n.prefix
            );
            for (path, contents) in [
                ("/etc/systemd/network/10-aviary-cluster.network", network),
                ("/etc/hosts", hosts.clone()),
            ] {
                if !m.ignition.files.iter().any(|f| f.path == path) {
                    m.ignition.files.push(FileSpec {
                        path: path.into(),
                        contents,
                        mode: 0o644,
                        user: None,
                        group: None,
                    });
                }
            }
        }
    }

    pub(super) fn machine<T>(
        &mut self,
        name: &str,
        m: &raw::MachineDef,
        at: &S<T>,
        field: &str,
        default_image: Option<ImageRef>,
    ) -> MachineSpec {
        let image = match &m.image {
            Some(i) => self.image_ref(i, &format!("{field}.image")),
            None => default_image.unwrap_or(ImageRef::Channel("stable".into())),
        };
        let memory_mib = match &m.memory {
            Some(s) if !(256..=16384).contains(&s.value) => {
                self.err(
                    s,
                    format!("{field}.memory"),
                    format!("{} MiB is out of range; expected 256..=16384", s.value),
                );
                DEFAULT_MEMORY_MIB
            }
            Some(s) => s.value,
            None => DEFAULT_MEMORY_MIB,
        };
        let cpus = match &m.cpus {
            Some(s) if !(1..=16).contains(&s.value) => {
                self.err(
                    s,
                    format!("{field}.cpus"),
                    format!("{} is out of range; expected 1..=16", s.value),
                );
                DEFAULT_CPUS
            }
            Some(s) => s.value,
            None => DEFAULT_CPUS,
        };
        let _ = at;
        let ignition = match &m.ignition {
            Some(ig) => self.ignition(ig, &format!("{field}.ignition")),
            None => IgnitionSpec::default(),
        };
        let cluster = m.address.as_ref().and_then(|a| match parse_cidr(&a.value) {
            Ok((address, prefix)) => Some(ClusterNic {
                address,
                prefix,
                mac: String::new(),
            }),
            Err(e) => {
                self.err(a, format!("{field}.address"), e);
                None
            }
        });
        let (firmware, secure_boot, tpm) = self.hardware(m, field);
        let cloud_init = m.cloud_init.as_ref().map(|c| {
            if !crate::cloud_init::user_data_kind_ok(&c.value) {
                self.err(
                    c,
                    format!("{field}.cloud_init"),
                    "expected user-data cloud-init acts on: `#cloud-config` YAML or a `#!` script"
                        .to_string(),
                );
            }
            c.value.clone()
        });
        MachineSpec {
            name: name.to_string(),
            image,
            memory_mib,
            cpus,
            ignition,
            cluster,
            firmware,
            secure_boot,
            tpm,
            cloud_init,
        }
    }

    /// `firmware`, `secure_boot`, `tpm`: Secure Boot only with UEFI firmware.
    fn hardware(
        &mut self,
        m: &raw::MachineDef,
        field: &str,
    ) -> (Option<crate::profile::Firmware>, bool, bool) {
        use crate::profile::Firmware;
        let firmware = m.firmware.as_ref().and_then(|f| match f.value.as_str() {
            "bios" => Some(Firmware::Bios),
            "uefi" => Some(Firmware::Uefi),
            other => {
                self.err(
                    f,
                    format!("{field}.firmware"),
                    format!("`{other}` is not a firmware; expected bios or uefi"),
                );
                None
            }
        });
        let secure_boot = m.secure_boot.as_ref().is_some_and(|s| s.value);
        if let Some(s) = m.secure_boot.as_ref().filter(|s| s.value) {
            if firmware != Some(Firmware::Uefi) {
                self.err(
                    s,
                    format!("{field}.secure_boot"),
                    "Secure Boot needs UEFI; expected `firmware: uefi` beside it".to_string(),
                );
            }
        }
        (
            firmware,
            secure_boot,
            m.tpm.as_ref().is_some_and(|t| t.value),
        )
    }

    fn ignition(&mut self, ig: &raw::IgnitionDef, field: &str) -> IgnitionSpec {
        if let Some(h) = &ig.hostname {
            if !valid_hostname(&h.value) {
                self.err(
                    h,
                    format!("{field}.hostname"),
                    format!(
                        "`{}` is not a valid hostname (RFC 1123 label, 1-63 chars)",
                        h.value
                    ),
                );
            }
        }
        let mut files = Vec::new();
        for (i, f) in ig.files.iter().enumerate() {
            let ff = format!("{field}.files[{i}]");
            if !f.value.path.value.starts_with('/') {
                self.err(&f.value.path, format!("{ff}.path"), "path must be absolute");
            }
            let mode = match &f.value.mode {
                None => 0o644,
                Some(m) => match u32::from_str_radix(m.value.trim(), 8) {
                    Ok(v) if v <= 0o7777 => v,
                    _ => {
                        self.err(
                            m,
                            format!("{ff}.mode"),
                            format!(
                                "`{}` is not an octal file mode; expected e.g. \"0640\"",
                                m.value
                            ),
                        );
                        0o644
                    }
                },
            };
            let given = Some(&f.value.contents).filter(|c| !c.is_empty());
            let contents = self
                .contents_or_host_file(given, f.value.from_host.as_ref(), &ff)
                .unwrap_or_default();
            files.push(FileSpec {
                path: f.value.path.value.clone(),
                contents,
                mode,
                user: f.value.user.clone(),
                group: f.value.group.clone(),
            });
        }
        let mut units = Vec::new();
        for (i, u) in ig.units.iter().enumerate() {
            let uf = format!("{field}.units[{i}]");
            let name = &u.value.name;
            const KINDS: &[&str] = &[
                ".service", ".socket", ".timer", ".target", ".mount", ".path",
            ];
            if !KINDS.iter().any(|k| name.value.ends_with(k)) || name.value.contains('/') {
                self.err(
                    name,
                    format!("{uf}.name"),
                    format!(
                        "`{}` is not a unit name; expected NAME{}",
                        name.value,
                        KINDS.join("|NAME")
                    ),
                );
            }
            let contents = self.contents_or_host_file(
                u.value.contents.as_ref(),
                u.value.from_host.as_ref(),
                &uf,
            );
            if contents.is_none() && u.value.enabled.is_none() && u.value.mask.is_none() {
                self.err(u, &uf, "a unit needs contents, from_host, enabled or mask");
            }
            units.push(UnitSpec {
                name: name.value.clone(),
                contents,
                enabled: u.value.enabled,
                mask: u.value.mask,
            });
        }
        IgnitionSpec {
            hostname: ig.hostname.as_ref().map(|h| h.value.clone()),
            files,
            units,
        }
    }

    /// A file's or unit's text: given inline, or read from `from_host` (relative to the suite's
    /// folder); both at once is an error.
    fn contents_or_host_file(
        &mut self,
        given: Option<&String>,
        from_host: Option<&S<String>>,
        field: &str,
    ) -> Option<String> {
        let Some(h) = from_host else {
            return given.cloned();
        };
        let f = format!("{field}.from_host");
        if given.is_some() {
            self.err(h, f, "expected either contents or from_host, not both");
            return None;
        }
        let p = self.dir.join(&h.value);
        // A device or a FIFO (/dev/zero, /dev/stdin) would be read forever.
        if p.exists() && !p.is_file() {
            let msg = format!("host file `{}` is not a regular file", p.display());
            self.err(h, f, msg);
            return None;
        }
        match std::fs::read_to_string(&p) {
            Ok(text) => Some(text),
            Err(e) => {
                let msg = format!("cannot read host file `{}` as text: {e}", p.display());
                self.err(h, f, msg);
                None
            }
        }
    }
}

pub(super) fn valid_machine_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `A.B.C.D/N` with N in 8..=30 and a host address (neither the network nor broadcast).
fn parse_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let want = "expected an IPv4 address with a prefix length, e.g. 10.77.0.11/24";
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` has no /prefix; {want}"))?;
    let addr: std::net::Ipv4Addr = a
        .parse()
        .map_err(|_| format!("`{a}` is not an IPv4 address; {want}"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("prefix `/{p}` is out of range; expected /8../30"))?;
    let host = u32::from(addr) & !(u32::MAX << (32 - prefix as u32));
    if host == 0 || host == !(u32::MAX << (32 - prefix as u32)) {
        return Err(format!(
            "{s} is the subnet's network or broadcast address; {want}"
        ));
    }
    Ok((addr, prefix))
}

fn valid_hostname(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
