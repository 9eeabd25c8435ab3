//! An external program does the reads and writes (the idea of lego's `exec`
//! provider and dehydrated's hooks), for DNS hosts no adapter covers.
//!
//! maildns runs the account's `command` (an argument vector, no shell) once per
//! request, writes one JSON request to its standard input and reads one JSON
//! answer from its standard output. The protocol, version 1, is documented in
//! `docs/exec-protocol.md`; in short:
//!
//! | request `action` | fields | answer |
//! |---|---|---|
//! | `find_zone` | `name` | `{"zone": "example.com"}` or `{"zone": null}` |
//! | `read` | `zone`, `names` | `{"sets": {"<name>": {"ttl": 3600, "records": [{"strings": ["..."]}]} or null}}` |
//! | `apply` | `zone`, `changes` (`name`, `type`, `old`, `new`: a set or null) | `{"applied": ["<name>", ...]}` |
//!
//! Exit status 0 means success. Any other status is a failure; the program may
//! print `{"error": "...", "kind": "conflict", "written": [...]}` on standard
//! output to say what failed, otherwise its standard error's last line is the
//! message and the status gives the kind (75, EX_TEMPFAIL: the host failed,
//! retried later; 77, EX_NOPERM: permission; 65, EX_DATAERR: invalid).
//! A program that runs longer than the account's `timeout` is killed.
//!
//! The program is trusted with the zone, but nothing it prints is trusted: its
//! answers are checked as strictly as an HTTP host's ([`parse_answer`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::changeset::{self, ApplyError, ApplyTraits, Observed, TxtChange, ZoneSets};
use crate::registry::{Credential, CredentialKind, Host, Required, Settings};
use crate::{Error, ErrorKind, Fqdn, Operation, Profile, Provider, TxtRecord, TxtSet, Zone};

const KIND: &str = "exec";

/// Most bytes read from the program's standard output or error (1 MiB).
const MAX_OUTPUT: usize = 1 << 20;

/// Longest message taken from the program's standard error, in characters.
const MAX_MESSAGE: usize = 300;

/// The registry entry: no credential (the program holds its own); `command`
/// required.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/exec.toml"),
    credential: CredentialKind::None,
    required: &[Required {
        key: "command",
        example: "[\"/usr/local/lib/maildns/my-dns-host\"]",
    }],
    optional: &["timeout", "atomic", "compare_and_swap"],
    check: crate::registry::no_check,
    connect,
};

fn connect(
    settings: &Settings,
    _credential: Credential,
    _policy: crate::http::RetryPolicy,
) -> Result<Arc<dyn Provider>, Error> {
    let command = settings
        .command
        .clone()
        .ok_or_else(|| crate::registry::missing(KIND, "command"))?;
    let config = Config {
        command,
        timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
        traits: ApplyTraits {
            atomic: settings.atomic.unwrap_or(false),
            compare_and_swap: settings.compare_and_swap.unwrap_or(false),
            deferred: false,
        },
    };
    Ok(Arc::new(Exec::new(config)?))
}

/// How long one run of the program may take unless the account says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The program and what it promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Program and arguments (no shell); the first is the program's path.
    pub command: Vec<String>,
    /// Longest one run may take before it is killed.
    pub timeout: Duration,
    /// What the program promises for an `apply`: all-or-nothing, and refusing
    /// (`kind: "conflict"`) when a set's `old` is no longer what it holds.
    pub traits: ApplyTraits,
}

/// An external program as a [`Provider`].
#[derive(Debug)]
pub struct Exec {
    config: Config,
    profile: Profile,
}

impl Exec {
    /// Checks the command and takes the profile from the descriptor.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an empty command or a program path that is not
    /// absolute (a relative one would depend on the daemon's working directory).
    pub fn new(config: Config) -> Result<Exec, Error> {
        let program = config.command.first().map(PathBuf::from);
        match program {
            None => {
                return Err(config_error("command is empty"));
            }
            Some(p) if !p.is_absolute() => {
                return Err(config_error(format!(
                    "command: the program {} must be an absolute path",
                    p.display()
                )));
            }
            Some(_) => {}
        }
        Ok(Exec {
            profile: crate::registry::profile(KIND)?,
            config,
        })
    }

    /// Runs the program with `request` on its standard input and returns its
    /// parsed answer.
    async fn run(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        request: Value,
    ) -> Result<Value, Error> {
        self.run_raw(op, name, request).await.map_err(|(e, _)| e)
    }

    /// As [`Exec::run`]; a failure also gives the owner names the program says
    /// it wrote before failing (`written` in its answer).
    async fn run_raw(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        request: Value,
    ) -> Result<Value, (Error, Vec<Fqdn>)> {
        let err = |kind: ErrorKind, message: String| {
            (Error::new(KIND, op, name, kind, message), Vec::new())
        };
        let program = &self.config.command[0];
        let mut child = tokio::process::Command::new(program)
            .args(&self.config.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .spawn()
            .map_err(|e| err(ErrorKind::Config, format!("cannot run {program}: {e}")))?;
        let pid = child.id();
        let input = serde_json::to_vec(&request).map_err(|e| {
            err(
                ErrorKind::Invalid,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(err(
                ErrorKind::Server,
                "the program's pipes are missing".into(),
            ));
        };
        let talk = async {
            // A program that exits without reading its input closes the pipe:
            // that is its answer to give, not an error of ours.
            let write = async {
                let _ = stdin.write_all(&input).await;
                drop(stdin);
            };
            let (_, out, errout, status) = tokio::join!(
                write,
                read_capped(stdout),
                read_capped(stderr),
                child.wait()
            );
            (out, errout, status)
        };
        let (out, errout, status) = match tokio::time::timeout(self.config.timeout, talk).await {
            Ok(r) => r,
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Err(err(
                    ErrorKind::Network,
                    format!(
                        "{program} did not finish within {} s and was killed",
                        self.config.timeout.as_secs()
                    ),
                ));
            }
        };
        let status =
            status.map_err(|e| err(ErrorKind::Server, format!("waiting for {program}: {e}")))?;
        let answer = parse_answer(&out);
        if status.success() {
            return answer.map_err(|m| err(ErrorKind::Protocol, format!("{program}: {m}")));
        }
        let failure = answer.ok().and_then(|v| Failure::from_answer(&v));
        let written = failure
            .as_ref()
            .map(|f| f.written.clone())
            .unwrap_or_default();
        let code = status.code();
        let kind = failure
            .as_ref()
            .and_then(|f| f.kind.clone())
            .unwrap_or_else(|| kind_of_status(code));
        let message = failure
            .map(|f| f.error)
            .unwrap_or_else(|| last_line(&errout));
        let how = match code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let (error, _) = err(kind, format!("{program} failed ({how}): {message}"));
        Err((error, written))
    }
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(
        KIND,
        Operation::Authenticate,
        None,
        ErrorKind::Config,
        message,
    )
}

/// Reads at most [`MAX_OUTPUT`] bytes, then drains the rest so the program
/// never blocks on a full pipe.
async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The last non-empty line of the program's standard error, shortened.
fn last_line(errout: &[u8]) -> String {
    let text = String::from_utf8_lossy(errout);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message on standard error");
    let mut s: String = line.chars().take(MAX_MESSAGE).collect();
    if line.chars().count() > MAX_MESSAGE {
        s.push_str("...");
    }
    s
}

/// The error kind an exit status stands for (sysexits.h).
fn kind_of_status(code: Option<i32>) -> ErrorKind {
    match code {
        Some(75) => ErrorKind::Server,
        Some(77) => ErrorKind::Permission,
        Some(64 | 65) => ErrorKind::Invalid,
        Some(_) => ErrorKind::Server,
        None => ErrorKind::Network,
    }
}

/// What a failing program said on standard output.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    error: String,
    kind: Option<ErrorKind>,
    written: Vec<Fqdn>,
}

impl Failure {
    fn from_answer(v: &Value) -> Option<Failure> {
        let error = v
            .get("error")?
            .as_str()?
            .chars()
            .take(MAX_MESSAGE)
            .collect();
        let kind = v.get("kind").and_then(Value::as_str).and_then(|k| {
            Some(match k {
                "conflict" => ErrorKind::Conflict,
                "auth" => ErrorKind::Auth,
                "permission" => ErrorKind::Permission,
                "invalid" => ErrorKind::Invalid,
                "rate_limited" => ErrorKind::RateLimited,
                "server" => ErrorKind::Server,
                "network" => ErrorKind::Network,
                "zone_not_found" => ErrorKind::ZoneNotFound,
                _ => return None,
            })
        });
        let written = v
            .get("written")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|n| Fqdn::parse(n).ok())
                    .collect()
            })
            .unwrap_or_default();
        Some(Failure {
            error,
            kind,
            written,
        })
    }
}

/// Parses the program's standard output: one JSON object.
///
/// # Errors
/// What is wrong with it, as a message (not UTF-8, not JSON, not an object).
pub fn parse_answer(out: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(out).map_err(|e| {
        if out.iter().all(u8::is_ascii_whitespace) {
            "printed no answer on standard output".to_string()
        } else {
            format!("its answer is not JSON: {e}")
        }
    })?;
    if !v.is_object() {
        return Err("its answer is not a JSON object".into());
    }
    Ok(v)
}

/// One record as the protocol carries it: its zone-file presentation form
/// (RFC 1035 §5.1, exact for any byte), its character-strings, or its joined
/// value (split into 255-byte strings), tried in that order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRecord {
    presentation: Option<String>,
    strings: Option<Vec<String>>,
    value: Option<String>,
}

/// One RRset as the protocol carries it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSet {
    ttl: u32,
    records: Vec<WireRecord>,
}

fn record_json(r: &TxtRecord) -> Value {
    let strings: Vec<String> = r
        .strings()
        .iter()
        .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
        .collect();
    json!({ "strings": strings, "value": r.value_lossy(), "presentation": r.to_presentation() })
}

fn set_json(set: Option<&TxtSet>) -> Value {
    match set.filter(|s| !s.records.is_empty()) {
        None => Value::Null,
        Some(s) => json!({
            "ttl": s.ttl,
            "records": s.records.iter().map(record_json).collect::<Vec<_>>(),
        }),
    }
}

/// Parses the `sets` of a `read` answer for the names asked.
///
/// # Errors
/// A message naming the name whose set is not in the protocol's shape, or a
/// name asked for that the answer leaves out.
pub fn parse_sets(
    answer: &Value,
    names: &[Fqdn],
) -> Result<BTreeMap<Fqdn, Option<TxtSet>>, String> {
    let sets = answer
        .get("sets")
        .and_then(Value::as_object)
        .ok_or("the answer has no \"sets\" object")?;
    let mut by_name: BTreeMap<Fqdn, &Value> = BTreeMap::new();
    for (k, v) in sets {
        let n = Fqdn::parse(k).map_err(|e| format!("\"sets\" names {k:?}: {e}"))?;
        by_name.insert(n, v);
    }
    let mut out = BTreeMap::new();
    for name in names {
        let v = by_name
            .get(name)
            .ok_or_else(|| format!("\"sets\" leaves out {name} (give null for no TXT set)"))?;
        let set = if v.is_null() {
            None
        } else {
            let w: WireSet = serde_json::from_value((*v).clone())
                .map_err(|e| format!("the set of {name}: {e}"))?;
            let mut records = Vec::new();
            for r in w.records {
                let rec = match (r.presentation, r.strings, r.value) {
                    (Some(text), _, _) => TxtRecord::parse_presentation(&text)
                        .map_err(|e| format!("a record of {name}, {text:?}: {e}"))?,
                    (None, Some(strings), _) => TxtRecord::from_parts(&strings)
                        .map_err(|e| format!("a record of {name}: {e}"))?,
                    (None, None, Some(value)) => TxtRecord::from_value(value.as_bytes()),
                    (None, None, None) => {
                        return Err(format!(
                            "a record of {name} has no presentation, strings or value"
                        ));
                    }
                };
                records.push(rec);
            }
            (!records.is_empty()).then_some(TxtSet {
                ttl: w.ttl,
                records,
            })
        };
        out.insert(name.clone(), set);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Provider for Exec {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The program names zones by their apex.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    fn apply_traits(&self) -> ApplyTraits {
        self.config.traits
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        let v = self
            .run(
                op,
                Some(name),
                json!({"version": 1, "action": "find_zone", "name": name.to_string()}),
            )
            .await?;
        let protocol = |m: String| Error::new(KIND, op, Some(name), ErrorKind::Protocol, m);
        match v.get("zone") {
            Some(Value::Null) => Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::ZoneNotFound,
                "the program knows no zone holding this name",
            )),
            Some(Value::String(z)) => {
                let apex = Fqdn::parse(z).map_err(|e| protocol(format!("zone {z:?}: {e}")))?;
                if !name.is_within(&apex) {
                    return Err(protocol(format!("zone {apex} does not hold {name}")));
                }
                Ok(Zone {
                    id: apex.to_string(),
                    name: apex,
                })
            }
            _ => Err(protocol(
                "the answer has no \"zone\" (a name or null)".into(),
            )),
        }
    }

    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let first = names.first();
        let v = self
            .run(
                op,
                first,
                json!({
                    "version": 1,
                    "action": "read",
                    "zone": zone.name.to_string(),
                    "names": names.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            )
            .await?;
        let sets = parse_sets(&v, names)
            .map_err(|m| Error::new(KIND, op, first, ErrorKind::Protocol, m))?;
        Ok(sets
            .into_iter()
            .map(|(n, s)| (n, Observed::of(s)))
            .collect())
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let mut sets = self.read_sets(zone, std::slice::from_ref(name)).await?;
        Ok(sets.remove(name).and_then(|o| o.set))
    }

    /// One run of the program for the whole change set. Unless the program
    /// declares compare-and-swap, the sets are read again first (one run) and
    /// a set that changed since the caller's read is a conflict.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        for c in changes {
            if let Some(set) = c.wanted() {
                super::check_all(KIND, &self.profile, &c.name, set)
                    .map_err(ApplyError::nothing_written)?;
            }
        }
        if !self.config.traits.compare_and_swap {
            let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
            let now = self
                .read_sets(zone, &names)
                .await
                .map_err(ApplyError::nothing_written)?;
            for c in changes {
                let set = now.get(&c.name).and_then(|o| o.set.as_ref());
                // A set already as wanted (the same change applied before) is fine.
                if !c.old.unchanged_in(set) && !changeset::same_content(c.wanted(), set) {
                    return Err(ApplyError::nothing_written(changeset::conflict(
                        KIND,
                        c.operation(),
                        &c.name,
                        "the TXT RRset changed since it was read",
                    )));
                }
            }
        }
        let request = json!({
            "version": 1,
            "action": "apply",
            "zone": zone.name.to_string(),
            "changes": changes.iter().map(|c| json!({
                "name": c.name.to_string(),
                "type": "TXT",
                "old": set_json(c.old.set.as_ref()),
                "new": set_json(c.wanted()),
            })).collect::<Vec<_>>(),
        });
        let op = first.operation();
        match self.run_raw(op, Some(&first.name), request).await {
            Ok(_) => Ok(()),
            // The program's compare-and-swap refused: harmless when every set is
            // already as wanted (the same change set applied before).
            Err((error, written)) => {
                if error.kind == ErrorKind::Conflict {
                    let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
                    if let Ok(now) = self.read_sets(zone, &names).await
                        && changes.iter().all(|c| {
                            let set = now.get(&c.name).and_then(|o| o.set.as_ref());
                            changeset::same_content(c.wanted(), set)
                        })
                    {
                        return Ok(());
                    }
                }
                if self.config.traits.atomic {
                    // An atomic program wrote nothing, whatever it says.
                    Err(ApplyError::nothing_written(error))
                } else {
                    Err(ApplyError { written, error })
                }
            }
        }
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let old = self.read_txt(zone, name).await?;
        let change = TxtChange {
            name: name.clone(),
            old: Observed::of(old),
            new: Some(set.clone()),
        };
        self.apply(zone, &[change]).await.map_err(|e| e.error)
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let old = self.read_txt(zone, name).await?;
        if old.is_none() {
            return Ok(());
        }
        let change = TxtChange {
            name: name.clone(),
            old: Observed::of(old),
            new: None,
        };
        self.apply(zone, &[change]).await.map_err(|e| e.error)
    }
}
