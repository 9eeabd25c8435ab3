//! A private PostgreSQL server on loopback, for the shared state store and the
//! SQL signers.
//!
//! `initdb` makes a fresh cluster in a temporary directory, `postgres` serves it
//! on 127.0.0.1 at a free port with its unix socket in the same directory
//! (never the system's /var/run/postgresql), and the whole directory goes when
//! the handle is dropped (also when the test panics). The binaries are Debian
//! 12's (`postgresql` package, /usr/lib/postgresql/15/bin); `scripts/test`
//! installs them.
//!
//! PostgreSQL refuses to run as root: run as root, the harness runs `initdb`,
//! `postgres` and `createdb` as the package's `postgres` user (the directory
//! belongs to that user), as the OpenDKIM harness drops to `opendkim`.
//! Otherwise everything runs as the current user.
//!
//! The cluster's superuser is [`USER`] with a random password
//! ([`Postgres::password`]); TCP connections must give it (SCRAM-SHA-256), so
//! tests exercise maildns's password lookup. Connections through the unix
//! socket are trusted (the harness's own `createdb`/`psql`).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Where Debian 12 puts PostgreSQL 15's server binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The cluster's superuser.
pub const USER: &str = "maildns";

/// A running PostgreSQL; stopped (immediate shutdown) and removed on drop.
pub struct Postgres {
    child: Option<Child>,
    dir: PathBuf,
    run_as: Option<nix::unistd::User>,
    /// Address it listens on (127.0.0.1 and a free port).
    pub addr: SocketAddr,
    /// The superuser's password (random; a test value).
    pub password: String,
    /// The directory holding its unix socket (`.s.PGSQL.<port>`).
    pub socket_dir: PathBuf,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Starts a fresh cluster. Panics with a clear message when PostgreSQL is
    /// not installed (run `scripts/test`, which installs it).
    pub fn start() -> Postgres {
        let initdb = Path::new(BIN_DIR).join("initdb");
        assert!(
            crate::have(&initdb.to_string_lossy()),
            "{} not found: install postgresql (scripts/test does)",
            initdb.display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(p) => return p,
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn try_start() -> Result<Postgres, String> {
        let run_as = if nix::unistd::geteuid().is_root() {
            Some(
                nix::unistd::User::from_name("postgres")
                    .ok()
                    .flatten()
                    .ok_or("running as root, but there is no 'postgres' user to run PostgreSQL as (install postgresql)")?,
            )
        } else {
            None
        };
        let dir = crate::opendkim::private_dir_named("maildns-postgres")?;
        let password = crate::random_label(24);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).map_err(|e| e.to_string())?;
        if let Some(u) = &run_as {
            for p in [&dir, &pwfile] {
                nix::unistd::chown(p.as_path(), Some(u.uid), Some(u.gid))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
        let data = dir.join("data");
        let mut guard = Postgres {
            child: None,
            dir: dir.clone(),
            run_as,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            password,
            socket_dir: dir.clone(),
        };
        let out = guard
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-E", "UTF8", "--no-locale", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", text(&out)));
        }
        let _ = std::fs::remove_file(&pwfile);
        let port = crate::free_port();
        guard.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
        if let Some(u) = &guard.run_as {
            let _ = nix::unistd::chown(&dir.join("postgres.log"), Some(u.uid), Some(u.gid));
        }
        let child = guard
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            // A throwaway cluster: no durability needed, and small.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .args(["-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        guard.child = Some(child);
        let child = guard.child.as_mut().ok_or("no child")?;
        crate::wait_for_tcp(child, guard.addr, Duration::from_secs(20))
            .map_err(|e| format!("{e}; log:\n{}", guard.log()))?;
        // TCP accepts before the cluster takes queries; wait until psql works.
        let start = std::time::Instant::now();
        loop {
            match guard.psql("postgres", "SELECT 1") {
                Ok(_) => break,
                Err(e) if start.elapsed() > Duration::from_secs(20) => {
                    return Err(format!("{e}; log:\n{}", guard.log()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Ok(guard)
    }

    /// A command for one of PostgreSQL's binaries, run as the cluster's user.
    fn command(&self, binary: &str) -> Command {
        let mut c = Command::new(Path::new(BIN_DIR).join(binary));
        c.current_dir(&self.dir);
        if let Some(u) = &self.run_as {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
            c.env("HOME", &self.dir);
        }
        c
    }

    /// Creates database `name` (owned by [`USER`]) and returns its URL
    /// (without the password).
    ///
    /// # Panics
    /// When `createdb` fails.
    pub fn create_database(&self, name: &str) -> String {
        let out = self
            .command("createdb")
            .args(["-h", &self.socket_dir.to_string_lossy()])
            .args(["-p", &self.addr.port().to_string(), "-U", USER, name])
            .output()
            .unwrap_or_else(|e| panic!("createdb: {e}"));
        assert!(out.status.success(), "createdb {name}: {}", text(&out));
        self.url(name)
    }

    /// `postgres://maildns@127.0.0.1:PORT/<database>` (no password in it).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}@{}:{}/{database}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Runs `sql` with psql (through the unix socket, as [`USER`]) in
    /// `database`; returns its unaligned, tuples-only output.
    ///
    /// # Errors
    /// psql's message when it fails.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-h", &self.socket_dir.to_string_lossy()])
            .args([
                "-p",
                &self.addr.port().to_string(),
                "-U",
                USER,
                "-d",
                database,
            ])
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("psql: {}", text(&out)))
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGQUIT: immediate shutdown (a throwaway cluster).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGQUIT,
            );
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over_tcp(pg: &Postgres, password: &str) -> Output {
        Command::new("psql")
            .arg(pg.url("postgres"))
            .args(["-X", "-A", "-t", "-c", "SELECT current_user"])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .unwrap()
    }

    #[test]
    fn starts_on_loopback_and_wants_the_password_over_tcp() {
        let pg = Postgres::start();
        assert!(pg.addr.ip().is_loopback());
        let url = pg.create_database("state");
        assert_eq!(
            url,
            format!("postgres://maildns@127.0.0.1:{}/state", pg.addr.port())
        );
        assert_eq!(pg.psql("state", "SELECT 40 + 2").unwrap().trim(), "42");
        let ok = over_tcp(&pg, &pg.password);
        assert!(ok.status.success(), "{}", text(&ok));
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), USER);
        let bad = over_tcp(&pg, "wrong");
        assert!(!bad.status.success());
        assert!(
            text(&bad).contains("password authentication failed"),
            "{}",
            text(&bad)
        );
        let dir = pg.dir.clone();
        drop(pg);
        assert!(!dir.exists());
    }
}
