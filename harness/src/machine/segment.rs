//! A private L2 segment for a cluster: a small learning Ethernet switch in Aviary, reached by
//! each VM's second NIC through QEMU's `dgram` netdev on unix datagram sockets. Nothing touches
//! the host's network: no bridge, no tap, no root; the sockets live in the run's folder and the
//! switch ends with the test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::UnixDatagram;

/// Largest frame QEMU sends over dgram (jumbo frames stay well below).
const MAX_FRAME: usize = 65536;
/// MAC learning forgets a station after this long, as a real switch does.
const AGE: std::time::Duration = std::time::Duration::from_secs(300);

pub struct Segment {
    dir: PathBuf,
    hub: PathBuf,
    ports: Vec<PathBuf>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Mutex<Stats>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub frames: u64,
    pub flooded: u64,
    pub dropped: u64,
}

impl Segment {
    /// Starts the switch with one port per machine name; the sockets go under `dir`
    /// (short paths: unix socket paths are limited to 107 bytes).
    pub fn start(dir: &Path, machines: &[String]) -> std::io::Result<Segment> {
        std::fs::create_dir_all(dir)?;
        let hub = dir.join("switch.sock");
        let _ = std::fs::remove_file(&hub);
        let sock = UnixDatagram::bind(&hub)?;
        let ports: Vec<PathBuf> = machines
            .iter()
            .map(|m| dir.join(format!("{m}.sock")))
            .collect();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let task = tokio::spawn(switch(sock, ports.clone(), stats.clone()));
        Ok(Segment {
            dir: dir.to_path_buf(),
            hub,
            ports,
            task,
            stats,
        })
    }

    /// QEMU's `-netdev` value for a machine's port on this segment.
    pub fn netdev(&self, machine: &str, id: &str) -> String {
        dgram_netdev(id, &self.dir.join(format!("{machine}.sock")), &self.hub)
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ports(&self) -> &[PathBuf] {
        &self.ports
    }
}

/// QEMU's `-netdev` value for a unix datagram port bound at `local` that sends to `remote`.
/// Nothing need listen at `remote`: QEMU starts, and frames sent there are dropped (a boot-once
/// template of a cluster member boots on such a port of its own, alone).
pub fn dgram_netdev(id: &str, local: &Path, remote: &Path) -> String {
    format!(
        "dgram,id={id},local.type=unix,local.path={},remote.type=unix,remote.path={}",
        local.display(),
        remote.display()
    )
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.hub);
        for p in &self.ports {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Where a frame goes: the learned port of its destination, or every other port.
#[derive(Default)]
struct Table {
    macs: HashMap<[u8; 6], (usize, std::time::Instant)>,
}

impl Table {
    fn learn(&mut self, src: [u8; 6], port: usize) {
        if src[0] & 1 == 0 {
            self.macs.insert(src, (port, std::time::Instant::now()));
        }
    }

    fn lookup(&self, dst: [u8; 6]) -> Option<usize> {
        if dst[0] & 1 == 1 {
            return None; // broadcast / multicast: flood
        }
        self.macs
            .get(&dst)
            .filter(|(_, seen)| seen.elapsed() < AGE)
            .map(|(p, _)| *p)
    }
}

async fn switch(sock: UnixDatagram, ports: Vec<PathBuf>, stats: Arc<Mutex<Stats>>) {
    let mut table = Table::default();
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let frame = &buf[..n];
        let Some(src_port) = from
            .as_pathname()
            .and_then(|p| ports.iter().position(|x| x == p))
        else {
            stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
            continue; // not one of ours
        };
        if n < 14 {
            stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
            continue;
        }
        let mac = |o: usize| -> [u8; 6] { frame[o..o + 6].try_into().expect("6 bytes") };
        let (dst, src) = (mac(0), mac(6));
        table.learn(src, src_port);
        let out: Vec<usize> = match table.lookup(dst) {
            Some(p) if p == src_port => Vec::new(),
            Some(p) => vec![p],
            None => (0..ports.len()).filter(|&p| p != src_port).collect(),
        };
        {
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            s.frames += 1;
            if out.len() > 1 {
                s.flooded += 1;
            }
        }
        for p in out {
            // A port whose VM is down (rebooting) just misses the frame, like a cable pulled.
            let _ = sock.try_send_to(frame, &ports[p]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(payload);
        f
    }

    async fn recv(s: &UnixDatagram) -> Option<Vec<u8>> {
        let mut b = vec![0u8; 2048];
        match tokio::time::timeout(std::time::Duration::from_millis(300), s.recv(&mut b)).await {
            Ok(Ok(n)) => Some(b[..n].to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn floods_unknown_and_broadcast_then_switches_learned_unicast() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let seg = Segment::start(dir.path(), &names).unwrap();
        let socks: Vec<UnixDatagram> = seg
            .ports()
            .iter()
            .map(|p| {
                let s = UnixDatagram::bind(p).unwrap();
                s.connect(dir.path().join("switch.sock")).unwrap();
                s
            })
            .collect();
        let (ma, mb) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        // Broadcast from a reaches b and c, not a.
        let bc = frame([0xff; 6], ma, b"who-has");
        socks[0].send(&bc).await.unwrap();
        assert_eq!(recv(&socks[1]).await.as_deref(), Some(&bc[..]));
        assert_eq!(recv(&socks[2]).await.as_deref(), Some(&bc[..]));
        assert_eq!(recv(&socks[0]).await, None);
        // b answers a (learned): only a gets it.
        let reply = frame(ma, mb, b"is-at");
        socks[1].send(&reply).await.unwrap();
        assert_eq!(recv(&socks[0]).await.as_deref(), Some(&reply[..]));
        assert_eq!(recv(&socks[2]).await, None);
        // a to b, now learned too: c sees nothing.
        let uni = frame(mb, ma, b"data");
        socks[0].send(&uni).await.unwrap();
        assert_eq!(recv(&socks[1]).await.as_deref(), Some(&uni[..]));
        assert_eq!(recv(&socks[2]).await, None);
        let s = seg.stats();
        assert_eq!((s.frames, s.flooded, s.dropped), (3, 1, 0));
        // Frames from a socket that is not a port are dropped.
        let stranger = UnixDatagram::bind(dir.path().join("x.sock")).unwrap();
        stranger
            .send_to(&uni, dir.path().join("switch.sock"))
            .await
            .unwrap();
        assert_eq!(recv(&socks[1]).await, None);
        assert_eq!(seg.stats().dropped, 1);
        drop(seg);
        assert!(!dir.path().join("switch.sock").exists());
    }
}
