//! A private PowerDNS Authoritative server (gsqlite3 backend, HTTP API) on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";
const BINARY: &str = "/usr/sbin/pdns_server";

/// A running PowerDNS; killed on drop.
pub struct PowerDns {
    child: Child,
    dir: TempDir,
    /// DNS (UDP and TCP) address.
    pub dns: SocketAddr,
    /// API base URL, e.g. `http://127.0.0.1:PORT/api/v1`.
    pub api_url: String,
    /// The API key (a test value).
    pub api_key: String,
}

impl PowerDns {
    /// Starts a fresh server with an empty database. Panics with a clear message when
    /// PowerDNS is not installed (run `scripts/test`, which installs it).
    pub fn start() -> PowerDns {
        Self::start_with(false)
    }

    /// [`PowerDns::start`] with PowerDNS's default packet and query caches on
    /// (`start` turns them off, so every answer comes from the database), for
    /// tests of what a client leaves in those caches.
    pub fn start_caching() -> PowerDns {
        Self::start_with(true)
    }

    fn start_with(caching: bool) -> PowerDns {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install pdns-server and pdns-backend-sqlite3 (scripts/test does)"
        );
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(caching) {
                Ok(p) => return p,
                Err(e) => last = e,
            }
        }
        panic!("PowerDNS did not start: {last}");
    }

    fn try_start(caching: bool) -> Result<PowerDns, String> {
        let dir = tempfile::Builder::new()
            .prefix("maildns-pdns-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let db = dir.path().join("pdns.sqlite3");
        let schema = std::fs::read_to_string(SCHEMA).map_err(|e| format!("{SCHEMA}: {e}"))?;
        let status = Command::new("sqlite3")
            .arg(&db)
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(schema.as_bytes())?;
                c.wait()
            })
            .map_err(|e| format!("sqlite3: {e} (install the sqlite3 package)"))?;
        if !status.success() {
            return Err("sqlite3 failed to create the database".into());
        }
        let dns_port = crate::free_port();
        let api_port = crate::free_port();
        let api_key = format!("test-{}", crate::random_label(24));
        let mut conf = format!(
            "launch=gsqlite3\n\
             gsqlite3-database={db}\n\
             local-address=127.0.0.1\n\
             local-port={dns_port}\n\
             api=yes\n\
             api-key={api_key}\n\
             webserver=yes\n\
             webserver-address=127.0.0.1\n\
             webserver-port={api_port}\n\
             webserver-allow-from=127.0.0.1/32\n\
             socket-dir={dir}\n\
             guardian=no\n\
             daemon=no\n\
             disable-syslog=yes\n\
             security-poll-suffix=\n\
             only-notify=\n\
             query-local-address=127.0.0.1\n\
             loglevel=3\n\
             cache-ttl=0\n\
             negquery-cache-ttl=0\n\
             query-cache-ttl=0\n",
            db = db.display(),
            dir = dir.path().display(),
        );
        if caching {
            // The longer names first: each ends with the shorter one.
            for off in [
                "negquery-cache-ttl=0\n",
                "query-cache-ttl=0\n",
                "cache-ttl=0\n",
            ] {
                conf = conf.replace(off, "");
            }
        }
        std::fs::write(dir.path().join("pdns.conf"), conf).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("pdns.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(BINARY)
            .arg(format!("--config-dir={}", dir.path().display()))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{BINARY}: {e}"))?;
        let api: SocketAddr = ([127, 0, 0, 1], api_port).into();
        let dns: SocketAddr = ([127, 0, 0, 1], dns_port).into();
        let ready = crate::wait_for_tcp(&mut child, api, Duration::from_secs(10))
            .and_then(|_| crate::wait_for_tcp(&mut child, dns, Duration::from_secs(10)));
        if let Err(e) = ready {
            crate::stop(&mut child);
            let log = std::fs::read_to_string(dir.path().join("pdns.log")).unwrap_or_default();
            return Err(format!("{e}; log:\n{log}"));
        }
        Ok(PowerDns {
            child,
            dir,
            dns,
            api_url: format!("http://127.0.0.1:{api_port}/api/v1"),
            api_key,
        })
    }

    /// The server's working directory (config, database, log).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Creates a Native zone `zone` (no trailing dot needed) with one NS and a SOA
    /// whose minimum is `soa_minimum` seconds.
    pub async fn create_zone(&self, zone: &str) {
        self.create_zone_with(zone, 3600, 300).await;
    }

    /// Like [`PowerDns::create_zone`], with the SOA record's TTL and MINIMUM given.
    pub async fn create_zone_with(&self, zone: &str, soa_ttl: u32, soa_minimum: u32) {
        let zone = zone.trim_end_matches('.');
        let body = serde_json::json!({
            "name": format!("{zone}."),
            "kind": "Native",
            "nameservers": [format!("ns1.{zone}.")],
            "rrsets": [
                {"name": format!("{zone}."), "type": "SOA", "ttl": soa_ttl, "changetype": "REPLACE",
                 "records": [{"content": format!("ns1.{zone}. hostmaster.{zone}. 1 10800 3600 604800 {soa_minimum}"), "disabled": false}]},
                {"name": format!("ns1.{zone}."), "type": "A", "ttl": 3600, "changetype": "REPLACE",
                 "records": [{"content": "127.0.0.1", "disabled": false}]}
            ]
        });
        let resp = reqwest::Client::new()
            .post(format!("{}/servers/localhost/zones", self.api_url))
            .header("X-API-Key", &self.api_key)
            .json(&body)
            .send()
            .await
            .expect("PowerDNS API reachable");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "create zone {zone}: {status} {text}");
    }

    /// Stops the server now (as a test of an unreachable host).
    pub fn kill(&mut self) {
        crate::stop(&mut self.child);
    }
}

impl Drop for PowerDns {
    fn drop(&mut self) {
        crate::stop(&mut self.child);
    }
}
