//! A minimal milter client (the MTA side of Sendmail's milter protocol, version 6,
//! as libmilter speaks it): enough to feed one message through a running filter
//! and collect the headers it adds.
//!
//! Why our own client and not the `miltr-client` crate (evaluated, 0.1.3): it has
//! no way to send the `SMFIC_MACRO` packets (`{daemon_name}`, `{auth_type}`,
//! `{auth_authen}`, `i`, `j`) that OpenDKIM uses to decide whether a message is
//! from an internal or authenticated sender and must be signed; it is async over
//! `futures` I/O traits (adapters around tokio's), and one of its public methods
//! is a `todo!()`. The protocol part needed here is small: option negotiation,
//! macros, connect, HELO, MAIL, RCPT, DATA, headers, end of headers, body, end of
//! body (whose replies carry the modifications), quit.
//!
//! Packets: a 4-byte big-endian length (command byte included), one command byte,
//! then data; strings are NUL-terminated. Reference: libmilter's `mfdef.h` and
//! `docs/` in the Sendmail distribution; OpenDKIM's `Socket` syntax in
//! opendkim.conf(5).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where a milter listens, as OpenDKIM's `Socket` setting names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterSocket {
    /// `local:/path`, `unix:/path` or a bare `/path`.
    Unix(PathBuf),
    /// `inet:PORT@HOST` / `inet6:PORT@HOST`; `inet:PORT` (all interfaces) is
    /// reached on the loopback address.
    Inet {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// Why an OpenDKIM `Socket` value is not understood ([`MilterSocket::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketSpecError {
    /// `local:` or `unix:` with nothing after it.
    #[error("socket {} names no path", crate::quote::quoted(.0))]
    NoPath(String),
    /// None of the known socket forms.
    #[error("socket {} is not local:/path, unix:/path, inet:PORT@HOST or inet6:PORT@HOST", crate::quote::quoted(.0))]
    UnknownForm(String),
    /// An inet socket whose port is not a port number.
    #[error(
        "socket {}: {} is not a port",
        crate::quote::quoted(spec),
        crate::quote::quoted(port)
    )]
    BadPort {
        /// The socket value.
        spec: String,
        /// The text given as the port.
        port: String,
    },
}

impl MilterSocket {
    /// Parses an OpenDKIM `Socket` value (opendkim.conf(5)).
    ///
    /// # Errors
    /// A value that is none of `local:`, `unix:`, `inet:`, `inet6:` or a path, or
    /// an inet socket without a valid port.
    pub fn parse(spec: &str) -> Result<MilterSocket, SocketSpecError> {
        let spec = spec.trim();
        if let Some(p) = spec
            .strip_prefix("local:")
            .or_else(|| spec.strip_prefix("unix:"))
        {
            if p.is_empty() {
                return Err(SocketSpecError::NoPath(spec.to_string()));
            }
            return Ok(MilterSocket::Unix(PathBuf::from(p)));
        }
        if spec.starts_with('/') {
            return Ok(MilterSocket::Unix(PathBuf::from(spec)));
        }
        let (rest, loopback) = if let Some(r) = spec.strip_prefix("inet:") {
            (r, "127.0.0.1")
        } else if let Some(r) = spec.strip_prefix("inet6:") {
            (r, "::1")
        } else {
            return Err(SocketSpecError::UnknownForm(spec.to_string()));
        };
        let (port, host) = match rest.split_once('@') {
            Some((p, h)) => (p, h.trim_start_matches('[').trim_end_matches(']')),
            None => (rest, ""),
        };
        let port: u16 = port.parse().map_err(|_| SocketSpecError::BadPort {
            spec: spec.to_string(),
            port: port.to_string(),
        })?;
        let any = ["", "*", "0.0.0.0", "::", "INADDR_ANY"];
        let host = if any.contains(&host) { loopback } else { host };
        Ok(MilterSocket::Inet {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for MilterSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MilterSocket::Unix(p) => write!(f, "local:{}", p.display()),
            MilterSocket::Inet { host, port } => write!(f, "inet:{port}@{host}"),
        }
    }
}

/// The SMTP side of one message as the filter is told it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Client address given in the connect step (an address the filter treats as
    /// internal, e.g. 127.0.0.1).
    pub client_addr: IpAddr,
    /// Client host name.
    pub client_name: String,
    /// HELO name.
    pub helo: String,
    /// Envelope sender (without angle brackets).
    pub mail_from: String,
    /// Envelope recipient (without angle brackets).
    pub rcpt_to: String,
    /// Macros sent with the connect step (`j`, `{daemon_name}`, ...).
    pub connect_macros: Vec<(String, String)>,
    /// Macros sent with MAIL FROM (`i`, `{auth_type}`, `{auth_authen}`, ...).
    pub mail_macros: Vec<(String, String)>,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            client_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_name: "localhost".into(),
            helo: "localhost".into(),
            mail_from: String::new(),
            rcpt_to: String::new(),
            connect_macros: Vec::new(),
            mail_macros: Vec::new(),
        }
    }
}

/// What the filter answered at the end of the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Headers it asked to add or insert, in the order asked (name, value as sent).
    pub added_headers: Vec<(String, String)>,
    /// Its final verdict: `continue`, `accept`, `reject`, `tempfail`, `discard` or
    /// `reply <text>`, from the step that ended the exchange.
    pub verdict: String,
    /// The step that ended the exchange (`eom` normally).
    pub at: &'static str,
}

/// Why the exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MilterError {
    /// Nothing accepts connections at the socket (the filter is down).
    #[error("cannot connect to the milter at {socket}: {source}")]
    Connect {
        /// The socket.
        socket: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing failed mid-exchange (including time-outs).
    #[error("milter at {socket}: {step}: {source}")]
    Io {
        /// The socket.
        socket: String,
        /// The protocol step.
        step: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The filter said something this client does not understand.
    #[error("milter at {socket}: {step}: {what}")]
    Protocol {
        /// The socket.
        socket: String,
        /// The protocol step.
        step: &'static str,
        /// What was wrong.
        what: String,
    },
}

// Protocol constants (libmilter mfdef.h).
const VERSION: u32 = 6;
/// SMFIF_*: every modification action; the filter picks what it needs.
const ACTIONS: u32 = 0x1ff;
const NOCONNECT: u32 = 0x1;
const NOHELO: u32 = 0x2;
const NOMAIL: u32 = 0x4;
const NORCPT: u32 = 0x8;
const NOBODY: u32 = 0x10;
const NOHDRS: u32 = 0x20;
const NOEOH: u32 = 0x40;
const NR_HDR: u32 = 0x80;
const NODATA: u32 = 0x200;
const NR_CONN: u32 = 0x1000;
const NR_HELO: u32 = 0x2000;
const NR_MAIL: u32 = 0x4000;
const NR_RCPT: u32 = 0x8000;
const NR_DATA: u32 = 0x10000;
const NR_EOH: u32 = 0x40000;
const NR_BODY: u32 = 0x80000;
const HDR_LEADSPC: u32 = 0x100000;
/// SMFIP_* this client can honour (every skip/no-reply flag up to HDR_LEADSPC;
/// no larger message-chunk sizes).
const PROTOCOL: u32 = 0x1f_ffff;
/// Largest packet accepted from the filter.
const MAX_PACKET: usize = 1 << 20;
/// Largest body chunk sent (libmilter's default MILTER_CHUNK_SIZE).
const CHUNK: usize = 65535;

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

struct Conn {
    s: Box<dyn Stream>,
    socket: String,
}

enum Step {
    Continue,
    Stop(String),
}

impl Conn {
    fn io(&self, step: &'static str) -> impl Fn(std::io::Error) -> MilterError + '_ {
        move |source| MilterError::Io {
            socket: self.socket.clone(),
            step,
            source,
        }
    }

    fn proto(&self, step: &'static str, what: String) -> MilterError {
        MilterError::Protocol {
            socket: self.socket.clone(),
            step,
            what,
        }
    }

    fn send(&mut self, step: &'static str, cmd: u8, data: &[u8]) -> Result<(), MilterError> {
        let len = u32::try_from(data.len() + 1)
            .map_err(|_| self.proto(step, "packet too large".into()))?;
        let mut buf = Vec::with_capacity(data.len() + 5);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.push(cmd);
        buf.extend_from_slice(data);
        let r = self.s.write_all(&buf);
        r.map_err(self.io(step))
    }

    fn recv(&mut self, step: &'static str) -> Result<(u8, Vec<u8>), MilterError> {
        let mut len = [0u8; 4];
        let r = self.s.read_exact(&mut len);
        r.map_err(self.io(step))?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_PACKET {
            return Err(self.proto(step, format!("bad packet length {len}")));
        }
        let mut buf = vec![0u8; len];
        let r = self.s.read_exact(&mut buf);
        r.map_err(self.io(step))?;
        let cmd = buf.remove(0);
        Ok((cmd, buf))
    }

    /// Reads the reply to a non-final command.
    fn reply(&mut self, step: &'static str) -> Result<Step, MilterError> {
        loop {
            let (cmd, data) = self.recv(step)?;
            match cmd {
                b'c' | b's' => return Ok(Step::Continue),
                b'p' => continue,
                other => return Ok(Step::Stop(verdict(other, &data))),
            }
        }
    }

    fn macros(
        &mut self,
        step: &'static str,
        for_cmd: u8,
        macros: &[(String, String)],
    ) -> Result<(), MilterError> {
        if macros.is_empty() {
            return Ok(());
        }
        let mut data = vec![for_cmd];
        for (k, v) in macros {
            data.extend_from_slice(k.as_bytes());
            data.push(0);
            data.extend_from_slice(v.as_bytes());
            data.push(0);
        }
        self.send(step, b'D', &data)
    }
}

fn verdict(cmd: u8, data: &[u8]) -> String {
    match cmd {
        b'a' => "accept".into(),
        b'r' => "reject".into(),
        b't' => "tempfail".into(),
        b'd' => "discard".into(),
        b'y' => format!(
            "reply {}",
            String::from_utf8_lossy(data).trim_end_matches('\0')
        ),
        other => format!("unexpected reply {:?}", other as char),
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().filter(|b| *b != 0).collect();
    v.push(0);
    v
}

/// Splits NUL-terminated strings.
fn strings(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn connect(socket: &MilterSocket, timeout: Duration) -> Result<Conn, MilterError> {
    let name = socket.to_string();
    let fail = |source| MilterError::Connect {
        socket: name.clone(),
        source,
    };
    let s: Box<dyn Stream> = match socket {
        MilterSocket::Unix(p) => {
            let s = UnixStream::connect(p).map_err(fail)?;
            s.set_read_timeout(Some(timeout)).map_err(fail)?;
            s.set_write_timeout(Some(timeout)).map_err(fail)?;
            Box::new(s)
        }
        MilterSocket::Inet { host, port } => {
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(fail)?
                .collect();
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            let mut found = None;
            for a in addrs {
                match TcpStream::connect_timeout(&a, timeout) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let s = found.ok_or(last).map_err(fail)?;
            s.set_read_timeout(Some(timeout)).map_err(fail)?;
            s.set_write_timeout(Some(timeout)).map_err(fail)?;
            Box::new(s)
        }
    };
    Ok(Conn { s, socket: name })
}

/// Feeds one message (`headers` as (name, value) without the leading space,
/// `body` with CRLF line ends) through the filter at `socket`, every read and
/// write bounded by `timeout`, and returns what it answered. Blocking.
///
/// # Errors
/// [`MilterError::Connect`] when nothing listens; [`MilterError::Io`] or
/// [`MilterError::Protocol`] when the exchange breaks.
pub fn send_message(
    socket: &MilterSocket,
    envelope: &Envelope,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<Reply, MilterError> {
    let mut c = connect(socket, timeout)?;
    let result = exchange(&mut c, envelope, headers, body);
    // Best effort: the filter frees the connection on quit or on close.
    let _ = c.send("quit", b'Q', &[]);
    result
}

fn exchange(
    c: &mut Conn,
    env: &Envelope,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Reply, MilterError> {
    let mut neg = Vec::with_capacity(12);
    neg.extend_from_slice(&VERSION.to_be_bytes());
    neg.extend_from_slice(&ACTIONS.to_be_bytes());
    neg.extend_from_slice(&PROTOCOL.to_be_bytes());
    c.send("negotiate", b'O', &neg)?;
    let (cmd, data) = c.recv("negotiate")?;
    let word = |i: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(i * 4..i * 4 + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    };
    let (Some(version), Some(proto)) = (word(0), word(2)) else {
        return Err(c.proto(
            "negotiate",
            format!("short option reply (command {:?})", cmd as char),
        ));
    };
    if cmd != b'O' || version < 2 {
        return Err(c.proto(
            "negotiate",
            format!(
                "unexpected option reply {:?} version {version}",
                cmd as char
            ),
        ));
    }
    if proto & !PROTOCOL != 0 {
        return Err(c.proto(
            "negotiate",
            format!(
                "filter asks for protocol features {:#x} this client does not offer",
                proto & !PROTOCOL
            ),
        ));
    }
    let has = |f: u32| proto & f != 0;
    let stop = |at: &'static str, v: String| Reply {
        added_headers: Vec::new(),
        verdict: v,
        at,
    };

    // One step: macros, command, reply (unless the filter asked for no reply).
    macro_rules! step {
        ($name:literal, $cmd:expr, $data:expr, $skip:expr, $noreply:expr, $macros:expr) => {
            if !$skip {
                c.macros($name, $cmd, $macros)?;
                c.send($name, $cmd, $data)?;
                if !$noreply {
                    if let Step::Stop(v) = c.reply($name)? {
                        return Ok(stop($name, v));
                    }
                }
            }
        };
    }

    let mut conn = cstr(&env.client_name);
    let (family, addr) = match env.client_addr {
        IpAddr::V4(a) => (b'4', a.to_string()),
        IpAddr::V6(a) => (b'6', a.to_string()),
    };
    conn.push(family);
    conn.extend_from_slice(&25u16.to_be_bytes());
    conn.extend_from_slice(&cstr(&addr));
    step!(
        "connect",
        b'C',
        &conn,
        has(NOCONNECT),
        has(NR_CONN),
        &env.connect_macros
    );
    step!(
        "helo",
        b'H',
        &cstr(&env.helo),
        has(NOHELO),
        has(NR_HELO),
        &[]
    );
    step!(
        "mail",
        b'M',
        &cstr(&format!("<{}>", env.mail_from)),
        has(NOMAIL),
        has(NR_MAIL),
        &env.mail_macros
    );
    step!(
        "rcpt",
        b'R',
        &cstr(&format!("<{}>", env.rcpt_to)),
        has(NORCPT),
        has(NR_RCPT),
        &[]
    );
    step!("data", b'T', &[], has(NODATA), has(NR_DATA), &[]);
    for (name, value) in headers {
        let mut h = cstr(name);
        // With HDR_LEADSPC the filter sees the value as it follows the colon.
        let v = if has(HDR_LEADSPC) {
            format!(" {value}")
        } else {
            value.clone()
        };
        h.extend_from_slice(&cstr(&v));
        step!("header", b'L', &h, has(NOHDRS), has(NR_HDR), &[]);
    }
    step!("eoh", b'N', &[], has(NOEOH), has(NR_EOH), &[]);
    if !has(NOBODY) {
        for chunk in body.chunks(CHUNK) {
            step!("body", b'B', chunk, false, has(NR_BODY), &[]);
        }
    }
    c.send("eom", b'E', &[])?;
    let mut added = Vec::new();
    loop {
        let (cmd, data) = c.recv("eom")?;
        match cmd {
            b'h' => {
                let s = strings(&data);
                if let (Some(n), Some(v)) = (s.first(), s.get(1)) {
                    added.push((n.clone(), v.clone()));
                }
            }
            b'i' => {
                let s = strings(data.get(4..).unwrap_or_default());
                if let (Some(n), Some(v)) = (s.first(), s.get(1)) {
                    added.push((n.clone(), v.clone()));
                }
            }
            // Progress, and modifications a probe does not care about.
            b'p' | b'm' | b'b' | b'+' | b'-' | b'2' | b'e' | b'q' => {}
            b'c' => {
                return Ok(Reply {
                    added_headers: added,
                    verdict: "continue".into(),
                    at: "eom",
                });
            }
            other => {
                return Ok(Reply {
                    added_headers: added,
                    verdict: verdict(other, &data),
                    at: "eom",
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_specs_as_opendkim_writes_them() {
        assert_eq!(
            MilterSocket::parse("local:/run/opendkim/opendkim.sock").unwrap(),
            MilterSocket::Unix("/run/opendkim/opendkim.sock".into())
        );
        assert_eq!(
            MilterSocket::parse("unix:/x.sock").unwrap(),
            MilterSocket::Unix("/x.sock".into())
        );
        assert_eq!(
            MilterSocket::parse("/x.sock").unwrap(),
            MilterSocket::Unix("/x.sock".into())
        );
        assert_eq!(
            MilterSocket::parse("inet:8891@localhost").unwrap(),
            MilterSocket::Inet {
                host: "localhost".into(),
                port: 8891
            }
        );
        assert_eq!(
            MilterSocket::parse("inet:8891").unwrap(),
            MilterSocket::Inet {
                host: "127.0.0.1".into(),
                port: 8891
            }
        );
        assert_eq!(
            MilterSocket::parse("inet6:8891@[::1]").unwrap(),
            MilterSocket::Inet {
                host: "::1".into(),
                port: 8891
            }
        );
        assert!(MilterSocket::parse("inet:port@localhost").is_err());
        assert!(MilterSocket::parse("tcp:1@x").is_err());
        assert!(MilterSocket::parse("local:").is_err());
        assert_eq!(
            MilterSocket::parse("inet:12@127.0.0.1")
                .unwrap()
                .to_string(),
            "inet:12@127.0.0.1"
        );
    }

    #[test]
    fn nothing_listening_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = send_message(
            &MilterSocket::Unix(dir.path().join("none.sock")),
            &Envelope::default(),
            &[],
            b"",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, MilterError::Connect { .. }), "{err}");
    }
}
