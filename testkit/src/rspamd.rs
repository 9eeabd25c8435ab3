//! A real Redis and a real rspamd on loopback, rspamd signing DKIM with keys
//! and selectors it reads from that Redis (as mailcow runs it).
//!
//! Both run in the foreground in one private 0700 directory (under /run, or
//! the crate's target/), with their logs there, at free ports on 127.0.0.1,
//! and both are stopped and the directory removed on drop (also when the test
//! panics).
//!
//! **Redis** (`redis-server`, Debian's redis-server 7.0) runs from a config file
//! in that directory: `bind 127.0.0.1`, no persistence, `requirepass` with a
//! random password ([`Redis::password`]), so the tests go through maildns's
//! password lookup. The password is never on a command line (`redis-cli`
//! reads it from `REDISCLI_AUTH`).
//!
//! **rspamd** (Debian's rspamd 3.4) runs as `rspamd -f -c <dir>/rspamd.conf`
//! with `--var` overrides for `LOCAL_CONFDIR`, `DBDIR`, `RUNDIR` and `LOGDIR`
//! (all in the directory: no system path is written). Its top-level
//! rspamd.conf is the harness's own, small on purpose: one normal worker, one
//! controller worker (password [`Rspamd::password`], `secure_ip` set to a
//! documentation address so loopback requests need the password too), the C
//! `dkim` module and the Lua `dkim_signing` module, whose settings come from
//! Debian's `modules.d/dkim_signing.conf` plus the harness's
//! `local.d/dkim_signing.conf` ([`Rspamd::dkim_signing_conf`]) — the file an
//! operator writes. Nothing else is loaded: Debian's stock configuration also
//! enables modules that fetch maps from rspamd.com and query public DNS
//! blocklists, and tests only ever talk to 127.0.0.1. rspamd's resolver points
//! at a closed loopback port, and `url_tld` at a four-line list (compiling the
//! full public-suffix list makes startup take 11 s instead of under 2 s; the
//! settings use `use_esld = false`, so the list is not consulted for signing).
//!
//! Run as root, rspamd refuses to run its workers as root: the harness passes
//! `-u _rspamd -g _rspamd` (the Debian package's user) and gives it the
//! directory. Otherwise it runs as the current user.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const RSPAMD: &str = "/usr/bin/rspamd";

/// The Redis hash of private keys (`key_prefix`), fields `selector.domain`.
pub const KEY_HASH: &str = "DKIM_KEYS";
/// The Redis hash of selectors (`selector_prefix`), fields `domain`.
pub const SELECTOR_HASH: &str = "DKIM_SELECTORS";

/// A running redis-server; stopped and its directory removed on drop.
pub struct Redis {
    child: Option<Child>,
    dir: PathBuf,
    /// Where it listens (127.0.0.1 and a free port).
    pub addr: SocketAddr,
    /// Its `requirepass` password (random; a test value).
    pub password: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Starts a fresh, empty Redis. Panics with a clear message when
    /// redis-server is missing (scripts/test installs it).
    pub fn start() -> Redis {
        assert!(
            crate::have(REDIS_SERVER),
            "{REDIS_SERVER} not found: install redis-server (scripts/test does)"
        );
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn try_start() -> Result<Redis, String> {
        let dir = crate::opendkim::private_dir_named("maildns-redis")?;
        let password = crate::random_label(24);
        let port = crate::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = dir.join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\nprotected-mode yes\ndaemonize no\n\
                 dir {dir}\nlogfile {dir}/redis.log\nsave \"\"\nappendonly no\n\
                 requirepass {password}\n",
                dir = dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut guard = Redis {
            child: None,
            dir,
            addr,
            password,
        };
        let child = Command::new(REDIS_SERVER)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{REDIS_SERVER}: {e}"))?;
        guard.child = Some(child);
        let child = guard.child.as_mut().ok_or("no child")?;
        crate::wait_for_tcp(child, addr, Duration::from_secs(10))
            .map_err(|e| format!("{e}; log:\n{}", guard.log()))?;
        Ok(guard)
    }

    /// Its URL without the password (`redis://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Runs `redis-cli` with `args` against it (password from the environment,
    /// never on the command line) and returns its output.
    ///
    /// # Errors
    /// Its output when it fails or cannot run.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .env("REDISCLI_AUTH", &self.password)
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !text.starts_with("(error)") && !text.starts_with("ERR") {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM, then SIGKILL after 15 s; waits until the process is gone.
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if start.elapsed() > Duration::from_secs(15) => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The `local.d/dkim_signing.conf` the harness writes for a Redis at `redis`
/// with password `password`: keys and selectors from Redis (hashes
/// [`KEY_HASH`] and [`SELECTOR_HASH`]), signing for authenticated users and
/// local addresses, each domain as itself (`use_esld = false`).
pub fn dkim_signing_conf(redis: SocketAddr, password: &str) -> String {
    format!(
        "# Keys and selectors from Redis: HGET {SELECTOR_HASH} <domain> -> selector,\n\
         # HGET {KEY_HASH} <selector>.<domain> -> private key.\n\
         use_redis = true;\n\
         servers = \"{redis}\";\n\
         password = \"{password}\";\n\
         key_prefix = \"{KEY_HASH}\";\n\
         selector_prefix = \"{SELECTOR_HASH}\";\n\
         sign_authenticated = true;\n\
         sign_local = true;\n\
         use_esld = false;\n\
         allow_username_mismatch = false;\n\
         try_fallback = true;\n"
    )
}

/// A running rspamd (main process, one normal and one controller worker);
/// stopped and its directory removed on drop.
pub struct Rspamd {
    child: Option<Child>,
    dir: PathBuf,
    /// The controller worker (HTTP, `Password` header required).
    pub controller: SocketAddr,
    /// The normal (scanner) worker.
    pub normal: SocketAddr,
    /// The controller's password (random; a test value).
    pub password: String,
}

impl std::fmt::Debug for Rspamd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rspamd")
            .field("controller", &self.controller)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Rspamd {
    /// Starts rspamd signing with keys from `redis` ([`dkim_signing_conf`]).
    /// Panics with a clear message when rspamd is missing (scripts/test
    /// installs it) or does not start.
    pub fn start(redis: &Redis) -> Rspamd {
        Self::start_with(&dkim_signing_conf(redis.addr, &redis.password))
    }

    /// Starts rspamd with `dkim_signing` as its `local.d/dkim_signing.conf`.
    pub fn start_with(dkim_signing: &str) -> Rspamd {
        Self::start_with_password(dkim_signing, &crate::random_label(24))
    }

    /// Starts rspamd with `dkim_signing` as its `local.d/dkim_signing.conf`
    /// and `password` as its controller's (several rspamds, one password).
    pub fn start_with_password(dkim_signing: &str, password: &str) -> Rspamd {
        assert!(
            crate::have(RSPAMD),
            "{RSPAMD} not found: install rspamd (scripts/test does)"
        );
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(dkim_signing, password) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("rspamd did not start: {last}");
    }

    fn try_start(dkim_signing: &str, password: &str) -> Result<Rspamd, String> {
        let dir = crate::opendkim::private_dir_named("maildns-rspamd")?;
        let io = |e: std::io::Error| e.to_string();
        for sub in ["local.d", "db", "run", "log"] {
            std::fs::create_dir(dir.join(sub)).map_err(io)?;
        }
        let password = password.to_string();
        let controller = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let normal = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        // A port nothing listens on: rspamd's resolver gets "connection
        // refused" at once instead of querying the machine's resolvers.
        let dead_dns = crate::free_port();
        std::fs::write(dir.join("tld.dat"), "com\nnet\norg\ntest\n").map_err(io)?;
        std::fs::write(
            dir.join("rspamd.conf"),
            format!(
                r#"# maildns test harness: only the DKIM modules, only loopback.
lua = "$RULESDIR/rspamd.lua";
modules {{
  path = "${{PLUGINSDIR}}";
}}
options {{
  pidfile = "$RUNDIR/rspamd.pid";
  filters = "dkim";
  explicit_modules = [];
  url_tld = "{tld}";
  hs_cache_dir = "$DBDIR/";
  cache_file = "$DBDIR/symbols.cache";
  history_file = "$DBDIR/rspamd.history";
  stats_file = "$DBDIR/stats.ucl";
  dynamic_conf = "$DBDIR/rspamd_dynamic";
  control_socket = "$DBDIR/rspamd.sock mode=0600";
  tempdir = "$DBDIR";
  dns {{
    nameserver = ["127.0.0.1:{dead_dns}"];
    timeout = 0.2s;
    retransmits = 1;
  }}
}}
logging {{
  type = "file";
  filename = "$LOGDIR/rspamd.log";
  level = "info";
}}
worker "normal" {{
  bind_socket = "{normal}";
  count = 1;
}}
worker "controller" {{
  bind_socket = "{controller}";
  count = 1;
  password = "{password}";
  secure_ip = "192.0.2.1";
  static_dir = "${{WWWDIR}}";
}}
.include "$CONFDIR/modules.d/dkim.conf"
.include "$CONFDIR/modules.d/dkim_signing.conf"
"#,
                tld = dir.join("tld.dat").display(),
            ),
        )
        .map_err(io)?;
        std::fs::write(dir.join("local.d/dkim_signing.conf"), dkim_signing).map_err(io)?;
        let (user, group) = if nix::unistd::geteuid().is_root() {
            let u = nix::unistd::User::from_name("_rspamd")
                .ok()
                .flatten()
                .ok_or("running as root, but there is no '_rspamd' user to run rspamd's workers as (install rspamd)")?;
            chown_tree(&dir, u.uid, u.gid)?;
            let g = nix::unistd::Group::from_gid(u.gid)
                .ok()
                .flatten()
                .map_or_else(|| u.gid.to_string(), |g| g.name);
            (u.name, g)
        } else {
            let u = nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .ok_or("cannot look up the current user")?;
            let g = nix::unistd::Group::from_gid(nix::unistd::getegid())
                .ok()
                .flatten()
                .ok_or("cannot look up the current group")?;
            (u.name, g.name)
        };
        let out = std::fs::File::create(dir.join("log/stdout.log")).map_err(io)?;
        let var = |name: &str, sub: &str| format!("--var={name}={}", dir.join(sub).display());
        let child = Command::new(RSPAMD)
            .args(["-f", "-u", &user, "-g", &group, "-c"])
            .arg(dir.join("rspamd.conf"))
            .arg(var("LOCAL_CONFDIR", ""))
            .arg(var("DBDIR", "db"))
            .arg(var("RUNDIR", "run"))
            .arg(var("LOGDIR", "log"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(io)?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("{RSPAMD}: {e}"))?;
        let mut guard = Rspamd {
            child: Some(child),
            dir,
            controller,
            normal,
            password,
        };
        for addr in [controller, normal] {
            let child = guard.child.as_mut().ok_or("no child")?;
            if let Err(e) = crate::wait_for_tcp(child, addr, Duration::from_secs(60)) {
                return Err(format!("{e}; log:\n{}", guard.log()));
            }
        }
        Ok(guard)
    }

    /// The controller's base URL (`http://127.0.0.1:PORT`).
    pub fn controller_url(&self) -> String {
        format!("http://{}", self.controller)
    }

    /// The `local.d/dkim_signing.conf` it runs with.
    pub fn dkim_signing_conf(&self) -> String {
        std::fs::read_to_string(self.dir.join("local.d/dkim_signing.conf")).unwrap_or_default()
    }

    /// Scans `message` through the controller's `/checkv2` as sent by the
    /// authenticated user `user` from 127.0.0.1, envelope From `mail_from`,
    /// and returns the DKIM-Signature values rspamd would add (its
    /// `dkim-signature` reply field; none when it did not sign).
    ///
    /// # Errors
    /// The request fails or the reply is not rspamd's JSON.
    pub async fn sign(
        &self,
        message: &str,
        user: &str,
        mail_from: &str,
    ) -> Result<Vec<String>, String> {
        let reply = reqwest::Client::new()
            .post(format!("{}/checkv2", self.controller_url()))
            .header("Password", &self.password)
            .header("User", user)
            .header("IP", "127.0.0.1")
            .header("From", mail_from)
            .header("Rcpt", "bob@example.net")
            .body(message.to_string())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = reply.status();
        let body: serde_json::Value = reply.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        Ok(match body.get("dkim-signature") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        })
    }

    /// Its log (rspamd.log, then what it printed).
    pub fn log(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.dir.join(p)).unwrap_or_default();
        format!("{}{}", read("log/rspamd.log"), read("log/stdout.log"))
    }
}

fn chown_tree(dir: &Path, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<(), String> {
    nix::unistd::chown(dir, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            nix::unistd::chown(&path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key written into Redis by hand is what rspamd signs with; a missing
    /// selector means no signature; the controller refuses a wrong password.
    #[tokio::test(flavor = "multi_thread")]
    async fn rspamd_signs_with_the_key_in_redis() {
        let redis = Redis::start();
        let rspamd = Rspamd::start(&redis);
        let msg = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: t\r\n\r\nHello.\r\n";
        let none = rspamd
            .sign(msg, "alice@example.com", "alice@example.com")
            .await
            .unwrap();
        assert!(none.is_empty(), "{none:?}");
        let key = Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .output()
            .unwrap();
        let pem = String::from_utf8(key.stdout).unwrap();
        redis
            .cli(&["HSET", KEY_HASH, "s1.example.com", &pem])
            .unwrap();
        redis
            .cli(&["HSET", SELECTOR_HASH, "example.com", "s1"])
            .unwrap();
        let sigs = rspamd
            .sign(msg, "alice@example.com", "alice@example.com")
            .await
            .unwrap();
        assert_eq!(sigs.len(), 1, "{sigs:?}\n{}", rspamd.log());
        assert_eq!(
            crate::opendkim::signature_tag(&sigs[0], "s").as_deref(),
            Some("s1")
        );
        assert_eq!(
            crate::opendkim::signature_tag(&sigs[0], "d").as_deref(),
            Some("example.com")
        );
        // A wrong controller password is refused.
        let reply = reqwest::Client::new()
            .post(format!("{}/checkv2", rspamd.controller_url()))
            .header("Password", "wrong")
            .body(msg)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 401);
        assert!(rspamd.dkim_signing_conf().contains("use_redis = true;"));
    }
}
