//! The zone-file adapter with a real BIND reading what it writes: `named-checkzone`
//! on every result, then `named` serving the file and queried with dig. Covers the
//! issue #11 zone-file examples (wildcards, `$INCLUDE`) and the conformance suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use maildns_providers::hosts::zonefile::{Config, ZoneFile, read_records};
use maildns_providers::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Operation, Profile, Provider, TxtChange,
    TxtRecord, TxtSet, Zone, ZoneSets,
};
use maildns_testkit::Bind;
use maildns_testkit::conformance::{self, dig_txt};

use crate::set;

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).expect("valid name")
}

fn zone_name() -> String {
    format!("z{}.test", maildns_testkit::random_label(8))
}

fn adapter(path: &Path, zone: &str) -> ZoneFile {
    ZoneFile::new(Config {
        path: path.to_path_buf(),
        zone: fqdn(zone),
        default_ttl: 3600,
        bump_serial: true,
    })
    .expect("the zone-file descriptor parses")
}

fn sorted(mut v: Vec<TxtRecord>) -> Vec<TxtRecord> {
    v.sort();
    v
}

/// `named-checkzone` on `file` (run in its directory, as named is): its output on failure.
fn checkzone(zone: &str, file: &Path) -> Result<String, String> {
    let out = Command::new("named-checkzone")
        .arg(zone)
        .arg(file)
        .current_dir(file.parent().expect("file in a directory"))
        .output()
        .expect("named-checkzone runs (package bind9)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Values BIND serves at `name` once it has reloaded (retries while it reloads).
async fn served(bind: &Bind, name: &Fqdn, want: &[TxtRecord]) -> Vec<TxtRecord> {
    let want = sorted(want.to_vec());
    let mut got = Vec::new();
    for _ in 0..50 {
        got = sorted(dig_txt(bind.dns, name).await.expect("dig answers"));
        if got == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    got
}

fn soa(zone: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 3600\n@ IN SOA ns1 hostmaster ( 2024010101 ; serial\n\t3600 900 604800 300 )\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
    )
}

/// Issue #11 item 4: a zone with wildcard owners is published (it used to fail
/// with "bad name ... rejected by the host"); BIND loads and serves the result.
#[tokio::test]
async fn zone_with_wildcards_is_published_and_served_by_bind() {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    let wild = "* IN A 192.0.2.1\n*._domainkey IN TXT \"v=DKIM1; p=\"\n";
    std::fs::write(&path, format!("{}{wild}", soa(&zone))).unwrap();
    let bind = Bind::serve_file(&zone, &path);
    let p = adapter(&path, &zone);
    let z = p.find_zone(&fqdn(&zone)).await.unwrap();

    let dmarc = fqdn(&format!("_dmarc.{zone}"));
    let mail = fqdn(&format!("mail._domainkey.{zone}"));
    let dkim = format!("v=DKIM1; k=rsa; p={}", "Q".repeat(300));
    p.replace_txt(&z, &dmarc, &set(300, &["v=DMARC1; p=reject"]))
        .await
        .expect("publish beside wildcards");
    p.replace_txt(&z, &mail, &set(300, &[&dkim]))
        .await
        .expect("publish a DKIM key beside *._domainkey");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(wild),
        "wildcard lines kept byte for byte:\n{text}"
    );
    checkzone(&zone, &path).unwrap_or_else(|e| panic!("named-checkzone: {e}\n{text}"));
    bind.reload().unwrap();
    let want = set(300, &[&dkim]).records;
    assert_eq!(served(&bind, &mail, &want).await, want);
    // The wildcard still answers for other selectors, as written.
    let other = fqdn(&format!("other._domainkey.{zone}"));
    let wildcard = set(300, &["v=DKIM1; p="]).records;
    assert_eq!(served(&bind, &other, &wildcard).await, wildcard);
    assert_eq!(
        p.read_txt(&z, &other).await.unwrap(),
        None,
        "the adapter reads owner names, it does not expand wildcards"
    );
}

/// What `opendkim-genkey -s mail -d <zone>` writes to mail.txt (shape and comment).
fn mail_txt(zone: &str, p: &str) -> String {
    format!(
        "mail._domainkey\tIN\tTXT\t( \"v=DKIM1; h=sha256; k=rsa; \"\n\t  \"p={p}\" )  ; ----- DKIM key mail for {zone}\n"
    )
}

struct Included {
    _dir: tempfile::TempDir,
    zone: String,
    path: PathBuf,
    spf_inc: PathBuf,
    mail_txt: PathBuf,
    key: String,
}

fn included_layout() -> Included {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let spf_inc = dir.path().join("spf.inc");
    std::fs::write(&spf_inc, "@ IN TXT \"v=spf1 mx -all\"\n").unwrap();
    let key = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC".to_string() + &"x".repeat(180);
    let mail_txt = dir.path().join("keys/mail.txt");
    std::fs::write(&mail_txt, mail_txt_text(&zone, &key)).unwrap();
    std::fs::write(
        &path,
        format!(
            "{}$INCLUDE spf.inc\n$INCLUDE keys/mail.txt\nwww IN A 192.0.2.1\n",
            soa(&zone)
        ),
    )
    .unwrap();
    Included {
        _dir: dir,
        zone,
        path,
        spf_inc,
        mail_txt,
        key,
    }
}

fn mail_txt_text(zone: &str, key: &str) -> String {
    mail_txt(zone, key)
}

/// Issue #11 item 4: values in `$INCLUDE`d files count as present. Publishing the
/// same SPF and DKIM values writes nothing (before: a second SPF value and a second
/// `mail._domainkey` record were appended, an SPF permerror once BIND expands the
/// include); BIND serves one value each.
#[tokio::test]
async fn values_in_included_files_count_as_present() {
    let l = included_layout();
    let p = adapter(&l.path, &l.zone);
    let z = p.find_zone(&fqdn(&l.zone)).await.unwrap();
    let apex = fqdn(&l.zone);
    let mail = fqdn(&format!("mail._domainkey.{}", l.zone));
    let dkim_value = format!("v=DKIM1; h=sha256; k=rsa; p={}", l.key);

    let spf = p
        .read_txt(&z, &apex)
        .await
        .unwrap()
        .expect("SPF from spf.inc");
    assert_eq!(spf, set(3600, &["v=spf1 mx -all"]));
    let dk = p
        .read_txt(&z, &mail)
        .await
        .unwrap()
        .expect("key from mail.txt");
    assert_eq!(dk.records.len(), 1);
    assert_eq!(dk.records[0].value(), dkim_value.as_bytes());
    assert_eq!(
        dk.records[0].strings().len(),
        2,
        "split as opendkim-genkey wrote it"
    );

    let before = std::fs::read(&l.path).unwrap();
    p.replace_txt(&z, &apex, &spf).await.expect("same SPF");
    p.replace_txt(&z, &mail, &dk).await.expect("same DKIM");
    assert_eq!(std::fs::read(&l.path).unwrap(), before, "nothing written");

    checkzone(&l.zone, &l.path).unwrap();
    let bind = Bind::serve_file(&l.zone, &l.path);
    assert_eq!(served(&bind, &apex, &spf.records).await, spf.records);
    assert_eq!(served(&bind, &mail, &dk.records).await, dk.records);

    // A second value beside the included one goes into the zone file itself.
    let two = set(3600, &["v=spf1 mx -all", "google-site-verification=abc"]);
    p.replace_txt(&z, &apex, &two).await.expect("add beside");
    assert_eq!(
        std::fs::read_to_string(&l.spf_inc).unwrap(),
        "@ IN TXT \"v=spf1 mx -all\"\n"
    );
    checkzone(&l.zone, &l.path).unwrap();
    bind.reload().unwrap();
    assert_eq!(
        served(&bind, &apex, &two.records).await,
        sorted(two.records)
    );
}

/// maildns never writes into an included file: a value it must change there is
/// refused, naming that file and line; nothing is written.
#[tokio::test]
async fn a_value_to_change_in_an_included_file_is_refused_with_its_place() {
    let l = included_layout();
    let p = adapter(&l.path, &l.zone);
    let z = p.find_zone(&fqdn(&l.zone)).await.unwrap();
    let zone_before = std::fs::read(&l.path).unwrap();
    let spf_before = std::fs::read(&l.spf_inc).unwrap();
    let mail_before = std::fs::read(&l.mail_txt).unwrap();

    let e = p
        .replace_txt(
            &z,
            &fqdn(&l.zone),
            &set(3600, &["v=spf1 ip4:192.0.2.10/32 -all"]),
        )
        .await
        .expect_err("SPF lives in spf.inc");
    assert_eq!(e.kind, ErrorKind::Config);
    let want = format!(
        "{}:1: the TXT record at {} that must change is in this included file",
        l.spf_inc.display(),
        l.zone
    );
    assert!(e.to_string().contains(&want), "{e}");

    let mail = fqdn(&format!("mail._domainkey.{}", l.zone));
    let e = p
        .delete_txt(&z, &mail)
        .await
        .expect_err("the key lives in keys/mail.txt");
    assert!(
        e.to_string()
            .contains(&format!("{}:1:", l.mail_txt.display())),
        "{e}"
    );
    // A TTL change of an included value is a change too.
    let e = p
        .replace_txt(&z, &fqdn(&l.zone), &set(300, &["v=spf1 mx -all"]))
        .await
        .expect_err("TTL of an included value");
    assert!(
        e.to_string()
            .contains(&format!("{}:1:", l.spf_inc.display())),
        "{e}"
    );

    assert_eq!(std::fs::read(&l.path).unwrap(), zone_before);
    assert_eq!(std::fs::read(&l.spf_inc).unwrap(), spf_before);
    assert_eq!(std::fs::read(&l.mail_txt).unwrap(), mail_before);
}

/// `$INCLUDE file origin`: the path is taken from the zone file's directory, the
/// included file's names are relative to the given origin, and the origin is back
/// after it. Errors inside included files name that file and line.
#[tokio::test]
async fn include_with_origin_and_errors_in_included_files() {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("frag")).unwrap();
    std::fs::write(
        dir.path().join("frag/sub.db"),
        "_dmarc IN TXT \"v=DMARC1; p=none\"\n",
    )
    .unwrap();
    let path = dir.path().join("zone.db");
    std::fs::write(
        &path,
        format!(
            "{}$INCLUDE frag/sub.db sub\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n",
            soa(&zone)
        ),
    )
    .unwrap();
    let p = adapter(&path, &zone);
    let z = p.find_zone(&fqdn(&zone)).await.unwrap();
    let sub = p
        .read_txt(&z, &fqdn(&format!("_dmarc.sub.{zone}")))
        .await
        .unwrap();
    assert_eq!(sub, Some(set(3600, &["v=DMARC1; p=none"])));
    let top = p
        .read_txt(&z, &fqdn(&format!("_dmarc.{zone}")))
        .await
        .unwrap();
    assert_eq!(top, Some(set(3600, &["v=DMARC1; p=reject"])));
    checkzone(&zone, &path).unwrap();

    // An error inside the included file names it.
    std::fs::write(
        dir.path().join("frag/sub.db"),
        "ok IN TXT \"x\"\nbad IN TXT \"x\n",
    )
    .unwrap();
    let e = p.read_txt(&z, &fqdn(&zone)).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "{}:2: quoted string not closed",
            dir.path().join("frag/sub.db").display()
        )),
        "{e}"
    );
    // A missing file and a loop name the $INCLUDE line.
    std::fs::write(&path, format!("{}$INCLUDE nope.db\n", soa(&zone))).unwrap();
    let e = p.read_txt(&z, &fqdn(&zone)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("{}:7: $INCLUDE", path.display())),
        "{e}"
    );
    std::fs::write(&path, format!("{}$INCLUDE zone.db\n", soa(&zone))).unwrap();
    let e = p.read_txt(&z, &fqdn(&zone)).await.unwrap_err();
    assert!(e.to_string().contains("includes itself"), "{e}");
}

/// `$GENERATE` is refused with file:line and nothing is written.
#[tokio::test]
async fn generate_is_refused_with_file_and_line() {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    let text = format!("{}$GENERATE 1-4 host$ A 192.0.2.$\n", soa(&zone));
    std::fs::write(&path, &text).unwrap();
    checkzone(&zone, &path).expect("BIND reads it");
    let p = adapter(&path, &zone);
    let z = p.find_zone(&fqdn(&zone)).await.unwrap();
    let e = p
        .replace_txt(
            &z,
            &fqdn(&format!("_dmarc.{zone}")),
            &set(300, &["v=DMARC1; p=none"]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(
        e.to_string()
            .contains(&format!("{}:7: $GENERATE is not supported", path.display())),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

/// Without `$TTL`, BIND gives a record without a TTL the last one stated (RFC 1035).
/// A new line with its own TTL must not change what the records after it get: the
/// writer places it where no other record inherits from it.
#[tokio::test]
async fn rfc1035_ttl_inheritance_is_preserved() {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    let text = format!(
        "$ORIGIN {zone}.\n@ 3600 IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\n_dmarc IN TXT \"v=DMARC1; p=none\"\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\n"
    );
    std::fs::write(&path, &text).unwrap();
    let p = adapter(&path, &zone);
    let z = p.find_zone(&fqdn(&zone)).await.unwrap();
    let dmarc = fqdn(&format!("_dmarc.{zone}"));
    p.replace_txt(&z, &dmarc, &set(300, &["v=DMARC1; p=reject"]))
        .await
        .unwrap();
    let out = std::fs::read_to_string(&path).unwrap();
    let recs = read_records(&out, &fqdn(&zone)).unwrap();
    let ttls: Vec<(String, String, u32)> = recs
        .iter()
        .map(|r| (r.owner.to_presentation(), r.rtype.clone(), r.ttl))
        .collect();
    let z = format!("{zone}.");
    assert_eq!(
        ttls,
        [
            (z.clone(), "SOA".to_string(), 3600),
            (z.clone(), "NS".into(), 3600),
            (format!("ns1.{z}"), "A".into(), 3600),
            (format!("www.{z}"), "A".into(), 3600),
            (format!("_dmarc.{z}"), "TXT".into(), 300),
        ],
        "{out}"
    );
    checkzone(&zone, &path).unwrap();
}

/// The zone-file adapter with BIND reading every write: after each write,
/// `named-checkzone` must accept the file and `named` reloads and serves it.
struct LoadedByBind {
    inner: ZoneFile,
    bind: Bind,
    zone: String,
    path: PathBuf,
}

impl LoadedByBind {
    fn loaded(&self, op: Operation, name: &Fqdn) -> Result<(), Error> {
        checkzone(&self.zone, &self.path).map_err(|e| {
            Error::new(
                "zonefile",
                op,
                Some(name),
                ErrorKind::Invalid,
                format!("named-checkzone refused the written file: {e}"),
            )
        })?;
        self.bind
            .reload()
            .map_err(|e| Error::new("zonefile", op, Some(name), ErrorKind::Server, e))
    }
}

#[async_trait::async_trait]
impl Provider for LoadedByBind {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn profile(&self) -> &Profile {
        self.inner.profile()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.inner.find_zone(name).await
    }
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.inner.read_txt(zone, name).await
    }
    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.inner.replace_txt(zone, name, set).await?;
        self.loaded(Operation::Replace, name)
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.inner.delete_txt(zone, name).await?;
        self.loaded(Operation::Delete, name)
    }
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        self.inner.zone_for(apex)
    }
    fn apply_traits(&self) -> ApplyTraits {
        self.inner.apply_traits()
    }
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        self.inner.read_sets(zone, names).await
    }
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        self.inner.apply(zone, changes).await?;
        self.loaded(Operation::Replace, &zone.name)
            .map_err(ApplyError::nothing_written)
    }
}

/// The conformance suite on the zone-file adapter, in a zone file holding the
/// awkward things real zones hold (wildcards, escaped labels, `$INCLUDE`,
/// parentheses, comments), with BIND loading and serving every result.
#[tokio::test]
async fn conformance_with_bind_loading_the_written_zone() {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    std::fs::write(
        dir.path().join("extra.inc"),
        "inc IN TXT \"from the include\"\n",
    )
    .unwrap();
    std::fs::write(
        &path,
        format!(
            "{}\tIN TXT ( \"blank owner\" ) ; inherits ns1\n* IN A 192.0.2.1\n*._domainkey IN TXT \"v=DKIM1; p=\"\na\\.b IN TXT \"escaped; label\" ; comment \"x\"\n$INCLUDE extra.inc\n",
            soa(&zone)
        ),
    )
    .unwrap();
    checkzone(&zone, &path).unwrap();
    let bind = Bind::serve_file(&zone, &path);
    let provider = LoadedByBind {
        inner: adapter(&path, &zone),
        bind,
        zone: zone.clone(),
        path: path.clone(),
    };
    let z = provider.find_zone(&fqdn(&zone)).await.unwrap();
    assert_eq!(provider.zone_for(&fqdn(&zone)), Some(z.clone()));
    let options = conformance::Options {
        dns: Some(provider.bind.dns),
        // A value in an included file is never changed: a change there is refused.
        refused_name: Some(fqdn(&format!("inc.{zone}"))),
        ..conformance::Options::default()
    };
    let failures = conformance::check(&provider, &z, &options).await;
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}\nnamed log:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        provider.bind.log()
    );
    // The records maildns does not own are still as written.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\tIN TXT ( \"blank owner\" ) ; inherits ns1\n* IN A 192.0.2.1\n*._domainkey IN TXT \"v=DKIM1; p=\"\na\\.b IN TXT \"escaped; label\" ; comment \"x\"\n$INCLUDE extra.inc\n"),
        "{text}"
    );
    let ns1 = fqdn(&format!("ns1.{zone}"));
    let blank = set(3600, &["blank owner"]).records;
    assert_eq!(served(&provider.bind, &ns1, &blank).await, blank);
}

/// One generated TXT record line: owner field style, TTL, class, layout, data.
#[derive(Debug, Clone)]
struct GenRecord {
    label: Vec<u8>,
    /// 0 relative, 1 absolute, 2 blank owner (repeats the previous), 3 `@`.
    owner_style: u8,
    ttl: Option<u32>,
    ttl_units: bool,
    class: bool,
    class_first: bool,
    parens: bool,
    strings: Vec<Vec<u8>>,
}

fn gen_record() -> impl proptest::strategy::Strategy<Value = GenRecord> {
    use proptest::prelude::*;
    let label = proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z').prop_map(|c| c as u8),
            1 => proptest::char::range('A', 'Z').prop_map(|c| c as u8),
            1 => proptest::sample::select(b"-_*.\"();@$ \\".to_vec()),
            1 => any::<u8>(),
        ],
        1..8,
    );
    let strings = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..3);
    (
        label,
        0u8..4,
        proptest::option::of(0u32..1_000_000),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        strings,
    )
        .prop_map(
            |(label, owner_style, ttl, ttl_units, class, class_first, parens, strings)| GenRecord {
                label,
                owner_style,
                ttl,
                ttl_units,
                class,
                class_first,
                parens,
                strings,
            },
        )
}

fn escape_label_for_test(l: &[u8]) -> String {
    l.iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_' || *b == b'*' {
                char::from(*b).to_string()
            } else if *b == b'.' {
                "\\.".into()
            } else {
                format!("\\{b:03}")
            }
        })
        .collect()
}

fn gen_zone(zone: &str, default_ttl: Option<u32>, recs: &[GenRecord]) -> String {
    let mut text = format!("$ORIGIN {zone}.\n");
    if let Some(t) = default_ttl {
        text.push_str(&format!("$TTL {t}\n"));
    }
    text.push_str(
        "@ 3600 IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    for (i, r) in recs.iter().enumerate() {
        let owner = match r.owner_style {
            0 => escape_label_for_test(&r.label),
            1 => format!("{}.{zone}.", escape_label_for_test(&r.label)),
            2 if i > 0 => String::new(),
            2 => escape_label_for_test(&r.label),
            _ => "@".into(),
        };
        let ttl = r.ttl.map(|t| {
            if r.ttl_units && t >= 3600 {
                format!("{}h{}S", t / 3600, t % 3600)
            } else {
                t.to_string()
            }
        });
        let class = r.class.then_some("IN");
        let fields: Vec<&str> = if r.class_first {
            [class, ttl.as_deref()].into_iter().flatten().collect()
        } else {
            [ttl.as_deref(), class].into_iter().flatten().collect()
        };
        let data = TxtRecord::from_strings(
            r.strings
                .iter()
                .map(|s| maildns_providers::CharacterString::new(s.clone()).unwrap())
                .collect(),
        )
        .unwrap()
        .to_presentation();
        let data = if r.parens {
            format!("( ; a comment \"in quotes\"\n\t{data} ) ; done")
        } else {
            data
        };
        let sep = if owner.is_empty() { "\t" } else { " " };
        text.push_str(&format!("{owner}{sep}{} TXT {data}\n", fields.join(" ")));
    }
    text
}

/// (owner, TTL, TXT record) sets as `named-checkzone -D` prints the zone.
/// One TXT record: owner labels, TTL, data.
type Txt = (Vec<Vec<u8>>, u32, TxtRecord);

fn bind_reads(zone: &str, text: &str) -> Result<Vec<Txt>, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("named-checkzone")
        .args(["-q", "-D", "-o", "-", zone])
        .arg(&path)
        .output()
        .expect("named-checkzone runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let root = maildns_providers::hosts::zonefile::OwnerName::root();
    let mut got = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut it = line.splitn(5, [' ', '\t']).filter(|s| !s.is_empty());
        let owner = it.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = line[owner.len()..].split_whitespace().collect();
        if rest.get(2) != Some(&"TXT") {
            continue;
        }
        let ttl: u32 = rest[0].parse().unwrap();
        // The data starts after the fourth field (owner, TTL, class, type).
        let mut data_at = 0;
        for _ in 0..4 {
            data_at += line[data_at..].find(|c: char| !c.is_whitespace()).unwrap();
            data_at += line[data_at..].find(char::is_whitespace).unwrap();
        }
        let rec = TxtRecord::parse_presentation(line[data_at..].trim()).unwrap();
        let name = maildns_providers::hosts::zonefile::OwnerName::parse(&owner, &root).unwrap();
        got.push((name.labels().to_vec(), ttl, rec));
    }
    Ok(got)
}

/// Whether the reader and `named-checkzone` agree on `text`: both refuse it, or
/// both read the same TXT records (owner, the RRset's TTL, character-strings).
fn agree_with_bind(zone: &str, text: &str) -> Result<(), String> {
    match (bind_reads(zone, text), read_records(text, &fqdn(zone))) {
        (Ok(mut bind), Ok(ours)) => {
            // BIND leaves out-of-zone data out ("ignoring out-of-zone data"),
            // gives an RRset one TTL (the last batch's; owner names compare
            // without case) and drops duplicates.
            let apex: Vec<Vec<u8>> = zone.split('.').map(|l| l.as_bytes().to_vec()).collect();
            let in_zone = |labels: &[Vec<u8>]| {
                labels.len() >= apex.len()
                    && labels[labels.len() - apex.len()..]
                        .iter()
                        .zip(&apex)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
            };
            let ours: Vec<_> = ours
                .into_iter()
                .filter(|r| r.rtype == "TXT" && in_zone(r.owner.labels()))
                .collect();
            let folded = |labels: &[Vec<u8>]| -> Vec<Vec<u8>> {
                labels.iter().map(|l| l.to_ascii_lowercase()).collect()
            };
            let mut last_ttl: std::collections::HashMap<Vec<Vec<u8>>, u32> = Default::default();
            for r in &ours {
                last_ttl.insert(folded(r.owner.labels()), r.ttl);
            }
            let mut ours: Vec<Txt> = ours
                .into_iter()
                .map(|r| {
                    let labels = r.owner.labels().to_vec();
                    let ttl = last_ttl[&folded(&labels)];
                    (labels, ttl, r.txt.expect("TXT data"))
                })
                .collect();
            ours.sort();
            ours.dedup();
            bind.sort();
            if ours == bind {
                Ok(())
            } else {
                Err(format!("ours: {ours:?}\nBIND: {bind:?}\nzone:\n{text}"))
            }
        }
        (Err(_), Err(_)) => Ok(()),
        (b, o) => Err(format!(
            "BIND: {:?}\nours: {:?}\nzone:\n{text}",
            b.map(|v| v.len()),
            o.map(|v| v.len()).map_err(|e| e.to_string())
        )),
    }
}

/// The differential tests' configuration: a fixed seed, so every run of the
/// test suite (CI included) tries the same `cases` inputs and a red run is
/// never the luck of the draw; set `PROPTEST_RNG_SEED` (a number) to explore
/// other inputs, e.g. in a loop. A divergence found that way, now handled and
/// pinned in [`quoted_strings_over_escaped_newlines_read_as_bind_reads_them`]:
/// BIND continues a quoted string across a backslash-escaped newline
/// (`x TXT ( "\` / `"a;b"` / `)` reads as one record).
fn differential_config(cases: u32) -> proptest::prelude::ProptestConfig {
    let rng_seed = match std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => proptest::test_runner::RngSeed::Fixed(seed),
        None => proptest::test_runner::RngSeed::Fixed(0x006d_6169_6c64_6e73),
    };
    proptest::prelude::ProptestConfig {
        cases,
        rng_seed,
        ..Default::default()
    }
}

proptest::proptest! {
    #![proptest_config(differential_config(64))]

    /// Differential: the reader and BIND read the same generated zone text to the
    /// same TXT records (owner, TTL of the RRset, character-strings).
    #[test]
    fn reader_agrees_with_bind(default_ttl in proptest::option::of(0u32..100_000), recs in proptest::collection::vec(gen_record(), 1..8)) {
        let zone = "example.test";
        let text = gen_zone(zone, default_ttl, &recs);
        if let Err(e) = agree_with_bind(zone, &text) {
            proptest::prop_assert!(false, "{}", e);
        }
    }
}

/// A quoted string goes on over a backslash-escaped newline, with or without
/// parentheses (the newline is a byte of the string), as BIND 9.18's
/// `named-checkzone` reads it; a newline not escaped inside a quoted string,
/// an escaped backslash before it, a backslash before a CRLF's `\r`, or a
/// backslash ending an unquoted token are errors in both, ours naming the line.
/// Each case: the text after the SOA, what we read at `x` (None: refused) and
/// the 1-based line of our error.
#[test]
fn quoted_strings_over_escaped_newlines_read_as_bind_reads_them() {
    let zone = "example.test";
    let head = format!(
        "$ORIGIN {zone}.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
    );
    /// The text after the SOA; the strings read at `x` (None: refused); the error's line.
    type Case<'a> = (&'a str, Option<&'a [&'a [u8]]>, usize);
    let cases: &[Case] = &[
        (
            "x TXT ( \"\\\n\"a;b\"\n)\ny TXT after\n",
            Some(&[b"\n", b"a"]),
            0,
        ),
        ("x TXT \"\\\n\"\ny TXT after\n", Some(&[b"\n"]), 0),
        ("x TXT \"ab\\\ncd\"\ny TXT after\n", Some(&[b"ab\ncd"]), 0),
        ("x TXT ( \"ab\\\ncd\" )\n", Some(&[b"ab\ncd"]), 0),
        (
            "x TXT ( \"ab\\\n\\\ncd\" \"e\" )\n",
            Some(&[b"ab\n\ncd", b"e"]),
            0,
        ),
        ("x TXT \"a;\\\n;b\" ; comment\n", Some(&[b"a;\n;b"]), 0),
        ("x TXT ( \"ab\\\\\ncd\" )\n", None, 6),
        ("x TXT ab\\\ncd\n", None, 6),
        ("x TXT ( ab\\\ncd )\n", None, 6),
        ("x TXT \"ab\ncd\"\n", None, 6),
        ("x TXT ( \"ab\\\r\ncd\" )\n", None, 6),
        ("x TXT ( \"ab\\\n;c\n\" )\n", None, 7),
        ("x TXT \"ab\\\n", None, 6),
        ("x TXT \"ab\\", None, 6),
    ];
    for (body, want, line) in cases {
        let text = format!("{head}{body}");
        agree_with_bind(zone, &text).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        match (read_records(&text, &fqdn(zone)), want) {
            (Ok(recs), Some(want)) => {
                let x: Vec<_> = recs
                    .iter()
                    .filter(|r| r.owner.labels().first().is_some_and(|l| l == b"x"))
                    .collect();
                assert_eq!(x.len(), 1, "{body:?}");
                let got: Vec<&[u8]> = x[0]
                    .txt
                    .as_ref()
                    .unwrap()
                    .strings()
                    .iter()
                    .map(|s| s.as_bytes())
                    .collect();
                assert_eq!(&got, want, "{body:?}");
                // The record after a continued string is still read, from its own line.
                if body.contains("y TXT after") {
                    assert!(
                        recs.iter()
                            .any(|r| r.owner.labels().first().is_some_and(|l| l == b"y"))
                    );
                }
            }
            (Err(e), None) => {
                assert_eq!(e.line, *line, "{body:?}: {e}");
            }
            (got, _) => panic!("{body:?}: {got:?}"),
        }
    }
}

fn junk_line() -> impl proptest::strategy::Strategy<Value = String> {
    let tokens = proptest::sample::select(vec![
        "x",
        "b.",
        "@",
        "*",
        "\\.",
        "\\046",
        "\\999",
        "..",
        "IN",
        "in",
        "CH",
        "TXT",
        "txt",
        "TYPE16",
        "3600",
        "1h",
        "0",
        "x1",
        "\"q r\"",
        "\"\"",
        "\"a;b\"",
        "\"\\\"\"",
        "\"\\",
        "\"a\\\nb\"",
        "(",
        ")",
        ";c",
        "\\#",
        "2",
        "6162",
        "0161",
        "$TTL",
        "$ORIGIN",
        "$GENERATE",
        "\t",
        " ",
        "\"a\"b",
        "x\\ b",
        "\\",
        "\\(",
        "-1",
        "1w1w",
    ]);
    use proptest::strategy::Strategy;
    proptest::collection::vec(tokens, 1..8).prop_map(|t| t.concat_with_spaces())
}

trait ConcatWithSpaces {
    fn concat_with_spaces(&self) -> String;
}

impl ConcatWithSpaces for Vec<&str> {
    fn concat_with_spaces(&self) -> String {
        self.iter()
            .enumerate()
            .map(|(i, t)| {
                if i == 0 {
                    t.to_string()
                } else {
                    format!(" {t}")
                }
            })
            .collect()
    }
}

proptest::proptest! {
    #![proptest_config(differential_config(200))]

    /// Differential on lines made of awkward tokens (quotes, escapes, parentheses,
    /// comments, directives, classes, TTLs): BIND and the reader accept and refuse
    /// the same texts and read the same TXT records. Records of other types are
    /// left out: their data is not checked by the reader (BIND's job).
    #[test]
    fn awkward_lines_agree_with_bind(lines in proptest::collection::vec(junk_line(), 1..4)) {
        let zone = "example.test";
        let mut text = format!("$ORIGIN {zone}.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n");
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        if let Err(e) = agree_with_bind(zone, &text) {
            proptest::prop_assert!(false, "{}", e);
        }
    }
}

/// The SOA serial written in the file made by [`soa`].
fn file_serial(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("hostmaster ( ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {text}"))
}

/// A change set is one read and one rename: the serial moves once for three
/// names; a file edited after the read is a conflict and nothing is written; a
/// refused change (a value in an included file) leaves the file as it was.
#[tokio::test]
async fn a_change_set_is_one_rename_checked_against_the_file() {
    let zone = zone_name();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.db");
    std::fs::write(dir.path().join("extra.inc"), "inc IN TXT \"included\"\n").unwrap();
    std::fs::write(&path, format!("{}$INCLUDE extra.inc\n", soa(&zone))).unwrap();
    let p = adapter(&path, &zone);
    assert_eq!(
        p.apply_traits(),
        maildns_providers::ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            deferred: false,
        }
    );
    let z = p.zone_for(&fqdn(&zone)).unwrap();
    assert_eq!(p.zone_for(&fqdn("other.test")), None);
    let names = [
        fqdn(&zone),
        fqdn(&format!("_dmarc.{zone}")),
        fqdn(&format!("s1._domainkey.{zone}")),
    ];
    // A first write moves a date serial to today's; count from there.
    p.replace_txt(&z, &names[2], &set(300, &["old key"]))
        .await
        .unwrap();
    let serial = file_serial(&path);
    let read = p.read_sets(&z, &names).await.unwrap();
    assert_eq!(read[&names[2]].set, Some(set(300, &["old key"])));
    let wanted = [
        Some(set(300, &["v=spf1 -all"])),
        Some(set(300, &["v=DMARC1; p=none"])),
        None,
    ];
    let changes: Vec<TxtChange> = names
        .iter()
        .zip(wanted)
        .map(|(n, new)| TxtChange {
            name: n.clone(),
            old: read[n].clone(),
            new,
        })
        .collect();
    p.apply(&z, &changes).await.unwrap();
    assert_eq!(file_serial(&path), serial + 1, "one write for three names");
    checkzone(&zone, &path).unwrap();
    let now = p.read_sets(&z, &names).await.unwrap();
    assert_eq!(now[&names[0]].set, Some(set(300, &["v=spf1 -all"])));
    assert_eq!(now[&names[1]].set, Some(set(300, &["v=DMARC1; p=none"])));
    assert_eq!(now[&names[2]].set, None);
    // Again: already in place, nothing written.
    let text = std::fs::read_to_string(&path).unwrap();
    p.apply(&z, &changes).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // Another editor changes the file after our read: conflict, nothing written.
    let read = p.read_sets(&z, &names).await.unwrap();
    let edited = text.replace("v=DMARC1; p=none", "v=DMARC1; p=quarantine");
    assert_ne!(edited, text);
    std::fs::write(&path, &edited).unwrap();
    let changes: Vec<TxtChange> = names[..2]
        .iter()
        .map(|n| TxtChange {
            name: n.clone(),
            old: read[n].clone(),
            new: Some(set(300, &["ours"])),
        })
        .collect();
    let e = p.apply(&z, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert_eq!(e.error.name.as_deref(), Some(names[1].as_str()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);

    // A refused change (in the included file) after a good one: nothing written.
    let inc = fqdn(&format!("inc.{zone}"));
    let read = p
        .read_sets(&z, &[names[0].clone(), inc.clone()])
        .await
        .unwrap();
    let changes: Vec<TxtChange> = [&names[0], &inc]
        .into_iter()
        .map(|n| TxtChange {
            name: n.clone(),
            old: read[n].clone(),
            new: Some(set(300, &["changed"])),
        })
        .collect();
    let e = p.apply(&z, &changes).await.unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Config, "{e}");
    assert!(e.error.message.contains("extra.inc:1"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
}
