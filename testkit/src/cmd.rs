//! One way for the integration tests to run the `maildns` binary: a command
//! builder that starts from a clean environment for the variables maildns reads
//! from its caller (so a developer's shell or a systemd unit cannot leak into a
//! test), and an [`Output`] with the texts tests assert on.
//!
//! The binary's path is known only to the test crate (`env!("CARGO_BIN_EXE_maildns")`
//! is set for integration tests of the package that builds it), so the test crate
//! passes it in once:
//!
//! ```no_run
//! # let bin = "maildns";
//! use maildns_testkit::cmd::Maildns;
//! let out = Maildns::new(bin)
//!     .config("/tmp/x/maildns.toml")
//!     .args(["publish", "--json"])
//!     .env("MAILDNS_DNS_TOKEN", "t")
//!     .run();
//! assert_eq!(out.code(), Some(0), "{}", out.text());
//! ```
//!
//! Environment variables are only ever set on the child, never on the test
//! process: every test of the one integration binary shares that process.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Variables maildns reads from its caller that no test inherits: the default
/// config path, systemd's notification socket and credentials directory.
const SCRUBBED: &[&str] = &["MAILDNS_CONFIG", "NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY"];

/// A `maildns` invocation being built; [`Maildns::run`] runs it.
#[derive(Debug)]
pub struct Maildns {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Maildns {
    /// A command running the binary at `bin` with `MAILDNS_CONFIG`,
    /// `NOTIFY_SOCKET` and `CREDENTIALS_DIRECTORY` removed from its environment.
    pub fn new(bin: impl AsRef<OsStr>) -> Self {
        let mut cmd = Command::new(bin);
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        Maildns { cmd, stdin: None }
    }

    /// Adds `--config <path>` (before the arguments added next).
    pub fn config(mut self, path: impl AsRef<Path>) -> Self {
        self.cmd.arg("--config").arg(path.as_ref());
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets `key=value` in the child's environment (never in the test process).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Sets each `(key, value)` in the child's environment.
    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Self {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }

    /// Removes `key` from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Feeds `input` on the child's standard input, then closes it (without
    /// this, standard input is `/dev/null`).
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Self {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// The underlying command, for tests that spawn and signal a long-running
    /// child (the daemon) themselves.
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Runs the command to completion and captures its output.
    ///
    /// # Panics
    /// When the binary cannot be started or waited for (a broken test setup).
    pub fn run(mut self) -> Output {
        let Some(bytes) = self.stdin else {
            return Output(self.cmd.output().expect("maildns runs"));
        };
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("maildns runs");
        let mut input = child.stdin.take().expect("stdin is piped");
        input.write_all(&bytes).expect("write maildns's stdin");
        drop(input);
        Output(child.wait_with_output().expect("maildns finishes"))
    }
}

/// What a finished child (`maildns`, or a tool a test runs beside it, wrapped
/// with `.map(Output)`) left: exit status and captured output. Derefs to
/// [`std::process::Output`] (`o.status`, `o.stdout`, `o.stderr`).
#[derive(Debug, Clone)]
pub struct Output(pub std::process::Output);

impl Output {
    /// The exit code (`None` when a signal ended the child).
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    /// Whether the child exited with 0.
    pub fn success(&self) -> bool {
        self.0.status.success()
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Standard output followed by standard error, for assertions on what a
    /// user sees and for failure messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout_text(), self.stderr_text())
    }
}

impl std::ops::Deref for Output {
    type Target = std::process::Output;

    fn deref(&self) -> &std::process::Output {
        &self.0
    }
}
