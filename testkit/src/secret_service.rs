//! A private D-Bus session bus, optionally with a real Secret Service on it
//! (GNOME Keyring's `gnome-keyring-daemon --components=secrets`, unlocked with a
//! test password), each in its own temporary directory.
//!
//! The bus listens on a unix socket in that directory only (never TCP) and
//! activates no services (its configuration names no service directory), so
//! nothing else on the machine is started or reached. Pass [`SessionBus::address`]
//! as `DBUS_SESSION_BUS_ADDRESS` to the child processes under test; this
//! process's environment is left alone.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const DBUS_DAEMON: &str = "dbus-daemon";
const DBUS_SEND: &str = "dbus-send";
const GNOME_KEYRING: &str = "gnome-keyring-daemon";

/// A running session bus (and Secret Service); both killed on drop.
pub struct SessionBus {
    bus: Child,
    keyring: Option<Child>,
    dir: TempDir,
    /// The bus address, e.g. `unix:path=/tmp/maildns-dbus-XXXX/dbus-YYYY,guid=...`.
    pub address: String,
}

impl SessionBus {
    /// Starts a bus with nothing on it. Panics with a clear message when
    /// dbus-daemon is not installed (run `scripts/test`, which installs it).
    pub fn start() -> SessionBus {
        assert!(
            crate::have(DBUS_DAEMON) && crate::have(DBUS_SEND),
            "{DBUS_DAEMON} or {DBUS_SEND} not found: install dbus-daemon and dbus-bin (scripts/test does)"
        );
        Self::try_start().unwrap_or_else(|e| panic!("dbus-daemon did not start: {e}"))
    }

    /// Starts a bus with GNOME Keyring's Secret Service on it, its login
    /// collection (the `default` alias) created and unlocked, and waits until
    /// the service owns `org.freedesktop.secrets`.
    pub fn with_secret_service() -> SessionBus {
        assert!(
            crate::have(GNOME_KEYRING),
            "{GNOME_KEYRING} not found: install gnome-keyring (scripts/test does)"
        );
        let mut bus = Self::start();
        if let Err(e) = bus.start_keyring(true) {
            panic!("gnome-keyring-daemon did not start: {e}");
        }
        bus
    }

    /// Like [`SessionBus::with_secret_service`], but never unlocked: there is
    /// no login collection, and no prompter can run on this bus, so the service
    /// answers but refuses to store or read (what a headless box with an
    /// activatable, locked GNOME Keyring looks like).
    pub fn with_locked_secret_service() -> SessionBus {
        assert!(
            crate::have(GNOME_KEYRING),
            "{GNOME_KEYRING} not found: install gnome-keyring (scripts/test does)"
        );
        let mut bus = Self::start();
        if let Err(e) = bus.start_keyring(false) {
            panic!("gnome-keyring-daemon did not start: {e}");
        }
        bus
    }

    fn try_start() -> Result<SessionBus, String> {
        let dir = tempfile::Builder::new()
            .prefix("maildns-dbus-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir = dir.path().display()
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        // --nofork keeps the daemon our child, so drop can kill and reap it.
        let mut bus = Command::new(DBUS_DAEMON)
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{DBUS_DAEMON}: {e}"))?;
        let mut line = String::new();
        let read = bus
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        let address = line.trim().to_string();
        if !matches!(read, Some(Ok(n)) if n > 0) || !address.starts_with("unix:") {
            crate::stop(&mut bus);
            return Err(format!("no unix address printed (got {address:?})"));
        }
        Ok(SessionBus {
            bus,
            keyring: None,
            dir,
            address,
        })
    }

    fn start_keyring(&mut self, unlock: bool) -> Result<(), String> {
        let home = self.dir.path().join("home");
        let runtime = self.dir.path().join("run");
        for d in [&home, &runtime] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut child = Command::new(GNOME_KEYRING)
            .args(unlock.then_some("--unlock"))
            .args(["--components=secrets", "--foreground"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{GNOME_KEYRING}: {e}"))?;
        // The login collection's password, on stdin (a test value).
        let written = child.stdin.take().map(|mut s| {
            if unlock {
                s.write_all(b"maildns-test-keyring")
            } else {
                Ok(())
            }
        });
        if !matches!(written, Some(Ok(()))) {
            crate::stop(&mut child);
            return Err("cannot write the unlock password".into());
        }
        let start = Instant::now();
        let timeout = Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited early with {status}"));
            }
            if self.name_has_owner("org.freedesktop.secrets") {
                break;
            }
            if start.elapsed() > timeout {
                crate::stop(&mut child);
                return Err(format!(
                    "org.freedesktop.secrets not on the bus after {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.keyring = Some(child);
        Ok(())
    }

    fn dbus_send(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(DBUS_SEND)
            .arg(format!("--bus={}", self.address))
            .arg("--print-reply")
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn name_has_owner(&self, name: &str) -> bool {
        self.dbus_send(&[
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ])
        .is_some_and(|r| r.contains("boolean true"))
    }

    /// The object paths of the Secret Service items whose attributes include
    /// all of `attributes` (the service's `SearchItems`, unlocked and locked).
    /// Panics when the service does not answer.
    pub fn search_items(&self, attributes: &[(&str, &str)]) -> Vec<String> {
        let dict: Vec<String> = attributes
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect();
        let reply = self
            .dbus_send(&[
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.SearchItems",
                &format!("dict:string:string:{}", dict.join(",")),
            ])
            .expect("the Secret Service answers SearchItems");
        reply
            .lines()
            .filter_map(|l| l.trim().strip_prefix("object path \""))
            .map(|p| p.trim_end_matches('"').to_string())
            .filter(|p| p.starts_with("/org/freedesktop/secrets/collection/"))
            .collect()
    }

    /// The temporary directory holding the socket, config and keyring files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        if let Some(k) = self.keyring.as_mut() {
            crate::stop(k);
        }
        crate::stop(&mut self.bus);
    }
}
