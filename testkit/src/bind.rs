//! A private BIND 9 (`named`) on loopback, serving one zone that accepts RFC 2136
//! updates signed with a TSIG key ([`Bind::start`]), or one zone loaded from a zone
//! file someone else writes ([`Bind::serve_file`], reloaded with [`Bind::reload`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use tempfile::TempDir;

const BINARY: &str = "/usr/sbin/named";

/// A running `named`; killed on drop.
pub struct Bind {
    child: Child,
    dir: TempDir,
    /// DNS (UDP and TCP) address.
    pub dns: SocketAddr,
    /// The zone it serves (no trailing dot).
    pub zone: String,
    /// TSIG key name.
    pub key_name: String,
    /// TSIG algorithm, e.g. `hmac-sha256`.
    pub algorithm: String,
    /// TSIG secret, base64.
    pub secret: String,
    /// A second TSIG key (same algorithm) that the server knows but that
    /// `update-policy` does not grant: updates signed with it are refused.
    pub readonly_key_name: String,
    /// Secret of [`Bind::readonly_key_name`], base64.
    pub readonly_secret: String,
}

/// How to start a [`Bind`].
#[derive(Debug, Clone)]
pub struct BindOptions {
    /// Zone to serve.
    pub zone: String,
    /// TSIG algorithm (`hmac-sha256`, `hmac-sha384`, `hmac-sha512`).
    pub algorithm: String,
    /// SOA record TTL, in seconds.
    pub soa_ttl: u32,
    /// SOA MINIMUM (negative-caching TTL).
    pub soa_minimum: u32,
    /// Extra zone-file lines (relative names), e.g. foreign TXT records.
    pub extra_records: Vec<String>,
}

impl BindOptions {
    /// Defaults for `zone`: hmac-sha256, SOA TTL 3600, minimum 300.
    pub fn new(zone: &str) -> Self {
        BindOptions {
            zone: zone.trim_end_matches('.').to_string(),
            algorithm: "hmac-sha256".into(),
            soa_ttl: 3600,
            soa_minimum: 300,
            extra_records: Vec::new(),
        }
    }
}

impl Bind {
    /// Starts `named` serving `zone` with an hmac-sha256 key.
    pub fn start(zone: &str) -> Bind {
        Self::start_with(BindOptions::new(zone))
    }

    /// Starts `named` with `opts`. Panics with a clear message when BIND is missing.
    pub fn start_with(opts: BindOptions) -> Bind {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install bind9 (scripts/test does)"
        );
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(&opts, None) {
                Ok(b) => return b,
                Err(e) => last = e,
            }
        }
        panic!("named did not start: {last}");
    }

    /// Starts `named` serving `zone` from the zone file `file` (read-only: no
    /// updates, no journal). `named`'s working directory is the file's directory, so
    /// relative `$INCLUDE` paths are taken from there. Panics when BIND is missing
    /// or does not load the file (the panic carries named's log).
    pub fn serve_file(zone: &str, file: &Path) -> Bind {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install bind9 (scripts/test does)"
        );
        let opts = BindOptions::new(zone);
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(&opts, Some(file)) {
                Ok(b) => return b,
                Err(e) => last = e,
            }
        }
        panic!("named did not start: {last}");
    }

    /// Asks `named` to reload its zones (SIGHUP to the process this harness
    /// started); a zone file changed since it was loaded is read again. Returns at
    /// once: the reload finishes a few milliseconds later.
    ///
    /// # Errors
    /// `kill` could not be run or failed.
    pub fn reload(&self) -> Result<(), String> {
        let out = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .output()
            .map_err(|e| format!("kill: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "kill -HUP: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// What named has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    fn try_start(opts: &BindOptions, file: Option<&Path>) -> Result<Bind, String> {
        let dir = tempfile::Builder::new()
            .prefix("maildns-bind-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        let port = crate::free_port();
        let zone = &opts.zone;
        let key_name = format!("maildns-{}", crate::random_label(8));
        let bytes: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
        let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
        let readonly_key_name = format!("maildns-ro-{}", crate::random_label(8));
        let bytes: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
        let readonly_secret = base64::engine::general_purpose::STANDARD.encode(bytes);
        let (workdir, zone_source) = match file {
            Some(f) => {
                let f = std::fs::canonicalize(f).map_err(|e| format!("{}: {e}", f.display()))?;
                let wd = f
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| d.to_path_buf());
                (wd, format!("file \"{}\";", f.display()))
            }
            None => (
                d.to_path_buf(),
                format!(
                    "file \"{}/zone.db\";\n  update-policy {{ grant {key_name} zonesub ANY; }};",
                    d.display()
                ),
            ),
        };
        let workdir = workdir.display();
        let conf = format!(
            r#"key "{key_name}" {{ algorithm {alg}; secret "{secret}"; }};
key "{readonly_key_name}" {{ algorithm {alg}; secret "{readonly_secret}"; }};
options {{
  directory "{workdir}";
  pid-file "{dir}/named.pid";
  session-keyfile "{dir}/session.key";
  managed-keys-directory "{dir}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  allow-query {{ 127.0.0.1; }};
  allow-transfer {{ none; }};
  notify no;
  dnssec-validation no;
  max-udp-size 4096;
}};
controls {{ }};
zone "{zone}" {{
  type primary;
  {zone_source}
}};
"#,
            alg = opts.algorithm,
            dir = d.display(),
        );
        let mut zonefile = format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ {soa_ttl} IN SOA ns1.{zone}. hostmaster.{zone}. 1 10800 3600 604800 {min}\n@ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n",
            soa_ttl = opts.soa_ttl,
            min = opts.soa_minimum,
        );
        for line in &opts.extra_records {
            zonefile.push_str(line);
            zonefile.push('\n');
        }
        std::fs::write(d.join("named.conf"), conf).map_err(|e| e.to_string())?;
        if file.is_none() {
            std::fs::write(d.join("zone.db"), zonefile).map_err(|e| e.to_string())?;
        }
        let log = std::fs::File::create(d.join("named.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(BINARY);
        cmd.arg("-g").arg("-c").arg(d.join("named.conf"));
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let mut child = cmd.spawn().map_err(|e| format!("{BINARY}: {e}"))?;
        let dns: SocketAddr = ([127, 0, 0, 1], port).into();
        if let Err(e) = crate::wait_for_tcp(&mut child, dns, Duration::from_secs(10))
            .and_then(|_| crate::wait_for_dns(&mut child, dns, zone, Duration::from_secs(10)))
        {
            crate::stop(&mut child);
            let log = std::fs::read_to_string(d.join("named.log")).unwrap_or_default();
            return Err(format!("{e}; log:\n{log}"));
        }
        Ok(Bind {
            child,
            dir,
            dns,
            zone: zone.clone(),
            key_name,
            algorithm: opts.algorithm.clone(),
            secret,
            readonly_key_name,
            readonly_secret,
        })
    }

    /// The server's working directory (config, zone file, journal, log).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Stops the server now.
    pub fn kill(&mut self) {
        crate::stop(&mut self.child);
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        crate::stop(&mut self.child);
    }
}
