//! A real OpenDKIM started in the foreground (`opendkim -f -x CONF`), listening on a
//! unix socket in a private 0700 directory, and messages signed through it with
//! `miltertest`.
//!
//! The directory lives under /run (or, failing that, the crate's target/), never
//! under /tmp: /tmp is world-writable, so keys below it never pass OpenDKIM's
//! `RequireSafeKeys`. It is removed on drop, after OpenDKIM is stopped (SIGTERM,
//! waiting up to 15 s since it takes seconds to exit, then SIGKILL).
//!
//! There is no syslog here (`Syslog no`), so OpenDKIM's own log lines are not
//! captured; `log()` returns its stdout/stderr.
//!
//! Run as root, the filter drops to the `opendkim` user (`UserID opendkim`, the
//! Debian package's user) as in production, so files it cannot read as that user
//! make its reloads fail; the directory and key directory belong to that user.
//! Otherwise it runs as the current user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BINARY: &str = "/usr/sbin/opendkim";
/// OpenDBX's PostgreSQL driver (package libopendbx1-pgsql), which OpenDKIM's
/// `dsn:pgsql://` data sets load.
const ODBX_PGSQL: &str = "/usr/lib/opendbx/libpgsqlbackend.so";

/// A running opendkim; stopped and its directory removed on drop.
pub struct OpenDkim {
    child: Mutex<Option<Child>>,
    dir: PathBuf,
    /// The user it runs as (its `UserID`, or the current user).
    pub user: String,
    /// The opendkim.conf it runs with.
    pub conf: PathBuf,
    /// Its KeyTable (`file:`), initially empty.
    pub key_table: PathBuf,
    /// Its SigningTable (`refile:`), initially empty.
    pub signing_table: PathBuf,
    /// A 0700 directory for keys, passing RequireSafeKeys.
    pub key_dir: PathBuf,
    /// The milter socket (`local:` path; unused with [`OpenDkim::start_inet`]).
    pub socket: PathBuf,
    /// The TCP port with [`OpenDkim::start_inet`] (`Socket inet:PORT@127.0.0.1`).
    pub inet_port: Option<u16>,
}

impl OpenDkim {
    /// Starts opendkim with empty tables. Panics with a clear message when opendkim
    /// or miltertest is missing (scripts/test installs them).
    pub fn start() -> OpenDkim {
        Self::start_with("")
    }

    /// Starts opendkim with `extra` lines appended to its configuration (e.g.
    /// `SignatureAlgorithm ed25519-sha256`).
    pub fn start_with(extra: &str) -> OpenDkim {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install opendkim (scripts/test does)"
        );
        assert!(
            crate::have("miltertest"),
            "miltertest not found: install miltertest (scripts/test does)"
        );
        match Self::try_start(extra, None, None) {
            Ok(o) => o,
            Err(e) => panic!("opendkim did not start: {e}"),
        }
    }

    /// Starts opendkim with the data sets `key_table` and `signing_table` as
    /// its `KeyTable` and `SigningTable` (e.g. `dsn:pgsql://...` on a
    /// [`crate::Postgres`]) instead of the empty files.
    pub fn start_with_tables(key_table: &str, signing_table: &str) -> OpenDkim {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install opendkim (scripts/test does)"
        );
        assert!(
            Path::new(ODBX_PGSQL).exists(),
            "{ODBX_PGSQL} not found: install libopendbx1-pgsql (scripts/test does)"
        );
        match Self::try_start("", None, Some((key_table, signing_table))) {
            Ok(o) => o,
            Err(e) => panic!("opendkim did not start: {e}"),
        }
    }

    /// The `dsn:` data sets of a database on `pg` (as its superuser, whose
    /// password goes into the DSN as OpenDKIM needs it) for tables `keys`
    /// (columns id, domain, selector, private_key) and `signing` (pattern,
    /// key_id): `(KeyTable, SigningTable)`.
    pub fn pgsql_tables(
        pg: &crate::Postgres,
        database: &str,
        keys: &str,
        signing: &str,
    ) -> (String, String) {
        let prefix = format!(
            "dsn:pgsql://{}:{}@{}+{}/{database}",
            crate::postgres::USER,
            pg.password,
            pg.addr.port(),
            pg.addr.ip()
        );
        (
            format!("{prefix}/table={keys}?keycol=id?datacol=domain,selector,private_key"),
            format!("{prefix}/table={signing}?keycol=pattern?datacol=key_id"),
        )
    }

    /// Starts opendkim listening on TCP, `Socket inet:PORT@127.0.0.1` at a free
    /// port, with empty tables.
    pub fn start_inet() -> OpenDkim {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install opendkim (scripts/test does)"
        );
        match Self::try_start("", Some(crate::free_port()), None) {
            Ok(o) => o,
            Err(e) => panic!("opendkim did not start: {e}"),
        }
    }

    fn try_start(
        extra: &str,
        inet_port: Option<u16>,
        data_sets: Option<(&str, &str)>,
    ) -> Result<OpenDkim, String> {
        let dir = private_dir()?;
        let conf = dir.join("opendkim.conf");
        let key_table = dir.join("key.table");
        let signing_table = dir.join("signing.table");
        let key_dir = dir.join("keys");
        let socket = dir.join("opendkim.sock");
        let io = |e: std::io::Error| e.to_string();
        std::fs::create_dir(&key_dir).map_err(io)?;
        set_mode(&key_dir, 0o700)?;
        let drop_to = if nix::unistd::geteuid().is_root() {
            nix::unistd::User::from_name("opendkim").ok().flatten()
        } else {
            None
        };
        let user = match &drop_to {
            Some(u) => {
                for d in [&dir, &key_dir] {
                    nix::unistd::chown(d.as_path(), Some(u.uid), Some(u.gid))
                        .map_err(|e| format!("chown {}: {e}", d.display()))?;
                }
                u.name.clone()
            }
            None => nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default(),
        };
        let user_line = match &drop_to {
            Some(u) => format!("UserID {}\n", u.name),
            None => String::new(),
        };
        std::fs::write(&key_table, "").map_err(io)?;
        std::fs::write(&signing_table, "").map_err(io)?;
        std::fs::write(
            &conf,
            format!(
                "Syslog no\nBackground no\nMode s\nCanonicalization relaxed/simple\n\
                 Socket {sock}\nPidFile {dir}/opendkim.pid\n\
                 KeyTable {kt}\nSigningTable {st}\n{user_line}{extra}\n",
                sock = match inet_port {
                    Some(p) => format!("inet:{p}@127.0.0.1"),
                    None => format!("local:{}", socket.display()),
                },
                dir = dir.display(),
                kt = match data_sets {
                    Some((k, _)) => k.to_string(),
                    None => format!("file:{}", key_table.display()),
                },
                st = match data_sets {
                    Some((_, s)) => s.to_string(),
                    None => format!("refile:{}", signing_table.display()),
                },
            ),
        )
        .map_err(io)?;
        let guard = OpenDkim {
            child: Mutex::new(None),
            dir,
            user,
            conf,
            key_table,
            signing_table,
            key_dir,
            socket,
            inet_port,
        };
        guard.spawn()?;
        Ok(guard)
    }

    /// Starts the process (again) with the same configuration and waits for its
    /// socket.
    fn spawn(&self) -> Result<(), String> {
        let io = |e: std::io::Error| e.to_string();
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("opendkim.log"))
            .map_err(io)?;
        let child = Command::new(BINARY)
            .arg("-f")
            .arg("-x")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{BINARY}: {e}"))?;
        let mut slot = self.child.lock().map_err(|e| e.to_string())?;
        *slot = Some(child);
        let start = Instant::now();
        let listening = || match self.inet_port {
            Some(p) => std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
            // The socket file appears at bind(), before listen(): connect.
            None => std::os::unix::net::UnixStream::connect(&self.socket).is_ok(),
        };
        while !listening() {
            if let Some(c) = slot.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("no socket after 10 s; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Its process id (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(Child::id))
            .unwrap_or(0)
    }

    /// Its PidFile.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("opendkim.pid")
    }

    /// A command that makes it reload (SIGUSR1 to the pid in its PidFile, so it
    /// also works after a restart), for `Signer::reload_command`; fails when it
    /// is not running.
    pub fn reload_command(&self) -> Vec<String> {
        self.reload_command_after("true")
    }

    /// Like [`OpenDkim::reload_command`], running the shell command `before`
    /// first (e.g. to break a file right before the reload, as a fault).
    pub fn reload_command_after(&self, before: &str) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "{before}; kill -USR1 \"$(cat {})\"",
                self.pid_file().display()
            ),
        ]
    }

    /// Sends SIGUSR1 (OpenDKIM re-reads its configuration at the next connection).
    ///
    /// # Errors
    /// A message when the signal cannot be sent (the process is gone).
    pub fn reload(&self) -> Result<(), String> {
        let pid = i32::try_from(self.pid()).map_err(|e| e.to_string())?;
        kill(Pid::from_raw(pid), Signal::SIGUSR1).map_err(|e| e.to_string())
    }

    /// Stops it (SIGTERM, then SIGKILL after 15 s) and waits until it is gone.
    pub fn stop(&self) {
        let Ok(mut slot) = self.child.lock() else {
            return;
        };
        let Some(mut child) = slot.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > Duration::from_secs(15) => {
                    crate::stop(&mut child);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Starts it again after [`OpenDkim::stop`] (it reads its files afresh).
    /// Panics when it does not come up.
    pub fn restart(&self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("opendkim did not restart: {e}");
        }
    }

    /// Its stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("opendkim.log")).unwrap_or_default()
    }

    /// Feeds `message` (headers, blank line, body; `\n` or `\r\n` line ends) through
    /// the filter with miltertest and returns the value of the DKIM-Signature header
    /// it adds. The envelope sender is the From address. Err when no signature is
    /// added (e.g. the key failed to load: OpenDKIM answers tempfail).
    ///
    /// # Errors
    /// A message when miltertest fails or no signature is added.
    pub fn sign(&self, message: &str) -> Result<String, String> {
        let normalized = message.replace("\r\n", "\n");
        let (head, body) = normalized
            .split_once("\n\n")
            .unwrap_or((normalized.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push_str("\r\n");
                    last.1.push_str(line);
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.to_string(), v.trim_start().to_string()));
            } else {
                return Err(format!("not a header line: {line:?}"));
            }
        }
        let from = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("from"))
            .map(|(_, v)| address(v))
            .ok_or("message has no From header")?;
        let mut lua = format!(
            "local conn = mt.connect({sock})\n\
             if conn == nil then error('cannot connect') end\n\
             if mt.conninfo(conn, 'localhost', '127.0.0.1') ~= nil then error('conninfo') end\n\
             if mt.mailfrom(conn, {from}) ~= nil then error('mailfrom') end\n\
             if mt.rcptto(conn, '<rcpt@example.net>') ~= nil then error('rcptto') end\n",
            sock = lua_str(&format!("local:{}", self.socket.display())),
            from = lua_str(&format!("<{from}>")),
        );
        for (n, v) in &headers {
            lua.push_str(&format!(
                "if mt.header(conn, {}, {}) ~= nil then error('header') end\n",
                lua_str(n),
                lua_str(v)
            ));
        }
        lua.push_str(&format!(
            "if mt.eoh(conn) ~= nil then error('eoh') end\n\
             if mt.bodystring(conn, {}) ~= nil then error('body') end\n\
             if mt.eom(conn) ~= nil then error('eom') end\n\
             local v = mt.getheader(conn, 'DKIM-Signature', 0)\n\
             if v == nil then error('no DKIM-Signature added (reply ' .. tostring(mt.getreply(conn)) .. ')') end\n\
             io.write(v)\n\
             mt.disconnect(conn)\n",
            lua_str(&body.replace('\n', "\r\n"))
        ));
        let script = self
            .dir
            .join(format!("sign-{}.lua", crate::random_label(8)));
        std::fs::write(&script, lua).map_err(|e| e.to_string())?;
        // A loaded machine can leave miltertest without a connection (it then
        // exits 1 saying nothing); that is not what a test asks about: try again.
        let mut out = None;
        for _ in 0..3 {
            let o = Command::new("miltertest")
                .arg("-s")
                .arg(&script)
                .output()
                .map_err(|e| format!("miltertest: {e}"))?;
            let silent = !o.status.success() && o.stdout.is_empty() && o.stderr.is_empty();
            out = Some(o);
            if !silent {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = out.ok_or("miltertest did not run")?;
        let _ = std::fs::remove_file(&script);
        if !out.status.success() {
            return Err(format!(
                "miltertest {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The value of tag `tag` in a DKIM-Signature header value (folding removed).
pub fn signature_tag(signature: &str, tag: &str) -> Option<String> {
    let unfolded: String = signature.chars().filter(|c| !c.is_whitespace()).collect();
    unfolded.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k == tag).then(|| v.to_string())
    })
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn address(from: &str) -> String {
    match (from.find('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => from.get(a + 1..b).unwrap_or(from).to_string(),
        _ => from.trim().to_string(),
    }
}

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A fresh 0700 directory under /run, or under this crate's target/ when /run is
/// not writable.
fn private_dir() -> Result<PathBuf, String> {
    private_dir_named("maildns-opendkim")
}

/// A fresh 0700 directory `<prefix>-<random>` under /run, or under this
/// crate's target/ when /run is not writable.
pub(crate) fn private_dir_named(prefix: &str) -> Result<PathBuf, String> {
    let candidates = [
        PathBuf::from("/run"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")),
    ];
    let mut last = String::new();
    for base in candidates {
        let dir = base.join(format!("{prefix}-{}", crate::random_label(10)));
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        match b.create(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o700)?;
                return Ok(dir);
            }
            Err(e) => last = format!("{}: {e}", dir.display()),
        }
    }
    Err(last)
}
