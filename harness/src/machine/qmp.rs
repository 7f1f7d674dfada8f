//! A small QMP client: capabilities handshake, commands, and events kept for the test's log.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Mutex as AsyncMutex};

pub struct Qmp {
    writer: AsyncMutex<OwnedWriteHalf>,
    replies: AsyncMutex<mpsc::UnboundedReceiver<Value>>,
    pub events: Arc<Mutex<Vec<Value>>>,
    /// Woken on every event and when the connection closes: waits are event-driven.
    notify: Arc<tokio::sync::Notify>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Qmp {
    /// Connects and negotiates; the greeting only arrives once QEMU finished initialising.
    pub async fn connect(path: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(path)
            .await
            .with_context(|| format!("connecting to QMP at {}", path.display()))?;
        let (r, w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let greeting = lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("QMP closed before its greeting"))?;
        let g: Value = serde_json::from_str(&greeting)?;
        if g.get("QMP").is_none() {
            bail!("unexpected QMP greeting: {greeting}");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let notify = Arc::new(tokio::sync::Notify::new());
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, c) = (notify.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v.get("event").is_some() {
                    ev.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                    n.notify_waiters();
                } else if tx.send(v).is_err() {
                    break;
                }
            }
            c.store(true, std::sync::atomic::Ordering::SeqCst);
            n.notify_waiters();
        });
        let q = Qmp {
            writer: AsyncMutex::new(w),
            replies: AsyncMutex::new(rx),
            events,
            notify,
            closed,
        };
        q.execute("qmp_capabilities", json!({})).await?;
        Ok(q)
    }

    /// Number of events received so far: a mark for `wait_event`.
    pub fn event_mark(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits (without polling) for the first event after `mark` that `pred` accepts.
    pub async fn wait_event(
        &self,
        mark: usize,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(v) = ev.iter().skip(mark).find(|v| pred(v)) {
                    return Ok(v.clone());
                }
            }
            if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                bail!("QMP closed before the event came");
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("no such QMP event within {:.0}s", limit.as_secs_f64());
            }
        }
    }

    pub async fn execute(&self, command: &str, arguments: Value) -> Result<Value> {
        let mut replies = self.replies.lock().await;
        let msg = json!({ "execute": command, "arguments": arguments });
        {
            let mut w = self.writer.lock().await;
            w.write_all(format!("{msg}\n").as_bytes()).await?;
        }
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.recv())
            .await
            .map_err(|_| anyhow!("QMP `{command}` got no reply within 30s"))?
            .ok_or_else(|| anyhow!("QMP closed during `{command}`"))?;
        if let Some(e) = reply.get("error") {
            bail!("QMP `{command}` failed: {e}");
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
    }
}
