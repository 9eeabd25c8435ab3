//! A private Knot DNS (`knotd`) on loopback, serving one zone and taking
//! changes through its control socket (`knotc zone-begin` ... `zone-commit`),
//! for the exec host's example program (`contrib/exec/knot-knotc`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

const BINARY: &str = "/usr/sbin/knotd";

/// A running `knotd`; killed on drop.
pub struct Knot {
    child: Child,
    dir: TempDir,
    /// DNS (UDP and TCP) address.
    pub dns: SocketAddr,
    /// The zone it serves (no trailing dot).
    pub zone: String,
}

impl Knot {
    /// Starts `knotd` serving `zone` (SOA, NS and `extra` zone-file lines with
    /// relative owner names). Panics with a clear message when Knot is missing
    /// or does not start.
    pub fn start(zone: &str, extra: &[&str]) -> Knot {
        assert!(
            crate::have(BINARY),
            "{BINARY} not found: install knot (scripts/test does)"
        );
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(zone, extra) {
                Ok(k) => return k,
                Err(e) => last = e,
            }
        }
        panic!("knotd did not start: {last}");
    }

    fn try_start(zone: &str, extra: &[&str]) -> Result<Knot, String> {
        let zone = zone.trim_end_matches('.').to_string();
        let dir = tempfile::Builder::new()
            .prefix("maildns-knot-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let port = crate::free_port();
        let dns: SocketAddr = format!("127.0.0.1:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let d = dir.path().display();
        let mut zonefile = format!(
            "$ORIGIN {zone}.\n$TTL 3600\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n"
        );
        for l in extra {
            zonefile.push_str(l);
            zonefile.push('\n');
        }
        std::fs::write(dir.path().join(format!("{zone}.zone")), zonefile)
            .map_err(|e| e.to_string())?;
        let conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n\
             control:\n    listen: \"{d}/knot.sock\"\n\
             database:\n    storage: \"{d}\"\n\
             log:\n  - target: stderr\n    any: info\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: changes\n\
             zone:\n  - domain: {zone}\n"
        );
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("knotd.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(BINARY)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{BINARY}: {e}"))?;
        let ready = crate::wait_for_tcp(&mut child, dns, Duration::from_secs(10));
        let knot = Knot {
            child,
            dir,
            dns,
            zone,
        };
        if let Err(e) = ready {
            return Err(format!("{e}; log: {}", knot.log()));
        }
        // The control socket answers once the zone is loaded.
        for _ in 0..100 {
            let out = Command::new("knotc")
                .arg("-s")
                .arg(knot.socket())
                .arg("zone-status")
                .arg(&knot.zone)
                .output()
                .map_err(|e| format!("knotc: {e}"))?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("serial") {
                return Ok(knot);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the zone did not load; log: {}", knot.log()))
    }

    /// The control socket's path (for `knotc -s`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("knot.sock")
    }

    /// What `knotd` logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
