//! SSH into guests with the ssh2 crate. ssh2 is blocking: every call runs in spawn_blocking.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
}

impl Endpoint {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The command a person would type to get a shell on this machine.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {}@127.0.0.1",
            self.key.display(),
            self.port,
            self.user
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// What the SSH port said to one probe (see `probe_banner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAnswer {
    /// sshd's banner.
    Banner,
    /// The connection closed or reset before any byte: nothing listens on the guest's port
    /// (user-mode networking accepts on the host, then drops the connection the guest refused).
    Refused,
    /// No answer within the probe's wait: the guest may be slow, or not up yet.
    Silent,
}

/// Checks, without logging in, that sshd answers with its banner. User-mode networking accepts
/// TCP connections before the guest is up, so a bare connect proves nothing; a connection it
/// closes without a byte says the guest refused it.
pub fn probe_banner(addr: SocketAddr, wait: Duration) -> PortAnswer {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, wait) else {
        return PortAnswer::Silent;
    };
    let _ = s.set_read_timeout(Some(wait));
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return PortAnswer::Refused,
            Ok(0) => return PortAnswer::Silent,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if got == 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
            {
                return PortAnswer::Refused
            }
            Err(_) => return PortAnswer::Silent,
        }
    }
    if &buf == b"SSH-" {
        PortAnswer::Banner
    } else {
        PortAnswer::Silent
    }
}

/// sshd completed the handshake and refused the run's key: a definite answer, not a server
/// that is still starting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sshd refused the public-key login as `{user}` (it offered: {methods})")]
pub struct KeyRefused {
    pub user: String,
    /// The authentication methods the server listed, comma-separated.
    pub methods: String,
}

/// libssh2's answers to a key the server does not accept (LIBSSH2_ERROR_AUTHENTICATION_FAILED
/// and LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED).
fn is_auth_refusal(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(-18 | -19))
}

/// One authenticated session, shareable across blocking tasks.
#[derive(Clone)]
pub struct Ssh {
    sess: Arc<Mutex<ssh2::Session>>,
    pub endpoint: Endpoint,
}

impl Ssh {
    pub async fn connect(endpoint: Endpoint, timeout: Duration) -> Result<Ssh> {
        tokio::task::spawn_blocking(move || Self::connect_blocking(endpoint, timeout)).await?
    }

    fn connect_blocking(endpoint: Endpoint, timeout: Duration) -> Result<Ssh> {
        let tcp = TcpStream::connect_timeout(&endpoint.addr(), timeout)
            .with_context(|| format!("connecting to {}", endpoint.addr()))?;
        let mut sess = ssh2::Session::new()?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(timeout.as_millis() as u32);
        sess.handshake().context("SSH handshake")?;
        let pubkey = endpoint.key.with_extension("pub");
        // Asking which methods the server takes ("none" authentication) is what tells a refused
        // key from a server that is not ready.
        let methods = sess
            .auth_methods(&endpoint.user)
            .map(String::from)
            .unwrap_or_default();
        if let Err(e) =
            sess.userauth_pubkey_file(&endpoint.user, Some(&pubkey), &endpoint.key, None)
        {
            if is_auth_refusal(&e) {
                return Err(KeyRefused {
                    user: endpoint.user.clone(),
                    methods: if methods.is_empty() {
                        "(none listed)".into()
                    } else {
                        methods
                    },
                }
                .into());
            }
            return Err(anyhow!(e).context(format!(
                "SSH public-key login as `{}` with {}",
                endpoint.user,
                endpoint.key.display()
            )));
        }
        if !sess.authenticated() {
            bail!("SSH login as `{}` was refused", endpoint.user);
        }
        // No libssh2 keepalive: it is only sent from inside blocking waits, and when one falls
        // due there libssh2 ends the wait with a timeout error, so a command that is quiet for
        // longer than the interval (a download) failed after a few seconds. Every call here
        // has its own deadline instead.
        Ok(Ssh {
            sess: Arc::new(Mutex::new(sess)),
            endpoint,
        })
    }

    /// Runs `cmd` through the login shell; stops reading at `timeout`.
    pub async fn exec(&self, cmd: &str, timeout: Duration) -> Result<ExecOutput> {
        let me = self.clone();
        let cmd = cmd.to_string();
        tokio::task::spawn_blocking(move || me.exec_blocking(&cmd, timeout)).await?
    }

    fn exec_blocking(&self, cmd: &str, timeout: Duration) -> Result<ExecOutput> {
        let sess = self.sess.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        sess.set_timeout(timeout.as_millis().max(1) as u32);
        let mut ch = sess.channel_session().context("opening SSH channel")?;
        ch.exec(cmd).context("starting command")?;
        let mut stdout = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match ch.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => stdout.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    bail!("command timed out after {:.0?}: {cmd}", started.elapsed())
                }
                Err(e) => return Err(anyhow!(e).context("reading command output")),
            }
            if started.elapsed() > timeout {
                let _ = ch.close();
                bail!("command timed out after {:.0?}: {cmd}", started.elapsed());
            }
        }
        let mut stderr = Vec::new();
        ch.stderr()
            .read_to_end(&mut stderr)
            .context("reading command stderr")?;
        ch.wait_close().context("closing SSH channel")?;
        let status = ch.exit_status()?;
        Ok(ExecOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Runs `cmd` and returns its stdout, failing on a non-zero exit.
    pub async fn check(&self, cmd: &str, timeout: Duration) -> Result<String> {
        let out = self.exec(cmd, timeout).await?;
        if out.status != 0 {
            bail!(
                "`{cmd}` exited {}: {}",
                out.status,
                out.stderr.trim().lines().last().unwrap_or("")
            );
        }
        Ok(out.stdout)
    }

    /// Sends a command without waiting for it to finish (e.g. `systemctl reboot`).
    pub async fn fire(&self, cmd: &str) -> Result<()> {
        let me = self.clone();
        let cmd = cmd.to_string();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let sess = me.sess.lock().unwrap_or_else(|e| e.into_inner());
            sess.set_timeout(10_000);
            let mut ch = sess.channel_session()?;
            ch.exec(&cmd)?;
            Ok(())
        })
        .await?
    }

    /// Copies a host file into the guest over SFTP.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<()> {
        let me = self.clone();
        let local = local.to_path_buf();
        let remote = remote.to_string();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let data =
                std::fs::read(&local).with_context(|| format!("reading {}", local.display()))?;
            let sess = me.sess.lock().unwrap_or_else(|e| e.into_inner());
            sess.set_timeout(60_000);
            let sftp = sess.sftp()?;
            let mut f = sftp
                .create(Path::new(&remote))
                .with_context(|| format!("creating {remote} in the guest"))?;
            f.write_all(&data)?;
            Ok(())
        })
        .await?
    }

    /// Copies a guest file to the host over SFTP.
    pub async fn download(&self, remote: &str, local: &Path) -> Result<()> {
        let me = self.clone();
        let local = local.to_path_buf();
        let remote = remote.to_string();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let sess = me.sess.lock().unwrap_or_else(|e| e.into_inner());
            sess.set_timeout(60_000);
            let sftp = sess.sftp()?;
            let mut f = sftp
                .open(Path::new(&remote))
                .with_context(|| format!("opening {remote} in the guest"))?;
            let mut data = Vec::new();
            f.read_to_end(&mut data)?;
            if let Some(dir) = local.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&local, data)?;
            Ok(())
        })
        .await?
    }
}

/// Makes a fresh ed25519 key pair (private key mode 0600) with ssh-keygen.
pub fn generate_key(path: &Path) -> Result<()> {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "aviary-run", "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen (install openssh-client)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A listener that answers each connection with `reply`: `None` closes it at once,
    /// `Some(b"")` holds it open without a byte.
    fn server(reply: Option<&'static [u8]>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            match reply {
                None => drop(s),
                Some(bytes) => {
                    s.write_all(bytes).unwrap();
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        });
        addr
    }

    #[test]
    fn the_probe_tells_a_banner_from_a_refused_and_a_quiet_port() {
        let wait = Duration::from_millis(500);
        let banner = server(Some(b"SSH-2.0-OpenSSH_9.2p1\r\n"));
        assert_eq!(probe_banner(banner, wait), PortAnswer::Banner);
        // What user-mode networking does with a connection the guest refused.
        assert_eq!(probe_banner(server(None), wait), PortAnswer::Refused);
        assert_eq!(probe_banner(server(Some(b"")), wait), PortAnswer::Silent);
        assert_eq!(
            probe_banner(server(Some(b"HTTP")), wait),
            PortAnswer::Silent
        );
    }
}
