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
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v.get("event").is_some() {
                    ev.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                } else if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let q = Qmp {
            writer: AsyncMutex::new(w),
            replies: AsyncMutex::new(rx),
            events,
        };
        q.execute("qmp_capabilities", json!({})).await?;
        Ok(q)
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
