//! Test harness: starts real DNS servers on 127.0.0.1 at free ports, each in its
//! own temporary directory, and stops them when the handle is dropped (also when
//! the test panics).
//!
//! Only loopback addresses are ever used.

pub mod bind;
pub mod cmd;
pub mod conformance;
pub mod fakes;
pub mod faultproxy;
pub mod knot;
pub mod opendkim;
pub mod postgres;
pub mod powerdns;
pub mod rspamd;
pub mod secret_service;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

pub use bind::Bind;
pub use knot::Knot;
pub use postgres::Postgres;
pub use powerdns::PowerDns;
pub use rspamd::{Redis, Rspamd};
pub use secret_service::SessionBus;

/// A port free for both TCP and UDP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port on 127.0.0.1");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on `addr`, or the child exits, or `timeout`.
///
/// # Errors
/// A message when the child exits first or nothing listens within `timeout`.
pub fn wait_for_tcp(child: &mut Child, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited early with {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("nothing listening on {addr} after {timeout:?}"))
}

/// Waits until `addr` answers a UDP query for the SOA of `zone` with NOERROR
/// (named accepts TCP connections before its zones are loaded).
///
/// # Errors
/// A message when the child exits first or no NOERROR answer comes within
/// `timeout`.
pub fn wait_for_dns(
    child: &mut Child,
    addr: SocketAddr,
    zone: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in zone.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 6, 0, 1]);
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut buf = [0u8; 1500];
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited early with {status}"));
        }
        if sock.send_to(&q, addr).is_ok()
            && let Ok((n, _)) = sock.recv_from(&mut buf)
            && n >= 12
            && buf[0..2] == [0x12, 0x34]
            && buf[3] & 0x0f == 0
            && buf[7] > 0
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{addr} did not answer SOA {zone} after {timeout:?}"
    ))
}

/// Whether `program` can be found (absolute path or on PATH).
pub fn have(program: &str) -> bool {
    if Path::new(program).is_absolute() {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
        .unwrap_or(false)
}

/// Kills a child process and reaps it.
pub(crate) fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A random alphanumeric label, for unique zone names per test.
pub fn random_label(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let c = rng.random_range(0..36u8);
            if c < 10 {
                (b'0' + c) as char
            } else {
                (b'a' + c - 10) as char
            }
        })
        .collect()
}
