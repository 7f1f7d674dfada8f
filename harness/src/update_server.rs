//! The update server guests ask for updates. It listens on 127.0.0.1 only; a guest reaches it
//! through an explicit QEMU guestfwd (the guest stays sealed with `restrict=on`). One server per
//! machine, so what a guest asked for is recorded per machine. Faults: a corrupted or truncated
//! payload, or a download that stalls half-way.

pub mod omaha;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The address guests use for the server (inside QEMU's user network).
pub const GUEST_ADDR: &str = "10.0.2.100";
pub const GUEST_PORT: u16 = 80;

/// A release the server can hand out.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    pub release: String,
    pub version: String,
    pub payload: PathBuf,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFault {
    /// One byte in the middle flipped: the signature or digest check must refuse it.
    Corrupt,
    /// Only the first half is sent, then the connection closes.
    Truncate,
    /// The first half is sent, then nothing until the client gives up.
    Stall,
}

/// One request a guest made.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    offer: Option<Offer>,
    fault: Option<PayloadFault>,
    log: Vec<Request>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct UpdateServer {
    pub addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UpdateServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UpdateServer {
    pub async fn start() -> std::io::Result<UpdateServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let app = Router::new()
            .route("/v1/update", get(update))
            .route("/v1/update/", post(omaha_check))
            .route("/payloads/{name}", get(payload))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(UpdateServer { addr, state, task })
    }

    /// What the next `/v1/update` answers.
    pub fn offer(&self, offer: Option<Offer>) {
        self.state.lock().offer = offer;
    }

    pub fn set_fault(&self, fault: Option<PayloadFault>) {
        self.state.lock().fault = fault;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().log.clone()
    }

    /// The `guestfwd=` option for QEMU's user netdev: each guest connection to
    /// 10.0.2.100:80 runs `aviary guestfwd-proxy` wired to this server.
    pub fn guestfwd(&self, aviary_exe: &std::path::Path) -> String {
        format!(
            "guestfwd=tcp:{GUEST_ADDR}:{GUEST_PORT}-cmd:{} guestfwd-proxy {}",
            aviary_exe.display(),
            self.addr
        )
    }
}

async fn update(State(s): State<Shared>) -> Response {
    let mut st = s.lock();
    let body = match &st.offer {
        Some(o) => serde_json::json!({
            "update": true,
            "release": o.release,
            "version": o.version,
            "url": format!("http://{GUEST_ADDR}/payloads/{}", file_name(o)),
            "sha256": o.sha256,
            "size": o.size,
        }),
        None => serde_json::json!({ "update": false }),
    };
    st.log.push(Request {
        path: "/v1/update".into(),
        status: 200,
    });
    Json(body).into_response()
}

/// An Omaha v3 update check (Flatcar's update_engine posts to `/v1/update/`): the offer as
/// an Omaha update manifest pointing at the same payload (`omaha.rs`; by spec only).
async fn omaha_check(State(s): State<Shared>, body: String) -> Response {
    let mut st = s.lock();
    let (status, body) = match omaha::parse_request(&body) {
        Ok(req) => {
            let offer = st.offer.as_ref().map(|o| omaha::Offer {
                version: o.version.clone(),
                codebase: format!("http://{GUEST_ADDR}/payloads/"),
                name: file_name(o),
                size: o.size,
                sha1_b64: None,
                sha256_b64: omaha::hex_to_base64(&o.sha256).unwrap_or_default(),
                sha256_hex: o.sha256.clone(),
            });
            (StatusCode::OK, omaha::response(&req, offer.as_ref()))
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("aviary: {e}\n")),
    };
    st.log.push(Request {
        path: "/v1/update/ (omaha)".into(),
        status: status.as_u16(),
    });
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn file_name(o: &Offer) -> String {
    format!("{}-{}.raucb", o.release, o.version)
}

async fn payload(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let (offer, fault) = {
        let st = s.lock();
        (st.offer.clone(), st.fault)
    };
    let Some(offer) = offer.filter(|o| file_name(o) == name) else {
        s.lock().log.push(Request {
            path: format!("/payloads/{name}"),
            status: 404,
        });
        return (StatusCode::NOT_FOUND, "no such payload\n").into_response();
    };
    // What is served is what the manifest records. The file is hashed before anything is
    // sent (a payload changed on disk since the run checked it gets a clear 500), then sent
    // from the same open file and hashed again on the way: the last piece goes out only if
    // the bytes sent match too. A fault is applied to the good bytes, after the check. One
    // piece per download is in memory, not the whole payload (274 MB for a reference release).
    let path = offer.payload.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        let (digest, len) = crate::images::cache::sha256_reader(&mut f)?;
        std::io::Seek::rewind(&mut f)?;
        Ok::<_, std::io::Error>((f, digest, len))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let (file, seen, len) = match checked {
        Ok(c) => c,
        Err(e) => {
            s.lock().log.push(Request {
                path: format!("/payloads/{name}"),
                status: 500,
            });
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
    };
    if seen != offer.sha256 {
        tracing::error!(payload = %offer.payload.display(), expected = %offer.sha256, found = %seen, "update payload changed on disk; refusing to serve it");
        s.lock().log.push(Request {
            path: format!("/payloads/{name}"),
            status: 500,
        });
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "aviary: update payload {} does not match its recorded digest (expected sha256 {}, found {seen}); refusing to serve it\n",
                offer.payload.display(),
                offer.sha256
            ),
        )
            .into_response();
    }
    s.lock().log.push(Request {
        path: format!("/payloads/{name}"),
        status: 200,
    });
    let half = len / 2;
    let sending = Sending {
        file: tokio::fs::File::from_std(file),
        sent: 0,
        len,
        stop_at: match fault {
            None | Some(PayloadFault::Corrupt) => len,
            Some(PayloadFault::Truncate | PayloadFault::Stall) => half,
        },
        flip_at: (fault == Some(PayloadFault::Corrupt)).then_some(half),
        hash: sha2::Sha256::default(),
        expected: offer.sha256.clone(),
        failed: false,
    };
    let head = futures_util::stream::unfold(sending, Sending::next);
    let body = match fault {
        None | Some(PayloadFault::Corrupt) => Body::from_stream(head),
        Some(PayloadFault::Truncate) => {
            // Let the first half reach the client, then drop the connection.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Err::<Vec<u8>, _>(std::io::Error::other("truncated by fault"))
            });
            Body::from_stream(futures_util::StreamExt::chain(head, cut))
        }
        Some(PayloadFault::Stall) => Body::from_stream(futures_util::StreamExt::chain(
            head,
            futures_util::stream::pending(),
        )),
    };
    Response::builder()
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// How much of a payload goes out in one piece.
const PIECE: u64 = 256 * 1024;

/// A payload being sent: from the file checked before the response started, up to `stop_at`
/// (its length, or half of it for a truncated or stalled download), hashing what it reads.
struct Sending {
    file: tokio::fs::File,
    sent: u64,
    len: u64,
    stop_at: u64,
    /// The byte a corrupting fault flips.
    flip_at: Option<u64>,
    hash: sha2::Sha256,
    expected: String,
    failed: bool,
}

impl Sending {
    /// The next piece, or an error that ends the download: the file grew short, or the bytes
    /// read differ from the ones checked (then the last piece is never sent).
    async fn next(mut self) -> Option<(std::io::Result<Vec<u8>>, Sending)> {
        use sha2::Digest;
        use tokio::io::AsyncReadExt;
        if self.failed || self.sent >= self.stop_at {
            return None;
        }
        let want = PIECE.min(self.stop_at - self.sent) as usize;
        let mut buf = vec![0u8; want];
        if let Err(e) = self.file.read_exact(&mut buf).await {
            self.failed = true;
            return Some((Err(e), self));
        }
        self.hash.update(&buf);
        if let Some(i) = self.flip_at.and_then(|f| f.checked_sub(self.sent)) {
            if let Some(b) = buf.get_mut(i as usize) {
                *b ^= 0xff;
            }
        }
        self.sent += want as u64;
        if self.sent == self.len {
            let seen = crate::images::cache::hex(&std::mem::take(&mut self.hash).finalize());
            if seen != self.expected {
                tracing::error!(expected = %self.expected, found = %seen, "update payload changed on disk while it was sent; cutting the download short");
                self.failed = true;
                return Some((
                    Err(std::io::Error::other("payload changed while it was sent")),
                    self,
                ));
            }
        }
        Some((Ok(buf), self))
    }
}

/// `aviary guestfwd-proxy ADDR`: QEMU runs this per guest connection with the connection on
/// stdin/stdout; it relays to the server on the host's loopback.
pub fn proxy(addr: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let sock = std::net::TcpStream::connect(addr)?;
    let mut up = sock.try_clone()?;
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    let mut down = sock;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 65536];
    loop {
        let n = down.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    drop(t);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&buf[..split]).into_owned(),
            buf[split + 4..].to_vec(),
        )
    }

    async fn server_with_payload() -> (UpdateServer, Vec<u8>, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        // Larger than a piece (PIECE), and not a multiple of it.
        let data: Vec<u8> = (0..600_001u32).map(|i| (i % 251) as u8).collect();
        let p = d.path().join("b.raucb");
        std::fs::write(&p, &data).unwrap();
        let s = UpdateServer::start().await.unwrap();
        s.offer(Some(Offer {
            release: "beta".into(),
            version: "1001.0.0".into(),
            payload: p,
            sha256: crate::images::cache::sha256_bytes(&data),
            size: data.len() as u64,
        }));
        (s, data, d)
    }

    #[tokio::test]
    async fn an_omaha_update_check_gets_the_offer_as_an_update_manifest() {
        let (s, data, _d) = server_with_payload().await;
        let body = r#"<?xml version="1.0" encoding="UTF-8"?><request protocol="3.0"><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="1000.0.0" track="beta"><updatecheck></updatecheck></app></request>"#;
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let req = format!(
            "POST /v1/update/ HTTP/1.0\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), c.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains(" 200 "), "{text}");
        assert!(
            text.contains("<url codebase=\"http://10.0.2.100/payloads/\">"),
            "{text}"
        );
        assert!(text.contains("name=\"beta-1001.0.0.raucb\""), "{text}");
        let sha = crate::images::cache::sha256_bytes(&data);
        assert!(text.contains(&format!("hash_sha256=\"{sha}\"")), "{text}");
        assert!(text.contains(&format!("size=\"{}\"", data.len())), "{text}");
        assert_eq!(s.requests().last().unwrap().path, "/v1/update/ (omaha)");
    }

    #[tokio::test]
    async fn offers_and_serves_the_payload_and_records_requests() {
        let (s, data, _d) = server_with_payload().await;
        let (_, body) = get(s.addr, "/v1/update").await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["update"], true);
        assert_eq!(v["url"], "http://10.0.2.100/payloads/beta-1001.0.0.raucb");
        let (head, body) = get(s.addr, "/payloads/beta-1001.0.0.raucb").await;
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        assert_eq!(body, data);
        let (head, _) = get(s.addr, "/payloads/other.raucb").await;
        assert!(head.contains(" 404 "), "{head}");
        let log = s.requests();
        assert_eq!(log.len(), 3);
        assert_eq!(log[2].status, 404);
        s.offer(None);
        let (_, body) = get(s.addr, "/v1/update").await;
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["update"],
            false
        );
    }

    #[tokio::test]
    async fn faults_corrupt_truncate_and_stall() {
        let (s, data, _d) = server_with_payload().await;
        s.set_fault(Some(PayloadFault::Corrupt));
        let (_, body) = get(s.addr, "/payloads/beta-1001.0.0.raucb").await;
        assert_eq!(body.len(), data.len());
        let differ: Vec<usize> = (0..data.len()).filter(|&i| body[i] != data[i]).collect();
        assert_eq!(differ, vec![data.len() / 2], "one byte flipped, half-way");
        s.set_fault(Some(PayloadFault::Truncate));
        let (_, body) = get(s.addr, "/payloads/beta-1001.0.0.raucb").await;
        assert_eq!(body, data[..data.len() / 2]);
        s.set_fault(Some(PayloadFault::Stall));
        let (head, body) = get(s.addr, "/payloads/beta-1001.0.0.raucb").await;
        assert!(head.contains("content-length: 600001"), "{head}");
        assert_eq!(body, data[..data.len() / 2], "stalls after half");
    }

    #[tokio::test]
    async fn a_payload_changed_after_the_check_is_not_served() {
        let (s, mut data, d) = server_with_payload().await;
        data[5000] ^= 1;
        std::fs::write(d.path().join("b.raucb"), &data).unwrap();
        let (head, body) = get(s.addr, "/payloads/beta-1001.0.0.raucb").await;
        assert!(head.contains(" 500 "), "{head}");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("does not match its recorded digest"),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "found {}",
                crate::images::cache::sha256_bytes(&data)
            )),
            "{body}"
        );
        assert_eq!(s.requests().last().unwrap().status, 500);
    }

    #[tokio::test]
    async fn bytes_that_differ_from_the_checked_ones_are_cut_before_the_last_piece() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.raucb");
        let data = vec![7u8; (PIECE * 2 + 10) as usize];
        std::fs::write(&p, &data).unwrap();
        let sending = Sending {
            file: tokio::fs::File::open(&p).await.unwrap(),
            sent: 0,
            len: data.len() as u64,
            stop_at: data.len() as u64,
            flip_at: None,
            hash: sha2::Sha256::default(),
            // As if the file had changed between the check and the sending.
            expected: crate::images::cache::sha256_bytes(b"other bytes"),
            failed: false,
        };
        let pieces: Vec<std::io::Result<Vec<u8>>> =
            futures_util::StreamExt::collect(futures_util::stream::unfold(sending, Sending::next))
                .await;
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].as_ref().unwrap().len(), PIECE as usize);
        assert_eq!(pieces[1].as_ref().unwrap().len(), PIECE as usize);
        let e = pieces[2].as_ref().unwrap_err();
        assert!(e.to_string().contains("changed while it was sent"), "{e}");
    }

    #[test]
    fn guestfwd_targets_the_fixed_guest_address() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let s = rt.block_on(UpdateServer::start()).unwrap();
        let g = s.guestfwd(std::path::Path::new("/usr/bin/aviary"));
        assert!(
            g.starts_with(
                "guestfwd=tcp:10.0.2.100:80-cmd:/usr/bin/aviary guestfwd-proxy 127.0.0.1:"
            ),
            "{g}"
        );
    }
}
