//! Child processes that die with Aviary: own process group, parent-death signal, kill on drop,
//! and a registry so that an interrupted run can kill every group it started.

use std::collections::HashSet;
use std::sync::Mutex;
use tokio::process::{Child, Command};

static LIVE_GROUPS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn register(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(pgid);
}

fn unregister(pgid: i32) {
    if let Some(set) = LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        set.remove(&pgid);
    }
}

/// Number of process groups Aviary has started and not yet killed.
pub fn live_groups() -> usize {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, HashSet::len)
}

/// SIGKILLs every registered group. Used on interrupt and at exit, as a last resort.
pub fn kill_all() {
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .map(|s| s.drain().collect())
        .unwrap_or_default();
    for g in groups {
        // SAFETY: signalling a process group we created.
        unsafe { libc::killpg(g, libc::SIGKILL) };
    }
}

/// Where `name` would be found on `path` (a PATH value): the first executable file of that name.
pub fn find_on_path(name: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A child in its own process group; dropping it kills the whole group.
#[derive(Debug)]
pub struct GroupChild {
    pub child: Child,
    pgid: i32,
}

impl GroupChild {
    /// Spawns `cmd` as the leader of a new process group that also receives SIGKILL if
    /// Aviary itself dies (PR_SET_PDEATHSIG), so no QEMU outlives us even on SIGKILL.
    pub fn spawn(mut cmd: Command) -> std::io::Result<GroupChild> {
        cmd.process_group(0).kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may already be gone.
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        if pgid > 0 {
            register(pgid);
        }
        Ok(GroupChild { child, pgid })
    }

    pub fn pid(&self) -> i32 {
        self.pgid
    }

    /// SIGKILL to the whole group, then reap the leader.
    pub async fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait().await;
        unregister(self.pgid);
    }

    fn signal_group(&self, sig: i32) {
        if self.pgid > 0 {
            // SAFETY: signalling the group we created.
            unsafe { libc::killpg(self.pgid, sig) };
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.signal_group(libc::SIGKILL);
        // Reap if it is already gone; tokio's orphan reaper takes the rest.
        let _ = self.child.try_wait();
        unregister(self.pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_on_path_takes_the_first_executable() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let plain = a.path().join("tool");
        std::fs::write(&plain, "").unwrap();
        let exe = b.path().join("tool");
        std::fs::write(&exe, "").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(find_on_path("tool", &path), Some(exe));
        assert_eq!(find_on_path("other", &path), None);
        assert_eq!(find_on_path("tool", std::ffi::OsStr::new("")), None);
    }

    #[tokio::test]
    async fn dropping_kills_the_whole_group() {
        // A shell whose own child would outlive a plain kill of the shell.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let mut g = GroupChild::spawn(cmd).unwrap();
        let pgid = g.pid();
        use tokio::io::AsyncBufReadExt;
        let out = g.child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(out)
            .read_line(&mut line)
            .await
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        assert!(live_groups() >= 1);
        drop(g);
        // The grandchild got SIGKILL with its group; poll until the kernel reaps it.
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            // SAFETY: probing a pid with signal 0.
            let alive = unsafe { libc::kill(grandchild, 0) } == 0;
            !alive
        });
        assert!(gone, "grandchild {grandchild} of group {pgid} survived");
    }
}
