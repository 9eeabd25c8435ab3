//! A DNS host without an API: an operator types the records into the host's
//! web form (the seed's workflow), and maildns tells them exactly what to enter.
//!
//! Reads come from what the zone's authoritative servers serve (through a
//! [`ServedSets`] the caller attaches: maildns's own resolver and server
//! discovery). An apply writes nothing: it renders the change set as
//! instructions ([`instructions`]: owner name, type, TTL, each value to add or
//! remove, in the form the host's web form wants, [`ValueForm`]), logs them,
//! runs the account's optional notify command with them on its standard input,
//! and returns. Its [`ApplyTraits::deferred`] tells the caller that the change
//! lands later, when the operator has made it: the caller skips the read-back
//! and waits for the authoritative servers to serve it (`publish` watches;
//! rotation's propagation step waits), so even a web-form-only host gets the
//! same safe order of steps.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::changeset::{ApplyError, ApplyTraits, Observed, TxtChange, ZoneSets};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{Error, ErrorKind, Fqdn, Operation, Profile, Provider, TxtRecord, TxtSet, Zone};

/// The registry kind.
pub const KIND: &str = "manual";

/// How long the notify command may run.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The registry entry. An account is connected by maildns with
/// [`Manual::new`], which needs a [`ServedSets`]; the registry's constructor
/// gives an adapter without one, whose reads fail with a configuration error.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/manual.toml"),
    credential: CredentialKind::None,
    required: &[],
    optional: &["value_form", "notify"],
    check: crate::registry::no_check,
    connect,
};

fn connect(
    settings: &Settings,
    _credential: Credential,
    _policy: crate::http::RetryPolicy,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Manual::new(
        Config::from_settings(settings)?,
        Arc::new(Unattached),
    )?))
}

/// In which form the host's web form wants a TXT value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueForm {
    /// The joined value as one text (most web forms; the host splits it).
    #[default]
    OneString,
    /// Zone-file syntax: each 255-byte character-string quoted, `"..." "..."`
    /// (for forms that take the record as a zone file writes it).
    QuotedStrings,
}

impl std::str::FromStr for ValueForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "one-string" => Ok(ValueForm::OneString),
            "quoted-strings" => Ok(ValueForm::QuotedStrings),
            other => Err(format!(
                "'{other}' is not a value form: use \"one-string\" or \"quoted-strings\""
            )),
        }
    }
}

/// What a manual account is told and who else hears of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The form values are shown in.
    pub form: ValueForm,
    /// Program and arguments (no shell) run with the instructions on standard
    /// input whenever there is something to do (a mail or webhook script).
    pub notify: Option<Vec<String>>,
}

impl Config {
    /// The account's settings (`value_form`, `notify`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a notify program that is not an absolute path.
    pub fn from_settings(settings: &Settings) -> Result<Config, Error> {
        let notify = settings.notify.clone().filter(|c| !c.is_empty());
        if let Some(p) = notify.as_ref().and_then(|c| c.first())
            && !std::path::Path::new(p).is_absolute()
        {
            return Err(Error::new(
                KIND,
                Operation::Authenticate,
                None,
                ErrorKind::Config,
                format!("notify: the program {p} must be an absolute path"),
            ));
        }
        Ok(Config {
            form: settings.value_form.unwrap_or_default(),
            notify,
        })
    }
}

/// What the authoritative servers serve: attached by the caller, which knows
/// how to find them.
#[async_trait::async_trait]
pub trait ServedSets: Send + Sync + std::fmt::Debug {
    /// The apex of the zone holding `name`.
    ///
    /// # Errors
    /// Why it cannot be found, as a message.
    async fn zone_of(&self, name: &Fqdn) -> Result<Fqdn, String>;

    /// The TXT RRsets the zone's authoritative servers serve at `names`.
    ///
    /// # Errors
    /// Why they cannot be asked, as a message.
    async fn served(
        &self,
        zone: &Fqdn,
        names: &[Fqdn],
    ) -> Result<BTreeMap<Fqdn, Option<TxtSet>>, String>;
}

#[derive(Debug)]
struct Unattached;

#[async_trait::async_trait]
impl ServedSets for Unattached {
    async fn zone_of(&self, _: &Fqdn) -> Result<Fqdn, String> {
        Err(UNATTACHED.into())
    }
    async fn served(&self, _: &Fqdn, _: &[Fqdn]) -> Result<BTreeMap<Fqdn, Option<TxtSet>>, String> {
        Err(UNATTACHED.into())
    }
}

const UNATTACHED: &str = "no DNS reader attached (maildns connects manual accounts itself)";

/// A host without an API, as a [`Provider`].
#[derive(Debug)]
pub struct Manual {
    config: Config,
    profile: Profile,
    reader: Arc<dyn ServedSets>,
}

impl Manual {
    /// A manual host reading DNS through `reader`; the profile is the
    /// descriptor's, keeping string boundaries only in the quoted form, and
    /// printable ASCII only in the one-string form.
    ///
    /// # Errors
    /// As [`crate::registry::Host::profile`].
    pub fn new(config: Config, reader: Arc<dyn ServedSets>) -> Result<Manual, Error> {
        let mut profile = crate::registry::profile(KIND)?;
        profile.multi_string = config.form == ValueForm::QuotedStrings;
        profile.auto_split = config.form == ValueForm::OneString;
        // One line of text per value cannot show control bytes or bytes that
        // are not UTF-8 (the operator would type a lossy copy): such values
        // are refused before the operator is told anything. The quoted form
        // shows them escaped (`\010`).
        profile.printable_ascii_only = config.form == ValueForm::OneString;
        Ok(Manual {
            config,
            profile,
            reader,
        })
    }

    fn error(&self, op: Operation, name: Option<&Fqdn>, kind: ErrorKind, m: String) -> Error {
        Error::new(KIND, op, name, kind, m)
    }

    /// Checks what the operator is told to type for `c`, before telling them
    /// anything: the TTL, each value to ADD against the profile, and (one-string
    /// form) that each value to REMOVE can be shown on one line. A value kept at
    /// the name (one maildns does not own, say) is not typed, so it is not checked.
    fn check_change(&self, c: &TxtChange) -> Result<(), Error> {
        let old: Vec<TxtRecord> = c
            .old
            .set
            .as_ref()
            .map(|s| s.records.clone())
            .unwrap_or_default();
        let new: Vec<TxtRecord> = c.wanted().map(|s| s.records.clone()).unwrap_or_default();
        let has = |list: &[TxtRecord], r: &TxtRecord| list.iter().any(|x| x.value() == r.value());
        if let Some(set) = c.wanted() {
            if !set.records.is_empty() {
                self.profile
                    .check_ttl(KIND, Operation::Replace, &c.name, set.ttl)?;
            }
            let added = TxtSet {
                ttl: set.ttl,
                records: new.iter().filter(|r| !has(&old, r)).cloned().collect(),
            };
            super::check_all(KIND, &self.profile, &c.name, &added)?;
        }
        if self.config.form != ValueForm::OneString {
            return Ok(());
        }
        for r in old.iter().filter(|r| !has(&new, r)) {
            let value = r.value();
            if let Some((at, &byte)) = value
                .iter()
                .enumerate()
                .find(|(_, b)| !(0x20..=0x7e).contains(*b))
            {
                return Err(self
                    .error(
                        Operation::Replace,
                        Some(&c.name),
                        ErrorKind::Limit(crate::LimitError::ForbiddenByte { byte, at }),
                        format!(
                            "refused before telling the operator anything: the value to REMOVE \"{}\" cannot be shown in the one-string form (byte 0x{byte:02x} at offset {at} is not printable ASCII, so a typed copy would not match it)",
                            r.value_escaped()
                        ),
                    )
                    .with_help(
                        "set value_form = \"quoted-strings\" for this account (it shows such bytes as \\DDD escapes), or remove the value at the host by hand",
                    ));
            }
        }
        Ok(())
    }

    /// Runs the notify command with `text` on its standard input; a failure is
    /// logged, never fatal (the instructions are also in the log and `status`).
    async fn notify(&self, zone: &Fqdn, text: &str) {
        let Some(command) = &self.config.notify else {
            return;
        };
        let run = async {
            let mut child = tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .env("MAILDNS_ZONE", zone.as_str())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", command[0]))?;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text.as_bytes()).await;
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| format!("{}: {e}", command[0]))?;
            if out.status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                Err(format!(
                    "{} failed ({}): {}",
                    command[0],
                    out.status,
                    err.lines().last().unwrap_or("").trim()
                ))
            }
        };
        match tokio::time::timeout(NOTIFY_TIMEOUT, run).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{KIND}: notify command: {e}"),
            Err(_) => tracing::warn!(
                "{KIND}: notify command {} did not finish within {} s",
                command[0],
                NOTIFY_TIMEOUT.as_secs()
            ),
        }
    }
}

/// One value as the web form wants it: the joined text, or the record's own
/// character-strings quoted (each at most 255 bytes by construction), so the
/// host keeps the boundaries maildns chose (the quoted form's profile says
/// boundaries are kept).
pub fn show_value(record: &TxtRecord, form: ValueForm) -> String {
    match form {
        // Exactly what to type: a value of printable ASCII is shown as it is,
        // backslashes included (the form takes it literally); only one the
        // checks did not pass (a value being kept or removed that holds other
        // bytes) is shown escaped, never raw control bytes.
        ValueForm::OneString => {
            let v = record.value();
            if v.iter().all(|b| (0x20..0x7f).contains(b)) {
                String::from_utf8_lossy(&v).into_owned()
            } else {
                record.value_escaped()
            }
        }
        ValueForm::QuotedStrings => record.to_presentation(),
    }
}

/// The instructions for a change set, as an operator reads them: for each
/// owner name, the values to add and to remove (by joined value, so a record
/// the host split differently is not touched), and a TTL to set.
pub fn instructions(zone: &Fqdn, changes: &[TxtChange], form: ValueForm) -> String {
    let mut out = format!("In the DNS host's web form for zone {zone}:\n");
    for c in changes {
        let old: Vec<TxtRecord> = c
            .old
            .set
            .as_ref()
            .map(|s| s.records.clone())
            .unwrap_or_default();
        let new: Vec<TxtRecord> = c.wanted().map(|s| s.records.clone()).unwrap_or_default();
        let has = |list: &[TxtRecord], r: &TxtRecord| list.iter().any(|x| x.value() == r.value());
        let ttl = c.wanted().map(|s| s.ttl);
        let relative = c
            .name
            .as_str()
            .strip_suffix(zone.as_str())
            .map(|s| s.trim_end_matches('.'))
            .filter(|s| !s.is_empty())
            .unwrap_or("@");
        for r in old.iter().filter(|r| !has(&new, r)) {
            out.push_str(&format!(
                "  REMOVE  name {relative} ({})  type TXT  value {}\n",
                c.name,
                show_value(r, form)
            ));
        }
        for r in new.iter().filter(|r| !has(&old, r)) {
            out.push_str(&format!(
                "  ADD     name {relative} ({})  type TXT  TTL {}  value {}\n",
                c.name,
                ttl.unwrap_or_default(),
                show_value(r, form)
            ));
        }
        // Values kept at the name take the new TTL too (one TTL per RRset).
        let kept = new.iter().any(|r| has(&old, r));
        if let (Some(o), Some(t)) = (c.old.set.as_ref(), ttl)
            && o.ttl != t
            && kept
        {
            out.push_str(&format!(
                "  TTL     name {relative} ({})  type TXT  set every TXT record's TTL to {t}\n",
                c.name
            ));
        }
    }
    out
}

#[async_trait::async_trait]
impl Provider for Manual {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: false,
            compare_and_swap: false,
            deferred: true,
        }
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        let apex = self.reader.zone_of(name).await.map_err(|m| {
            let kind = if m == UNATTACHED {
                ErrorKind::Config
            } else {
                ErrorKind::ZoneNotFound
            };
            self.error(op, Some(name), kind, m)
        })?;
        Ok(Zone {
            id: apex.to_string(),
            name: apex,
        })
    }

    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let served = self.reader.served(&zone.name, names).await.map_err(|m| {
            let kind = if m == UNATTACHED {
                ErrorKind::Config
            } else {
                ErrorKind::Network
            };
            self.error(op, names.first(), kind, m)
        })?;
        Ok(names
            .iter()
            .map(|n| (n.clone(), Observed::of(served.get(n).cloned().flatten())))
            .collect())
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let mut sets = self.read_sets(zone, std::slice::from_ref(name)).await?;
        Ok(sets.remove(name).and_then(|o| o.set))
    }

    /// Writes nothing: tells the operator (log and notify command) what to
    /// enter; the caller waits for the authoritative servers to serve it.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        for c in changes {
            self.check_change(c).map_err(ApplyError::nothing_written)?;
        }
        if changes.is_empty() {
            return Ok(());
        }
        let text = instructions(&zone.name, changes, self.config.form);
        tracing::warn!(
            "{KIND}: changes for the operator to make (maildns writes nothing here). {}",
            text.trim_end()
        );
        self.notify(&zone.name, &text).await;
        Ok(())
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
        let change = TxtChange {
            name: name.clone(),
            old: Observed::of(old),
            new: None,
        };
        self.apply(zone, &[change]).await.map_err(|e| e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ttl: u32, values: &[&str]) -> TxtSet {
        TxtSet {
            ttl,
            records: values.iter().map(TxtRecord::from_value).collect(),
        }
    }

    #[test]
    fn instructions_name_each_value_to_add_and_remove_in_the_forms_shape() {
        let zone = Fqdn::parse("example.com").unwrap();
        let key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(300));
        let changes = [
            TxtChange {
                name: Fqdn::parse("example.com").unwrap(),
                old: Observed::of(Some(set(3600, &["MS=ms1", "v=spf1 a -all"]))),
                new: Some(set(3600, &["MS=ms1", "v=spf1 mx -all"])),
            },
            TxtChange {
                name: Fqdn::parse("s2._domainkey.example.com").unwrap(),
                old: Observed::of(None),
                new: Some(set(300, &[key.as_str()])),
            },
            TxtChange {
                name: Fqdn::parse("s1._domainkey.example.com").unwrap(),
                old: Observed::of(Some(set(300, &["v=DKIM1; p="]))),
                new: None,
            },
        ];
        let text = instructions(&zone, &changes, ValueForm::OneString);
        assert_eq!(
            text.lines().collect::<Vec<_>>()[..4],
            [
                "In the DNS host's web form for zone example.com:",
                "  REMOVE  name @ (example.com)  type TXT  value v=spf1 a -all",
                "  ADD     name @ (example.com)  type TXT  TTL 3600  value v=spf1 mx -all",
                &format!(
                    "  ADD     name s2._domainkey (s2._domainkey.example.com)  type TXT  TTL 300  value {key}"
                ),
            ]
        );
        assert!(text.ends_with(
            "  REMOVE  name s1._domainkey (s1._domainkey.example.com)  type TXT  value v=DKIM1; p=\n"
        ));
        assert!(!text.contains("MS=ms1"), "foreign values are not touched");
        let quoted = instructions(&zone, &changes[1..2], ValueForm::QuotedStrings);
        let first = "A".repeat(255 - "v=DKIM1; k=rsa; p=".len());
        assert!(
            quoted.contains(&format!("value \"v=DKIM1; k=rsa; p={first}\" \"")),
            "{quoted}"
        );
    }

    #[test]
    fn the_quoted_form_shows_the_records_own_strings() {
        let r = TxtRecord::from_parts(&["v=DKIM1; k=rsa; ", "p=AAAA"]).unwrap();
        assert_eq!(
            show_value(&r, ValueForm::QuotedStrings),
            "\"v=DKIM1; k=rsa; \" \"p=AAAA\""
        );
        assert_eq!(
            show_value(&r, ValueForm::OneString),
            "v=DKIM1; k=rsa; p=AAAA"
        );
    }

    #[test]
    fn value_forms_parse_and_refuse_others() {
        assert_eq!("one-string".parse(), Ok(ValueForm::OneString));
        assert_eq!("quoted-strings".parse(), Ok(ValueForm::QuotedStrings));
        assert!(
            "quoted"
                .parse::<ValueForm>()
                .unwrap_err()
                .contains("one-string")
        );
    }
}
