//! The probe records: what `maildns diagnose` writes under `_maildns-probe.<zone>`.
//!
//! Every probe has its own name (`<id>._maildns-probe.<zone>`), so a later run
//! knows exactly which names to clean up. Values are printable ASCII patterns in
//! which every byte position is recognisable, so truncation and alteration show.

use maildns_providers::{Fqdn, NameError, Split, TxtRecord};
use serde::Serialize;

/// The label under which all probes live.
pub const PROBE_LABEL: &str = "_maildns-probe";

/// Length of `p=` for RSA keys of each size probed (base64 of the SubjectPublicKeyInfo).
pub const DKIM_P_LEN: [(u32, usize); 3] = [(1024, 216), (2048, 392), (4096, 736)];

/// What a probe is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeKind {
    /// A long value, sent as greedy 255-byte strings.
    Length,
    /// A DKIM record the size of an RSA key of `bits`, split before `p=` and at 255.
    Dkim {
        /// RSA key size.
        bits: u32,
    },
    /// Many short strings in one record.
    ManyStrings,
    /// Characters that need quoting or escaping.
    Characters,
}

/// One probe record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Short id, also the first label of its name (`p255`, `dkim2048`, ...).
    pub id: &'static str,
    /// What it tests, in words.
    pub about: &'static str,
    /// What it is about.
    pub kind: ProbeKind,
    /// `<id>._maildns-probe.<zone>`.
    pub name: Fqdn,
    /// The record sent.
    pub record: TxtRecord,
}

/// `_maildns-probe.<zone>`.
///
/// # Errors
/// [`NameError`] when the name is over 255 bytes in wire form.
pub fn probe_root(zone: &Fqdn) -> Result<Fqdn, NameError> {
    zone.child(PROBE_LABEL)
}

/// `len` bytes of a recognisable pattern: `0123456789abcdef...` with a marker
/// every 64 bytes, printable ASCII only.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/";
    (0..len)
        .map(|i| {
            let j = (i + usize::from(seed)) % ALPHABET.len();
            ALPHABET.get(j).copied().unwrap_or(b'x')
        })
        .collect()
}

/// The value of a DKIM record the size of an RSA key with a `p_len`-char `p=`.
pub fn dkim_value(p_len: usize) -> Vec<u8> {
    let mut v = b"v=DKIM1; k=rsa; p=".to_vec();
    v.extend(pattern(p_len, 7));
    v
}

/// A record of these parts (each under 255 bytes here, so never refused).
fn strings<P: AsRef<[u8]>>(parts: &[P]) -> TxtRecord {
    TxtRecord::from_parts(parts).unwrap_or_else(|_| TxtRecord::from_value(b""))
}

/// Every probe for `zone`, in the order they are written.
///
/// # Errors
/// [`NameError`] when a probe's name is over 255 bytes in wire form.
pub fn probes(zone: &Fqdn) -> Result<Vec<Probe>, NameError> {
    let root = probe_root(zone)?;
    let name = |id: &str| root.child(id);
    let lengths = [
        ("p255", "one string of 255 bytes", 255),
        ("p256", "a 256-byte value (255 + 1)", 256),
        ("p512", "a 512-byte value (255 + 255 + 2)", 512),
    ];
    let mut out = Vec::new();
    for (seed, (id, about, len)) in (0u8..).zip(lengths) {
        out.push(Probe {
            id,
            about,
            kind: ProbeKind::Length,
            name: name(id)?,
            record: TxtRecord::from_value(pattern(len, seed)),
        });
    }
    for (bits, p_len) in DKIM_P_LEN {
        let id = match bits {
            1024 => "dkim1024",
            2048 => "dkim2048",
            _ => "dkim4096",
        };
        out.push(Probe {
            id,
            about: match bits {
                1024 => "DKIM record of a 1024-bit key (216-char p=)",
                2048 => "DKIM record of a 2048-bit key (392-char p=)",
                _ => "DKIM record of a 4096-bit key (736-char p=)",
            },
            kind: ProbeKind::Dkim { bits },
            name: name(id)?,
            record: TxtRecord::split(&dkim_value(p_len), Split::Before(b"p=")),
        });
    }
    let short: Vec<Vec<u8>> = (0..20u8).map(|i| pattern(10, i)).collect();
    out.push(Probe {
        id: "many",
        about: "20 strings of 10 bytes in one record",
        kind: ProbeKind::ManyStrings,
        name: name("many")?,
        record: strings(&short),
    });
    out.push(Probe {
        id: "chars",
        about: "semicolons, double quotes, backslashes and spaces",
        kind: ProbeKind::Characters,
        name: name("chars")?,
        record: strings(&[br#"a=1; b="two words";  c=back\slash; d=\"q\" ; end "#]),
    });
    Ok(out)
}

/// The names of every probe (what a later run removes as leftovers).
///
/// # Errors
/// As [`probes`].
pub fn probe_names(zone: &Fqdn) -> Result<Vec<Fqdn>, NameError> {
    Ok(probes(zone)?.into_iter().map(|p| p.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_have_the_documented_shapes() {
        let zone = Fqdn::parse("example.com").unwrap();
        let all = probes(&zone).unwrap();
        let get = |id: &str| all.iter().find(|p| p.id == id).unwrap();
        assert_eq!(get("p255").name.as_str(), "p255._maildns-probe.example.com");
        assert_eq!(get("p255").record.strings().len(), 1);
        assert_eq!(get("p256").record.value_len(), 256);
        assert_eq!(get("p512").record.strings().len(), 3);
        let k = &get("dkim2048").record;
        assert_eq!(k.strings()[0].as_bytes(), b"v=DKIM1; k=rsa; ");
        assert_eq!(k.value_len(), 18 + 392);
        assert!(k.strings().iter().all(|s| s.len() <= 255));
        assert_eq!(get("dkim4096").record.value_len(), 18 + 736);
        assert_eq!(get("many").record.strings().len(), 20);
        let c = get("chars").record.value();
        for b in [b';', b'"', b'\\', b' '] {
            assert!(c.contains(&b));
        }
        assert!(all.iter().all(|p| p.name.is_within(&zone)));
    }
}
