//! The provider conformance suite every adapter runs.
//!
//! One suite, run against a real server where one can run here (PowerDNS, BIND)
//! and against a faithful HTTP fake otherwise, checks the written contract of
//! [`Provider`]: finding the zone, reading an absent set, publishing and reading back
//! (through the API and, when a DNS address is given, as served over DNS), merging
//! beside foreign values, long DKIM-like keys, replace, delete, a round-trip matrix of
//! TXT lengths around the 255-byte string boundary, and awkward bytes (quotes,
//! backslashes, semicolons, spaces, non-ASCII). Values the provider's [`Profile`]
//! says the host cannot hold must be refused with [`ErrorKind::Limit`] before
//! anything is sent.
//!
//! The change-set cases ([`changesets`]) check [`Provider::read_sets`] and
//! [`Provider::apply`] against what the adapter declares in
//! [`Provider::apply_traits`]: atomicity where declared, a concurrent foreign
//! edit between the read and the apply never lost, a partial failure reported
//! per name, and an idempotent re-apply.
//!
//! Every case works under its own name below a random label (`ct-xxxxxxxx.<zone>`),
//! so one zone can be reused across runs, and removes what it wrote. All cases run
//! even when one fails; the report names each failed case, its name, and what differed
//! string by string.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use maildns_providers::{
    ErrorKind, Fqdn, Profile, Provider, Split, TxtRecord, TxtSet, Zone, txt::CharacterString,
};

pub mod changesets;

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    /// A DNS server (authoritative for the zone) to query directly; `None` checks the API only.
    pub dns: Option<SocketAddr>,
    /// TTL in seconds of the sets the suite writes (the replace case also writes twice this).
    pub ttl: u32,
    /// The label every case's name goes under; a random `ct-xxxxxxxx` when `None`.
    pub label: Option<String>,
    /// How many times to query DNS before reporting a difference (servers that apply
    /// changes asynchronously); 100 ms apart.
    pub dns_attempts: u32,
    /// An owner name inside the zone at which the host refuses a TXT write,
    /// prepared by the caller (e.g. a CNAME there on PowerDNS): the change-set
    /// cases put a change there after a good one and check that an atomic apply
    /// writes nothing, a non-atomic one reports exactly what it wrote.
    pub refused_name: Option<Fqdn>,
    /// The adapter documents that its apply is neither compare-and-swap nor
    /// preceded by a re-read (PowerDNS: its API has no precondition, and the
    /// read and the write are kept to 2 requests), so a value another tool
    /// writes between `read_sets` and `apply` may be overwritten. The suite then
    /// only checks that the caller's loop still ends with its value written, and
    /// skips the stale-read case (such an adapter cannot notice it).
    pub unguarded_apply: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dns: None,
            ttl: 300,
            label: None,
            dns_attempts: 20,
            refused_name: None,
            unguarded_apply: false,
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// Which case, e.g. `matrix 256 bytes`.
    pub case: String,
    /// The name it worked on.
    pub name: String,
    /// What differed or what failed.
    pub detail: String,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] at {}: {}", self.case, self.name, self.detail)
    }
}

/// Runs every conformance check against `provider` in `zone`; when `dns` is given,
/// also checks what that server serves. Panics with a clear message on failure.
pub async fn run(provider: &dyn Provider, zone: &Zone, dns: Option<SocketAddr>) {
    run_with(
        provider,
        zone,
        &Options {
            dns,
            ..Options::default()
        },
    )
    .await;
}

/// [`run`] with options. Panics listing every failed case.
pub async fn run_with(provider: &dyn Provider, zone: &Zone, options: &Options) {
    let failures = check(provider, zone, options).await;
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|f| format!("  {f}")).collect();
        panic!(
            "conformance: {} case(s) failed for provider '{}' in zone {}:\n{}",
            failures.len(),
            provider.kind(),
            zone.name,
            list.join("\n")
        );
    }
}

/// Runs every check and returns the failures (empty when the provider conforms).
pub async fn check(provider: &dyn Provider, zone: &Zone, options: &Options) -> Vec<CaseFailure> {
    let label = options
        .label
        .clone()
        .unwrap_or_else(|| format!("ct-{}", crate::random_label(8)));
    let base = match zone.name.child(&label) {
        Ok(b) => b,
        Err(e) => {
            return vec![CaseFailure {
                case: "setup".into(),
                name: zone.name.to_string(),
                detail: format!("label '{label}' does not make a valid name: {e}"),
            }];
        }
    };
    if options.dns.is_some() && !crate::have("dig") {
        return vec![CaseFailure {
            case: "setup".into(),
            name: base.to_string(),
            detail: "dig not found: install bind9-dnsutils (scripts/test does)".into(),
        }];
    }
    let mut s = Suite {
        p: provider,
        profile: provider.profile().clone(),
        zone,
        opts: options,
        base,
        failures: Vec::new(),
    };
    s.find_zone().await;
    s.absent().await;
    s.publish().await;
    s.merge().await;
    s.long_keys().await;
    s.replace().await;
    s.delete().await;
    s.several_records().await;
    s.matrix().await;
    s.awkward_bytes().await;
    s.change_sets().await;
    s.failures
}

/// The lengths other DNS tools' suites try, around the 255-byte string boundary.
pub const MATRIX_LENGTHS: [usize; 11] = [0, 1, 254, 255, 256, 509, 510, 511, 764, 765, 766];

/// Awkward values, each with a label for its name: quotes, backslashes, semicolons,
/// spaces, zone-file specials, control and non-ASCII bytes.
pub fn awkward_values() -> Vec<(&'static str, Vec<u8>)> {
    let mut boundary = vec![b'x'; 300];
    boundary[253] = b'\\';
    boundary[254] = b'"';
    boundary[255] = b'\\';
    vec![
        ("dq-inside", b"a\"b".to_vec()),
        ("dq-left", b"\"ab".to_vec()),
        ("dq-right", b"ab\"".to_vec()),
        ("dq-only", b"\"".to_vec()),
        ("dq-pair", b"\"\" \"\"".to_vec()),
        ("bs1", b"a\\b".to_vec()),
        ("bs2", b"a\\\\b".to_vec()),
        ("bs3", b"a\\\\\\b".to_vec()),
        ("bs4", b"a\\\\\\\\b".to_vec()),
        ("bs-end", b"ab\\".to_vec()),
        ("bs-digits", b"\\065\\256\\".to_vec()),
        ("semi", b"v=DKIM1;k=rsa;p=abc;".to_vec()),
        (
            "semi-spaced",
            b"v=DMARC1; p=none; rua=mailto:d@example.com ;".to_vec(),
        ),
        ("squote", b"it's".to_vec()),
        ("backtick", b"`uname -a`".to_vec()),
        ("lead-space", b"  leading".to_vec()),
        ("trail-space", b"trailing  ".to_vec()),
        ("interior-space", b"a  b   c".to_vec()),
        ("only-spaces", b"   ".to_vec()),
        ("zonefile", b"( $ORIGIN @ ) ; not a comment".to_vec()),
        (
            "utf8",
            "caf\u{e9} \u{2713} \u{65e5}\u{672c}".as_bytes().to_vec(),
        ),
        ("control", b"a\x00b\x01c\td\ne\x7f".to_vec()),
        ("high-bytes", b"\x80\xfe\xff".to_vec()),
        ("boundary-escapes", boundary),
    ]
}

/// A DKIM-like value: `v=DKIM1; k=rsa; p=` and `p_len` base64 characters.
pub fn dkim_like(p_len: usize, seed: u32) -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut v = b"v=DKIM1; k=rsa; p=".to_vec();
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    for _ in 0..p_len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(B64[(x % 64) as usize]);
    }
    v
}

/// The record as the host should hold and serve it: itself where several strings
/// per record are kept, else its value cut greedily into 255-byte strings.
fn served_form(profile: &Profile, r: &TxtRecord) -> TxtRecord {
    if profile.multi_string {
        r.clone()
    } else {
        TxtRecord::from_value(r.value())
    }
}

struct Suite<'a> {
    p: &'a dyn Provider,
    profile: Profile,
    zone: &'a Zone,
    opts: &'a Options,
    base: Fqdn,
    failures: Vec<CaseFailure>,
}

impl Suite<'_> {
    fn name(&mut self, case: &str, label: &str) -> Option<Fqdn> {
        match self.base.child(label) {
            Ok(n) => Some(n),
            Err(e) => {
                let name = format!("{label}.{}", self.base);
                self.fail(case, &name, format!("bad test name: {e}"));
                None
            }
        }
    }

    fn fail(&mut self, case: &str, name: &str, detail: impl Into<String>) {
        self.failures.push(CaseFailure {
            case: case.to_string(),
            name: name.to_string(),
            detail: detail.into(),
        });
    }

    /// The TTL to write: the option, raised to the host's minimum.
    fn ttl(&self) -> u32 {
        self.opts.ttl.max(self.profile.min_ttl)
    }

    fn set(&self, records: Vec<TxtRecord>) -> TxtSet {
        TxtSet {
            ttl: self.ttl(),
            records,
        }
    }

    /// Writes `set`, reads it back through the API and DNS; true when all matched.
    async fn write_and_verify(&mut self, case: &str, name: &Fqdn, set: &TxtSet) -> bool {
        if let Err(e) = self.p.replace_txt(self.zone, name, set).await {
            self.fail(case, name.as_str(), format!("replace_txt failed: {e}"));
            return false;
        }
        self.verify(case, name, set).await
    }

    /// Checks the API and DNS hold exactly `set` at `name`.
    async fn verify(&mut self, case: &str, name: &Fqdn, set: &TxtSet) -> bool {
        let expected: Vec<TxtRecord> = set
            .records
            .iter()
            .map(|r| served_form(&self.profile, r))
            .collect();
        let mut ok = true;
        match self.p.read_txt(self.zone, name).await {
            Err(e) => {
                self.fail(case, name.as_str(), format!("read_txt failed: {e}"));
                ok = false;
            }
            Ok(None) => {
                self.fail(
                    case,
                    name.as_str(),
                    format!(
                        "API read back nothing; expected {} record(s)",
                        expected.len()
                    ),
                );
                ok = false;
            }
            Ok(Some(got)) => {
                if let Some(d) = diff_records(&expected, &got.records) {
                    self.fail(case, name.as_str(), format!("API read back differs: {d}"));
                    ok = false;
                }
                if got.ttl != set.ttl {
                    self.fail(
                        case,
                        name.as_str(),
                        format!("API read back TTL {}, wrote {}", got.ttl, set.ttl),
                    );
                    ok = false;
                }
            }
        }
        if let Some(addr) = self.opts.dns
            && let Err(d) = self.dns_expect(addr, name, &expected).await
        {
            self.fail(case, name.as_str(), format!("served over DNS differs: {d}"));
            ok = false;
        }
        ok
    }

    /// Queries DNS until it serves `expected` (nothing when empty) or attempts run out.
    async fn dns_expect(
        &self,
        addr: SocketAddr,
        name: &Fqdn,
        expected: &[TxtRecord],
    ) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..self.opts.dns_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match dig_txt(addr, name).await {
                Err(e) => last = e,
                Ok(got) => match diff_records(expected, &got) {
                    None => return Ok(()),
                    Some(d) => last = d,
                },
            }
        }
        Err(last)
    }

    async fn expect_absent(&mut self, case: &str, name: &Fqdn) {
        match self.p.read_txt(self.zone, name).await {
            Ok(None) => {}
            Ok(Some(s)) => self.fail(
                case,
                name.as_str(),
                format!(
                    "expected no TXT set, API read back {} record(s): {}",
                    s.records.len(),
                    list(&s.records)
                ),
            ),
            Err(e) => self.fail(case, name.as_str(), format!("read_txt failed: {e}")),
        }
        if let Some(addr) = self.opts.dns
            && let Err(d) = self.dns_expect(addr, name, &[]).await
        {
            self.fail(
                case,
                name.as_str(),
                format!("expected nothing served over DNS: {d}"),
            );
        }
    }

    async fn cleanup(&mut self, case: &str, name: &Fqdn) {
        if let Err(e) = self.p.delete_txt(self.zone, name).await {
            self.fail(
                case,
                name.as_str(),
                format!("cleanup delete_txt failed: {e}"),
            );
        }
    }

    /// Publishes `records` at `label` and checks them, or — when the profile says the
    /// host cannot hold one of them — checks the adapter refuses with `Limit` and
    /// writes nothing.
    async fn round_trip(&mut self, case: &str, label: &str, records: Vec<TxtRecord>) {
        let Some(name) = self.name(case, label) else {
            return;
        };
        let set = self.set(records);
        let refused = set.records.iter().find_map(|r| self.profile.check(r).err());
        if let Some(limit) = refused {
            match self.p.replace_txt(self.zone, &name, &set).await {
                Err(e) if matches!(e.kind, ErrorKind::Limit(_)) => {}
                Err(e) => self.fail(
                    case,
                    name.as_str(),
                    format!("the profile refuses this value ({limit}) but the adapter failed otherwise: {e}"),
                ),
                Ok(()) => self.fail(
                    case,
                    name.as_str(),
                    format!("the profile refuses this value ({limit}) but the adapter accepted it"),
                ),
            }
            self.expect_absent(&format!("{case} (refused: nothing written)"), &name)
                .await;
            return;
        }
        self.write_and_verify(case, &name, &set).await;
        self.cleanup(case, &name).await;
    }

    async fn find_zone(&mut self) {
        let case = "find_zone for a deep name";
        let Some(deep) = self.name(case, "a.b.c.find") else {
            return;
        };
        match self.p.find_zone(&deep).await {
            Ok(z) if z == *self.zone => {}
            Ok(z) => self.fail(
                case,
                deep.as_str(),
                format!(
                    "found zone {} (id {}), expected {} (id {})",
                    z.name, z.id, self.zone.name, self.zone.id
                ),
            ),
            Err(e) => self.fail(case, deep.as_str(), format!("find_zone failed: {e}")),
        }
    }

    async fn absent(&mut self) {
        let case = "read of an absent name";
        if let Some(name) = self.name(case, "absent") {
            self.expect_absent(case, &name).await;
        }
    }

    async fn publish(&mut self) {
        let case = "publish and read back";
        self.round_trip(
            case,
            "publish",
            vec![TxtRecord::from_value(b"v=spf1 ip4:192.0.2.1 -all")],
        )
        .await;
    }

    async fn merge(&mut self) {
        let case = "merge beside foreign values";
        let Some(name) = self.name(case, "merge") else {
            return;
        };
        let foreign1 = TxtRecord::from_value(b"google-site-verification=abc123");
        let awkward = strings(&[b" sp aced ", b"\"q\"", b"\\", b""]);
        // A host that refuses some bytes gets a plainer foreign value.
        let foreign2 = if self.profile.check(&awkward).is_ok() {
            awkward
        } else {
            strings(&[b" sp aced ", b"q;x", b""])
        };
        let ours_v1 = TxtRecord::from_value(b"v=spf1 -all");
        let ours_v2 = TxtRecord::from_value(b"v=spf1 ip4:192.0.2.7 ~all");
        let first = self.set(vec![foreign1.clone(), ours_v1, foreign2.clone()]);
        if !self.write_and_verify(case, &name, &first).await {
            self.cleanup(case, &name).await;
            return;
        }
        // Read-modify-write as `publish` does: replace only the value we own.
        let current = match self.p.read_txt(self.zone, &name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.fail(case, name.as_str(), "set vanished before the merge");
                return;
            }
            Err(e) => {
                self.fail(case, name.as_str(), format!("read_txt failed: {e}"));
                return;
            }
        };
        let mut records: Vec<TxtRecord> = current
            .records
            .into_iter()
            .filter(|r| !r.value_starts_with_ignore_case("v=spf1"))
            .collect();
        records.push(ours_v2);
        let merged = TxtSet {
            ttl: current.ttl,
            records,
        };
        if let Err(e) = self.p.replace_txt(self.zone, &name, &merged).await {
            self.fail(case, name.as_str(), format!("replace_txt failed: {e}"));
        } else {
            self.verify(case, &name, &merged).await;
            // The foreign values, byte for byte and string for string.
            if let Ok(Some(now)) = self.p.read_txt(self.zone, &name).await {
                for f in [&foreign1, &foreign2] {
                    let f = served_form(&self.profile, f);
                    if !now.records.contains(&f) {
                        self.fail(
                            case,
                            name.as_str(),
                            format!(
                                "foreign value {} did not survive; the set is now {}",
                                f.to_presentation(),
                                list(&now.records)
                            ),
                        );
                    }
                }
            }
        }
        self.cleanup(case, &name).await;
    }

    async fn long_keys(&mut self) {
        for (bits, p_len) in [(1024u32, 216usize), (2048, 392), (4096, 736)] {
            let case = format!("long key: {bits}-bit DKIM-like ({p_len}-char p=)");
            let value = dkim_like(p_len, bits);
            let record = TxtRecord::split(&value, Split::Before(b"p="));
            self.round_trip(&case, &format!("dkim{bits}"), vec![record])
                .await;
        }
    }

    async fn replace(&mut self) {
        let case = "replace a set";
        let Some(name) = self.name(case, "replace") else {
            return;
        };
        let v1 = self.set(vec![
            TxtRecord::from_value(b"v=DMARC1; p=none"),
            TxtRecord::from_value(b"other=1"),
        ]);
        if self.write_and_verify(case, &name, &v1).await {
            let v2 = TxtSet {
                ttl: self.ttl().saturating_mul(2),
                records: vec![TxtRecord::from_value(b"v=DMARC1; p=reject")],
            };
            if self.write_and_verify(case, &name, &v2).await {
                // Writing the set the host already holds is harmless.
                self.write_and_verify(&format!("{case} (same set again)"), &name, &v2)
                    .await;
            }
        }
        self.cleanup(case, &name).await;
    }

    async fn delete(&mut self) {
        let case = "delete";
        if let Some(name) = self.name(case, "delete") {
            let set = self.set(vec![TxtRecord::from_value(b"to be deleted")]);
            if self.write_and_verify(case, &name, &set).await {
                match self.p.delete_txt(self.zone, &name).await {
                    Ok(()) => self.expect_absent(case, &name).await,
                    Err(e) => self.fail(case, name.as_str(), format!("delete_txt failed: {e}")),
                }
                if let Err(e) = self.p.delete_txt(self.zone, &name).await {
                    self.fail(
                        "delete twice",
                        name.as_str(),
                        format!("second delete_txt failed: {e}"),
                    );
                }
            }
        }
        let case = "delete of a set that never existed";
        if let Some(name) = self.name(case, "never")
            && let Err(e) = self.p.delete_txt(self.zone, &name).await
        {
            self.fail(case, name.as_str(), format!("delete_txt failed: {e}"));
        }
        let case = "replace with an empty set deletes";
        if let Some(name) = self.name(case, "empty") {
            let set = self.set(vec![TxtRecord::from_value(b"short-lived")]);
            if self.write_and_verify(case, &name, &set).await {
                let empty = self.set(Vec::new());
                match self.p.replace_txt(self.zone, &name, &empty).await {
                    Ok(()) => self.expect_absent(case, &name).await,
                    Err(e) => self.fail(
                        case,
                        name.as_str(),
                        format!("replace_txt with no records failed: {e}"),
                    ),
                }
            }
            self.cleanup(case, &name).await;
        }
    }

    async fn several_records(&mut self) {
        let case = "several records, several strings";
        self.round_trip(
            case,
            "several",
            vec![
                TxtRecord::from_value(b"first"),
                strings(&[b"a", b"", b"b"]),
                strings(&[b"v=DKIM1; k=rsa; ", b"p=AAAA", b"BBBB"]),
            ],
        )
        .await;
    }

    async fn matrix(&mut self) {
        for len in MATRIX_LENGTHS {
            let case = format!("matrix {len} bytes");
            let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            self.round_trip(
                &case,
                &format!("len-{len}"),
                vec![TxtRecord::from_value(value)],
            )
            .await;
        }
    }

    async fn awkward_bytes(&mut self) {
        for (label, value) in awkward_values() {
            let case = format!("awkward value '{label}'");
            self.round_trip(
                &case,
                &format!("v-{label}"),
                vec![TxtRecord::from_value(value)],
            )
            .await;
        }
    }
}

fn strings(parts: &[&[u8]]) -> TxtRecord {
    TxtRecord::from_parts(parts).expect("strings under 255 bytes")
}

fn abbreviate(s: &str) -> String {
    if s.len() <= 160 {
        s.to_string()
    } else {
        let head: String = s.chars().take(157).collect();
        format!("{head}... ({} chars)", s.len())
    }
}

fn list(records: &[TxtRecord]) -> String {
    let items: Vec<String> = records
        .iter()
        .map(|r| abbreviate(&r.to_presentation()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Compares two sets of records as multisets (order is not significant in DNS),
/// each record string by string. `None` when equal; otherwise what differs.
pub fn diff_records(expected: &[TxtRecord], got: &[TxtRecord]) -> Option<String> {
    let mut missing: Vec<&TxtRecord> = Vec::new();
    let mut rest: Vec<&TxtRecord> = got.iter().collect();
    for e in expected {
        if let Some(pos) = rest.iter().position(|g| *g == e) {
            rest.remove(pos);
        } else {
            missing.push(e);
        }
    }
    if missing.is_empty() && rest.is_empty() {
        return None;
    }
    let mut out = format!("expected {} record(s), got {}", expected.len(), got.len());
    if let ([e], [g]) = (missing.as_slice(), rest.as_slice()) {
        out.push_str(&format!("; {}", diff_strings(e, g)));
        return Some(out);
    }
    for m in &missing {
        out.push_str(&format!("; missing {}", abbreviate(&m.to_presentation())));
    }
    for u in &rest {
        out.push_str(&format!(
            "; unexpected {}",
            abbreviate(&u.to_presentation())
        ));
    }
    Some(out)
}

/// Describes how two records differ, string by string.
pub fn diff_strings(expected: &TxtRecord, got: &TxtRecord) -> String {
    let (e, g) = (expected.strings(), got.strings());
    let lens = |r: &[CharacterString]| {
        r.iter()
            .map(|s| s.len().to_string())
            .collect::<Vec<_>>()
            .join("+")
    };
    let mut out = format!(
        "expected {} string(s) of {} bytes, got {} string(s) of {} bytes",
        e.len(),
        lens(e),
        g.len(),
        lens(g)
    );
    for (i, (a, b)) in e.iter().zip(g.iter()).enumerate() {
        if a != b {
            let at = a
                .as_bytes()
                .iter()
                .zip(b.as_bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            out.push_str(&format!(
                "; string {i} first differs at byte {at}: expected {} got {}",
                abbreviate(&a.to_presentation()),
                abbreviate(&b.to_presentation())
            ));
            return out;
        }
    }
    if expected.value() == got.value() {
        out.push_str(" (same joined value, split differently)");
    }
    out
}

/// Queries `addr` directly (no recursion, TCP) for the TXT records at `name` with
/// `dig`, parsing each answer's character-strings as served. NOERROR and NXDOMAIN
/// answers are results; anything else is an error.
///
/// # Errors
/// A message when `dig` cannot run, or answers with an rcode other than NOERROR
/// or NXDOMAIN, or output that does not parse.
pub async fn dig_txt(addr: SocketAddr, name: &Fqdn) -> Result<Vec<TxtRecord>, String> {
    let out = tokio::process::Command::new("dig")
        .args([
            "+norec",
            "+tcp",
            "+time=3",
            "+tries=1",
            "+nocmd",
            "+noquestion",
            "+noauthority",
            "+noadditional",
            "+nostats",
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            &name.to_dotted(),
            "TXT",
        ])
        .output()
        .await
        .map_err(|e| format!("dig: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "dig exited with {}: {}",
            out.status,
            text.trim().lines().next().unwrap_or("")
        ));
    }
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .map(str::trim)
        .ok_or_else(|| format!("no status in dig output: {}", abbreviate(text.trim())))?;
    if status != "NOERROR" && status != "NXDOMAIN" {
        return Err(format!("DNS answered {status}"));
    }
    let mut records = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        // owner TTL class type rdata...
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..4 {
            let t = rest.trim_start();
            let end = t.find([' ', '\t']).unwrap_or(t.len());
            fields.push(&t[..end]);
            rest = &t[end..];
        }
        if fields.get(3) != Some(&"TXT") {
            continue;
        }
        let r = TxtRecord::parse_presentation(rest.trim())
            .map_err(|e| format!("cannot parse served TXT {:?}: {e}", rest.trim()))?;
        records.push(r);
    }
    Ok(records)
}
