//! The serial console: QEMU writes it to our pipe; we keep it in memory, append it to
//! console.log, and wake waiters on every chunk (no file polling).

use regex::Regex;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Console {
    text: Mutex<String>,
    changed: Notify,
}

impl Console {
    pub fn new() -> Arc<Console> {
        Arc::new(Console::default())
    }

    /// Current length: a mark to wait for output after.
    pub fn mark(&self) -> usize {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The text after `mark` (what one QEMU start printed, when `mark` was taken at its start).
    pub fn since(&self, mark: usize) -> String {
        let t = self.text.lock().unwrap_or_else(|e| e.into_inner());
        t[floor_boundary(&t, mark)..].to_string()
    }

    pub fn snapshot(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn push(&self, chunk: &str) {
        let clean: String = chunk.chars().filter(|c| *c != '\r').collect();
        self.text
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&clean);
        self.changed.notify_waiters();
    }

    /// The first line after `mark` matching `re`, if any yet.
    pub fn find_after(&self, mark: usize, re: &Regex) -> Option<String> {
        let t = self.text.lock().unwrap_or_else(|e| e.into_inner());
        let start = floor_boundary(&t, mark);
        t[start..]
            .lines()
            .find(|l| re.is_match(l))
            .map(|l| l.to_string())
    }

    /// Waits (without polling) until a line after `mark` matches.
    pub async fn wait_for(&self, mark: usize, re: &Regex) -> String {
        loop {
            let notified = self.changed.notified();
            if let Some(l) = self.find_after(mark, re) {
                return l;
            }
            notified.await;
        }
    }

    /// Copies `reader` (QEMU's stdout) into the console and the log file until EOF.
    pub fn pump<R>(self: &Arc<Self>, mut reader: R, log: &Path) -> tokio::task::JoinHandle<()>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let me = self.clone();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log);
        tokio::spawn(async move {
            let mut file = file.ok();
            let mut buf = vec![0u8; 8192];
            // A character split between two reads waits here for its other bytes.
            let mut pending: Vec<u8> = Vec::new();
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Some(f) = file.as_mut() {
                            let _ = f.write_all(&buf[..n]);
                        }
                        pending.extend_from_slice(&buf[..n]);
                        me.push(&take_text(&mut pending));
                    }
                }
            }
            if !pending.is_empty() {
                me.push(&String::from_utf8_lossy(&pending));
            }
        })
    }
}

/// Decodes `pending` but for an incomplete UTF-8 sequence at its end, which stays in it.
fn take_text(pending: &mut Vec<u8>) -> String {
    let keep = incomplete_tail(pending);
    let rest = pending.split_off(pending.len() - keep);
    let text = String::from_utf8_lossy(pending).into_owned();
    *pending = rest;
    text
}

/// How many bytes at the end of `b` start a UTF-8 sequence that runs past it.
fn incomplete_tail(b: &[u8]) -> usize {
    for i in 1..=b.len().min(3) {
        let c = b[b.len() - i];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > i { i } else { 0 };
    }
    0
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_a_line_after_the_mark() {
        let c = Console::new();
        c.push("old: login:\r\n");
        let mark = c.mark();
        let re = Regex::new("login:").unwrap();
        assert!(c.find_after(mark, &re).is_none());
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.wait_for(mark, &re).await });
        tokio::task::yield_now().await;
        c.push("host login: ");
        c.push("\n");
        let line = waiter.await.unwrap();
        assert_eq!(line, "host login: ");
        assert!(!c.snapshot().contains('\r'));
    }

    #[test]
    fn a_character_split_between_reads_is_kept_whole() {
        let text = "ignition-f…es.service";
        let bytes = text.as_bytes();
        let cut = text.find('…').unwrap() + 1;
        let mut pending = bytes[..cut].to_vec();
        assert_eq!(take_text(&mut pending), "ignition-f");
        pending.extend_from_slice(&bytes[cut..]);
        assert_eq!(take_text(&mut pending), "…es.service");
        assert!(pending.is_empty());
        assert_eq!(incomplete_tail(b"ok"), 0);
        assert_eq!(incomplete_tail("é".as_bytes()), 0);
    }
}
