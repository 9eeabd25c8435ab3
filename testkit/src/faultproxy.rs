//! A fault-injecting HTTP/1.1 proxy on loopback, put in front of a real server
//! (PowerDNS's API) to break a share of the requests the way real networks and
//! hosts do:
//!
//! - [`Fault::CutBody`]: the request is applied, and the answer is cut mid-body (the
//!   full `Content-Length` announced, half of the body sent, then the connection
//!   closed). A body-less answer (PowerDNS's `204` to a `PATCH`) is cut inside its
//!   header instead.
//! - [`Fault::ResetBeforeApply`]: the connection is reset (TCP RST) once the request
//!   has been read, before it reaches the server.
//! - [`Fault::ResetAfterApply`]: the request is applied, then the connection is
//!   reset instead of answering.
//! - [`Fault::ServerErrorAfterApply`]: the request is applied, then a `503` is
//!   answered instead of the server's answer.
//!
//! Every request gets its own upstream connection and the client's connection is
//! closed after each answer (`Connection: close`), so a fault never leaks into the
//! next request. A rewrite hook can change successful answer bodies (to play a
//! server that answers out of its documented format).
//!
//! Only `127.0.0.1` is ever bound or connected to.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One way of breaking a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Applied, then the answer cut mid-body.
    CutBody,
    /// Reset before the request reaches the server (not applied).
    ResetBeforeApply,
    /// Applied, then the connection reset without an answer.
    ResetAfterApply,
    /// Applied, then answered `503` instead.
    ServerErrorAfterApply,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 4] = [
        Fault::CutBody,
        Fault::ResetBeforeApply,
        Fault::ResetAfterApply,
        Fault::ServerErrorAfterApply,
    ];

    fn index(self) -> usize {
        match self {
            Fault::CutBody => 0,
            Fault::ResetBeforeApply => 1,
            Fault::ResetAfterApply => 2,
            Fault::ServerErrorAfterApply => 3,
        }
    }
}

/// Changes a successful answer's body: `(method, path, body) -> new body`.
pub type Rewrite = Arc<dyn Fn(&str, &str, &[u8]) -> Vec<u8> + Send + Sync>;

/// Counts of what the proxy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests read from clients.
    pub requests: usize,
    /// Requests broken, per fault in [`Fault::ALL`] order.
    pub faults: [usize; 4],
}

impl ProxyStats {
    /// Requests broken in any way.
    pub fn faulted(&self) -> usize {
        self.faults.iter().sum()
    }

    /// Requests broken with `fault`.
    pub fn of(&self, fault: Fault) -> usize {
        self.faults[fault.index()]
    }
}

struct Shared {
    upstream: SocketAddr,
    percent: u32,
    faults: Vec<Fault>,
    rng: Mutex<StdRng>,
    rewrite: Option<Rewrite>,
    requests: AtomicUsize,
    counts: [AtomicUsize; 4],
    stop: AtomicBool,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Proxies to `upstream`, breaking `percent` % of requests with one of `faults`
    /// (chosen uniformly), with a seeded random source so runs are comparable.
    pub fn start(upstream: SocketAddr, percent: u32, faults: &[Fault], seed: u64) -> FaultProxy {
        Self::start_with(upstream, percent, faults, seed, None)
    }

    /// A proxy that breaks nothing and passes every successful answer's body through
    /// `rewrite`.
    pub fn rewriting(upstream: SocketAddr, rewrite: Rewrite) -> FaultProxy {
        Self::start_with(upstream, 0, &[], 0, Some(rewrite))
    }

    /// [`FaultProxy::rewriting`] in front of the server at `base_url`
    /// (`http://127.0.0.1:PORT/path`); returns the proxy and the same URL through it.
    pub fn rewriting_url(base_url: &str, rewrite: Rewrite) -> (FaultProxy, String) {
        let rest = base_url
            .strip_prefix("http://")
            .expect("a plain-http loopback URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let upstream: SocketAddr = authority.parse().expect("an IP:port authority");
        let proxy = Self::rewriting(upstream, rewrite);
        let url = proxy.url(path);
        (proxy, url)
    }

    fn start_with(
        upstream: SocketAddr,
        percent: u32,
        faults: &[Fault],
        seed: u64,
        rewrite: Option<Rewrite>,
    ) -> FaultProxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only talks to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            percent: if faults.is_empty() { 0 } else { percent },
            faults: faults.to_vec(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rewrite,
            requests: AtomicUsize::new(0),
            counts: Default::default(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                });
            }
        });
        FaultProxy { addr, shared }
    }

    /// `http://127.0.0.1:PORT` followed by `path` (e.g. `/api/v1`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        let mut faults = [0; 4];
        for (i, c) in self.shared.counts.iter().enumerate() {
            faults[i] = c.load(Ordering::SeqCst);
        }
        ProxyStats {
            requests: self.shared.requests.load(Ordering::SeqCst),
            faults,
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// One parsed HTTP/1.1 message: the head's lines and the body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head with hop-by-hop and length headers replaced: `Connection: close`
    /// and, when `length` is given, that `Content-Length`.
    fn head(&self, length: Option<usize>) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if [
                "connection",
                "content-length",
                "transfer-encoding",
                "keep-alive",
            ]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(n) = length {
            out.push_str(&format!("Content-Length: {n}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// Reads one message from `s`: a request (body by `Content-Length`) or, with
/// `to_eof`, an answer (body by length, by chunks, or until the server closes).
fn read_message(s: &mut TcpStream, to_eof: bool) -> std::io::Result<Option<Message>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut msg = Message {
        start,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: Option<usize> = msg.header("content-length").and_then(|v| v.parse().ok());
    let chunked = msg
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if to_eof {
        // By length, by chunks, or until the server closes.
        loop {
            let done = if chunked {
                msg.body.ends_with(b"0\r\n\r\n")
            } else {
                length.is_some_and(|n| msg.body.len() >= n)
            };
            if done {
                break;
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            msg.body.extend_from_slice(&chunk[..n]);
        }
        if chunked {
            msg.body = dechunk(&msg.body);
        } else if let Some(n) = length {
            msg.body.truncate(n);
        }
    } else {
        let n = length.unwrap_or(0);
        while msg.body.len() < n {
            let k = s.read(&mut chunk)?;
            if k == 0 {
                break;
            }
            msg.body.extend_from_slice(&chunk[..k]);
        }
        msg.body.truncate(n);
    }
    Ok(Some(msg))
}

/// Decodes a complete chunked body (RFC 9112 §7.1); trailers are dropped.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Closes with a TCP RST (linger 0) instead of a FIN.
fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let Some(request) = read_message(&mut client, false)? else {
        return Ok(());
    };
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let fault = {
        let mut rng = shared.rng.lock().unwrap_or_else(|p| p.into_inner());
        if shared.percent > 0 && rng.random_range(0..100) < shared.percent {
            Some(shared.faults[rng.random_range(0..shared.faults.len())])
        } else {
            None
        }
    };
    if let Some(f) = fault {
        shared.counts[f.index()].fetch_add(1, Ordering::SeqCst);
    }
    if fault == Some(Fault::ResetBeforeApply) {
        reset(client);
        return Ok(());
    }
    let mut upstream = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5))?;
    upstream.set_read_timeout(Some(Duration::from_secs(30)))?;
    upstream.write_all(&request.head(Some(request.body.len())))?;
    upstream.write_all(&request.body)?;
    let Some(mut answer) = read_message(&mut upstream, true)? else {
        reset(client);
        return Ok(());
    };
    let _ = upstream.shutdown(Shutdown::Both);
    let status: u16 = answer
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if let Some(rewrite) = &shared.rewrite
        && (200..300).contains(&status)
    {
        let mut parts = request.start.split_whitespace();
        let method = parts.next().unwrap_or_default();
        let path = parts.next().unwrap_or_default();
        answer.body = rewrite(method, path, &answer.body);
    }
    let no_body = status == 204 || status == 304;
    let head = answer.head((!no_body).then_some(answer.body.len()));
    match fault {
        Some(Fault::ResetAfterApply) => reset(client),
        Some(Fault::ServerErrorAfterApply) => {
            let body = br#"{"error":"injected fault: 503 after applying"}"#;
            let msg = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(msg.as_bytes())?;
            client.write_all(body)?;
            client.shutdown(Shutdown::Write)?;
        }
        Some(Fault::CutBody) => {
            if answer.body.is_empty() {
                client.write_all(&head[..head.len() / 2])?;
            } else {
                client.write_all(&head)?;
                client.write_all(&answer.body[..answer.body.len() / 2])?;
            }
            client.flush()?;
            client.shutdown(Shutdown::Write)?;
        }
        _ => {
            client.write_all(&head)?;
            if !no_body {
                client.write_all(&answer.body)?;
            }
            client.shutdown(Shutdown::Write)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_joins_chunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b""), b"");
    }
}
