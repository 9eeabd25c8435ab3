//! DKIM key records (RFC 6376 §3.6.1; RFC 8301 key sizes and hashes; RFC 8463 Ed25519),
//! published at `<selector>._domainkey.<domain>`.
//!
//! [`DkimKey`] is the typed record: built from a public key with [`DkimKey::new`],
//! parsed strictly with [`DkimKey::parse`] or, for hand-made and opendkim-genkey
//! output, with [`DkimKey::parse_lenient`], which repairs `h=rsa-sha256` (not a hash
//! algorithm) to `h=sha256` and reports it. [`parse_opendkim_txt`] reads
//! opendkim-genkey's `.txt` file. `to_txt` keeps the whole value in ONE TXT record,
//! split into strings of at most 255 bytes before `p=` as opendkim-genkey does.

use std::fmt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use maildns_providers::txt::ParseError;
use maildns_providers::{Fqdn, Split, TxtRecord};

use super::Diagnostic;
use super::tags::{TagListError, parse_tag_list, strip_ws};

mod opendkim;

pub use opendkim::{OpendkimTxt, parse_opendkim_txt};

/// Key type, tag `k=` (RFC 6376 §3.6.1, RFC 8463).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `rsa` (the default when `k=` is absent): p= is a DER SubjectPublicKeyInfo.
    Rsa,
    /// `ed25519`: p= is the raw 32-byte public key.
    Ed25519,
    /// Anything else, kept as written.
    Other(String),
}

/// Hash algorithm listed in `h=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// `sha256`.
    Sha256,
    /// `sha1` (must no longer be used, RFC 8301).
    Sha1,
    /// Anything else, kept as written.
    Other(String),
}

/// Service type listed in `s=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// `email`.
    Email,
    /// `*`: all services.
    Any,
    /// Anything else, kept as written.
    Other(String),
}

/// Flag listed in `t=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `y`: the domain is testing DKIM.
    Testing,
    /// `s`: the `i=` domain must equal `d=` exactly.
    Strict,
    /// Anything else, kept as written.
    Other(String),
}

/// A DKIM key record. Lists are empty when their tag is absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimKey {
    /// `v=DKIM1` present.
    pub version: bool,
    /// `h=`: acceptable hash algorithms; empty = tag absent (all allowed).
    pub hashes: Vec<HashAlg>,
    /// `k=` as written; `None` = absent (RSA).
    pub key_type: Option<KeyType>,
    /// `s=`: service types; empty = tag absent (`*`).
    pub services: Vec<ServiceType>,
    /// `t=`: flags; empty = tag absent.
    pub flags: Vec<Flag>,
    /// `n=`: notes for humans, as written (must not contain `;`).
    pub notes: Option<String>,
    /// `p=` decoded; empty = the key is revoked.
    pub public_key: Vec<u8>,
    /// Tags RFC 6376 does not define, in order (kept; verifiers ignore them).
    pub unknown: Vec<(String, String)>,
}

/// Why a value is not a valid DKIM key record. Positions are byte offsets into the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    /// The `tag=value` list is malformed.
    #[error("{0}")]
    TagList(#[from] TagListError),
    /// `v=` present but not the first tag.
    #[error("v= must be the first tag (found at byte {at})")]
    VersionNotFirst {
        /// Offset of `v`.
        at: usize,
    },
    /// `v=` with a value other than `DKIM1`.
    #[error("v={value} at byte {at}: the version must be DKIM1")]
    BadVersion {
        /// The value.
        value: String,
        /// Its offset.
        at: usize,
    },
    /// No `p=` tag (RFC 6376: required; empty means revoked).
    #[error("the record has no p= tag (the public key is required; an empty p= revokes)")]
    MissingPublicKey,
    /// `p=` is not base64.
    #[error("p= at byte {at} is not valid base64")]
    BadBase64 {
        /// Offset of the value.
        at: usize,
    },
    /// An empty item in a list (`h=`, `s=`, `t=`), or an empty `k=`.
    #[error("{tag}= at byte {at} has an empty value or list item")]
    EmptyValue {
        /// The tag.
        tag: &'static str,
        /// Offset of the value.
        at: usize,
    },
    /// `h=rsa-sha256` or similar: a signing algorithm, not a hash (strict parsing only).
    #[error(
        "h= at byte {at} lists '{value}', a signature algorithm, not a hash: write 'h=sha256' \
         (opendkim-genkey -h rsa-sha256 writes this)"
    )]
    SignatureAlgorithmInH {
        /// The item.
        value: String,
        /// Offset of the value.
        at: usize,
    },
    /// opendkim-genkey `.txt` text without the `SEL._domainkey IN TXT ( ... )` shape.
    #[error("not opendkim-genkey output: {reason} (byte {at})")]
    OpendkimFormat {
        /// What is missing.
        reason: &'static str,
        /// Where.
        at: usize,
    },
    /// The quoted strings of an opendkim-genkey `.txt` file are malformed.
    #[error("in the TXT data: {0}")]
    Presentation(ParseError),
}

/// True when `value` is a DKIM key record by the ownership rule: it starts with
/// `v=DKIM1` (any case) followed by `;`, white space or the end.
pub fn is_dkim(value: &[u8]) -> bool {
    value.len() >= 7
        && value[..7].eq_ignore_ascii_case(b"v=DKIM1")
        && value
            .get(7)
            .is_none_or(|&b| b == b';' || b.is_ascii_whitespace())
}

/// The base64 decoder for p=: padding optional, as verifiers accept.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn list<'a>(value: &'a str, tag: &'static str, at: usize) -> Result<Vec<&'a str>, DkimError> {
    let items: Vec<&str> = value.split(':').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(DkimError::EmptyValue { tag, at });
    }
    Ok(items)
}

impl DkimKey {
    /// A record `v=DKIM1; h=sha256; k=<type>; p=<key>` for a public key: the DER
    /// SubjectPublicKeyInfo for RSA, the raw 32 bytes for Ed25519.
    pub fn new(key_type: KeyType, public_key: Vec<u8>) -> Self {
        DkimKey {
            version: true,
            hashes: vec![HashAlg::Sha256],
            key_type: Some(key_type),
            services: Vec::new(),
            flags: Vec::new(),
            notes: None,
            public_key,
            unknown: Vec::new(),
        }
    }

    /// The same record with an empty `p=`: the key is revoked (RFC 6376 §3.6.1).
    pub fn revoked(mut self) -> Self {
        self.public_key.clear();
        self
    }

    /// Sets `t=` flags.
    pub fn with_flags(mut self, flags: Vec<Flag>) -> Self {
        self.flags = flags;
        self
    }

    /// Sets `s=` service types.
    pub fn with_services(mut self, services: Vec<ServiceType>) -> Self {
        self.services = services;
        self
    }

    /// Sets `n=` notes (a `;` would end the tag; keep notes short and plain).
    pub fn with_notes(mut self, notes: impl Into<String>) -> Self {
        self.notes = Some(notes.into());
        self
    }

    /// True when `p=` is empty.
    pub fn is_revoked(&self) -> bool {
        self.public_key.is_empty()
    }

    /// The effective key type (`k=` absent means RSA).
    pub fn key_type(&self) -> &KeyType {
        self.key_type.as_ref().unwrap_or(&KeyType::Rsa)
    }

    /// True when `t=y` is set.
    pub fn is_testing(&self) -> bool {
        self.flags.contains(&Flag::Testing)
    }

    /// Parses a record strictly: `h=rsa-sha256` is an error.
    ///
    /// # Errors
    /// [`DkimError`] with the byte offset: a value that is not a tag-list, a `v=` that
    /// is not first or not `DKIM1`, no `p=`, a `p=` that is not base64, an empty value,
    /// or `h=` naming a signature algorithm (RFC 6376 §3.6.1).
    pub fn parse(value: &str) -> Result<Self, DkimError> {
        Self::parse_inner(value, None)
    }

    /// Parses a record, repairing `h=rsa-sha256` / `h=rsa-sha1` (opendkim-genkey's
    /// output) to `sha256` / `sha1`; each repair is reported as a warning with code
    /// `dkim-h-corrected`.
    ///
    /// # Errors
    /// As [`DkimKey::parse`], except for the `h=` repairs above.
    pub fn parse_lenient(value: &str) -> Result<(Self, Vec<Diagnostic>), DkimError> {
        let mut warnings = Vec::new();
        let key = Self::parse_inner(value, Some(&mut warnings))?;
        Ok((key, warnings))
    }

    fn parse_inner(
        value: &str,
        mut lenient: Option<&mut Vec<Diagnostic>>,
    ) -> Result<Self, DkimError> {
        let tags = parse_tag_list(value, false)?;
        let mut key = DkimKey {
            version: false,
            hashes: Vec::new(),
            key_type: None,
            services: Vec::new(),
            flags: Vec::new(),
            notes: None,
            public_key: Vec::new(),
            unknown: Vec::new(),
        };
        let mut have_p = false;
        for (i, tag) in tags.iter().enumerate() {
            let at = tag.value_at;
            match tag.name {
                "v" => {
                    if i != 0 {
                        return Err(DkimError::VersionNotFirst { at: tag.name_at });
                    }
                    if tag.value != "DKIM1" {
                        return Err(DkimError::BadVersion {
                            value: tag.value.to_string(),
                            at,
                        });
                    }
                    key.version = true;
                }
                "h" => {
                    for item in list(tag.value, "h", at)? {
                        let alg = match item {
                            "sha256" => HashAlg::Sha256,
                            "sha1" => HashAlg::Sha1,
                            "rsa-sha256" | "rsa-sha1" | "ed25519-sha256" => {
                                let Some(w) = lenient.as_deref_mut() else {
                                    return Err(DkimError::SignatureAlgorithmInH {
                                        value: item.to_string(),
                                        at,
                                    });
                                };
                                let fixed = if item.ends_with("sha1") {
                                    HashAlg::Sha1
                                } else {
                                    HashAlg::Sha256
                                };
                                w.push(Diagnostic::warning(
                                    "dkim-h-corrected",
                                    format!(
                                        "h= listed '{item}', a signature algorithm rather than a \
                                         hash; read as '{}' (publish the corrected record)",
                                        fixed.as_str()
                                    ),
                                ));
                                fixed
                            }
                            other => HashAlg::Other(other.to_string()),
                        };
                        if !key.hashes.contains(&alg) {
                            key.hashes.push(alg);
                        }
                    }
                }
                "k" => {
                    key.key_type = Some(match tag.value {
                        "rsa" => KeyType::Rsa,
                        "ed25519" => KeyType::Ed25519,
                        "" => return Err(DkimError::EmptyValue { tag: "k", at }),
                        other => KeyType::Other(other.to_string()),
                    });
                }
                "s" => {
                    for item in list(tag.value, "s", at)? {
                        key.services.push(match item {
                            "email" => ServiceType::Email,
                            "*" => ServiceType::Any,
                            other => ServiceType::Other(other.to_string()),
                        });
                    }
                }
                "t" => {
                    for item in list(tag.value, "t", at)? {
                        key.flags.push(match item {
                            "y" => Flag::Testing,
                            "s" => Flag::Strict,
                            other => Flag::Other(other.to_string()),
                        });
                    }
                }
                "n" => key.notes = Some(tag.value.to_string()),
                "p" => {
                    have_p = true;
                    key.public_key = LENIENT_B64
                        .decode(strip_ws(tag.value))
                        .map_err(|_| DkimError::BadBase64 { at })?;
                }
                other => key.unknown.push((other.to_string(), tag.value.to_string())),
            }
        }
        if !have_p {
            return Err(DkimError::MissingPublicKey);
        }
        Ok(key)
    }

    /// The canonical value: `v, h, k, s, t, n`, unknown tags, then `p` last.
    pub fn to_value(&self) -> String {
        self.to_string()
    }

    /// ONE TXT record, split before `p=` and then every 255 bytes.
    pub fn to_txt(&self) -> TxtRecord {
        TxtRecord::split(self.to_string().as_bytes(), Split::Before(b"p="))
    }

    /// Key size in bits: the RSA modulus length (from the DER SubjectPublicKeyInfo),
    /// 256 for a valid Ed25519 key; `None` when revoked, unreadable or of unknown type.
    pub fn key_bits(&self) -> Option<usize> {
        if self.is_revoked() {
            return None;
        }
        match self.key_type() {
            KeyType::Rsa => rsa_key(&self.public_key).map(|(bits, _)| bits),
            KeyType::Ed25519 => {
                let raw: [u8; 32] = self.public_key.as_slice().try_into().ok()?;
                ed25519_dalek::VerifyingKey::from_bytes(&raw).ok()?;
                Some(256)
            }
            KeyType::Other(_) => None,
        }
    }

    /// Checks the record. Codes: `dkim-rsa-too-short`, `dkim-bad-key`,
    /// `dkim-unknown-key-type`, `dkim-no-sha256`, `dkim-not-for-email` (errors);
    /// `dkim-rsa-short`, `dkim-sha1`, `dkim-rsa-pkcs1`, `dkim-unknown-hash` (warnings);
    /// `dkim-testing`, `dkim-revoked`, `dkim-unknown-tag` (info).
    pub fn lint(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.is_revoked() {
            out.push(Diagnostic::info(
                "dkim-revoked",
                "p= is empty: this selector's key is revoked and signatures made with it fail",
            ));
        } else {
            match self.key_type() {
                KeyType::Other(k) => out.push(Diagnostic::error(
                    "dkim-unknown-key-type",
                    format!("k={k} is not a key type verifiers know; use k=rsa or k=ed25519"),
                )),
                KeyType::Rsa => match rsa_key(&self.public_key) {
                    None => out.push(Diagnostic::error(
                        "dkim-bad-key",
                        "p= does not decode as an RSA public key (DER SubjectPublicKeyInfo, \
                         at most 4096 bits)",
                    )),
                    Some((bits, pkcs1)) => {
                        if pkcs1 {
                            out.push(Diagnostic::warning(
                                "dkim-rsa-pkcs1",
                                "p= holds a bare PKCS#1 RSAPublicKey; RFC 6376 wants the \
                                 SubjectPublicKeyInfo form (what `openssl rsa -pubout` writes) \
                                 and some verifiers reject this one",
                            ));
                        }
                        if bits < 1024 {
                            out.push(Diagnostic::error(
                                "dkim-rsa-too-short",
                                format!(
                                    "the RSA key has {bits} bits; verifiers reject keys under \
                                     1024 bits (RFC 8301): generate a 2048-bit key"
                                ),
                            ));
                        } else if bits < 2048 {
                            out.push(Diagnostic::warning(
                                "dkim-rsa-short",
                                format!(
                                    "the RSA key has {bits} bits; RFC 8301 says signers should \
                                     use 2048 bits"
                                ),
                            ));
                        }
                    }
                },
                KeyType::Ed25519 => {
                    if self.key_bits().is_none() {
                        out.push(Diagnostic::error(
                            "dkim-bad-key",
                            format!(
                                "p= holds {} bytes that are not an Ed25519 public key (RFC 8463: \
                                 the raw 32-byte key, 44 base64 characters)",
                                self.public_key.len()
                            ),
                        ));
                    }
                }
            }
        }
        if self.hashes.contains(&HashAlg::Sha1) {
            out.push(Diagnostic::warning(
                "dkim-sha1",
                "h= allows sha1, which must no longer be used (RFC 8301): list only sha256",
            ));
        }
        if !self.hashes.is_empty() && !self.hashes.contains(&HashAlg::Sha256) {
            out.push(Diagnostic::error(
                "dkim-no-sha256",
                "h= does not allow sha256, so verifiers reject every current signature: \
                 write h=sha256 or drop h=",
            ));
        }
        for h in &self.hashes {
            if let HashAlg::Other(name) = h {
                out.push(Diagnostic::warning(
                    "dkim-unknown-hash",
                    format!("h= lists '{name}', which verifiers ignore"),
                ));
            }
        }
        if !self.services.is_empty()
            && !self
                .services
                .iter()
                .any(|s| matches!(s, ServiceType::Email | ServiceType::Any))
        {
            out.push(Diagnostic::error(
                "dkim-not-for-email",
                "s= lists neither 'email' nor '*', so the key cannot verify mail",
            ));
        }
        if self.is_testing() {
            out.push(Diagnostic::info(
                "dkim-testing",
                "t=y: the domain is testing DKIM; verifiers may treat failures as if unsigned",
            ));
        }
        for (name, _) in &self.unknown {
            out.push(Diagnostic::info(
                "dkim-unknown-tag",
                format!("tag '{name}=' is not defined by RFC 6376; verifiers ignore it"),
            ));
        }
        out
    }
}

/// Reads an RSA public key: (modulus bits, true when it was a bare PKCS#1
/// RSAPublicKey rather than the SubjectPublicKeyInfo RFC 6376 asks for). The size is
/// read from the structure so keys under 1024 bits (which the `rsa` crate refuses)
/// are still measured; keys of 1024 bits and more must also pass `rsa`'s checks.
fn rsa_key(der: &[u8]) -> Option<(usize, bool)> {
    use rsa::pkcs1::RsaPublicKeyRef;
    use rsa::pkcs1::der::Decode;
    use rsa::pkcs8::SubjectPublicKeyInfoRef;
    let (inner, pkcs1) = match SubjectPublicKeyInfoRef::from_der(der) {
        Ok(spki) => {
            if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
                return None;
            }
            (spki.subject_public_key.as_bytes()?, false)
        }
        Err(_) => (der, true),
    };
    let key = RsaPublicKeyRef::from_der(inner).ok()?;
    let n = key.modulus.as_bytes();
    let first = n.iter().position(|&b| b != 0)?;
    let top = n.get(first)?;
    let bits = (n.len() - first - 1) * 8 + (8 - top.leading_zeros() as usize);
    if bits >= rsa::PublicKey::MIN_SIZE {
        rsa::PublicKey::try_from(key).ok()?;
    }
    Some((bits, pkcs1))
}

impl KeyType {
    /// The `k=` value.
    pub fn as_str(&self) -> &str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
            KeyType::Other(s) => s,
        }
    }
}

impl HashAlg {
    /// The `h=` item.
    pub fn as_str(&self) -> &str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha1 => "sha1",
            HashAlg::Other(s) => s,
        }
    }
}

impl ServiceType {
    /// The `s=` item.
    pub fn as_str(&self) -> &str {
        match self {
            ServiceType::Email => "email",
            ServiceType::Any => "*",
            ServiceType::Other(s) => s,
        }
    }
}

impl Flag {
    /// The `t=` item.
    pub fn as_str(&self) -> &str {
        match self {
            Flag::Testing => "y",
            Flag::Strict => "s",
            Flag::Other(s) => s,
        }
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(":")
}

impl fmt::Display for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.version {
            parts.push("v=DKIM1".into());
        }
        if !self.hashes.is_empty() {
            parts.push(format!(
                "h={}",
                join(self.hashes.iter().map(HashAlg::as_str))
            ));
        }
        if let Some(k) = &self.key_type {
            parts.push(format!("k={}", k.as_str()));
        }
        if !self.services.is_empty() {
            parts.push(format!(
                "s={}",
                join(self.services.iter().map(ServiceType::as_str))
            ));
        }
        if !self.flags.is_empty() {
            parts.push(format!("t={}", join(self.flags.iter().map(Flag::as_str))));
        }
        if let Some(n) = &self.notes {
            parts.push(format!("n={n}"));
        }
        for (name, value) in &self.unknown {
            parts.push(format!("{name}={value}"));
        }
        parts.push(format!("p={}", STANDARD.encode(&self.public_key)));
        f.write_str(&parts.join("; "))
    }
}

impl std::str::FromStr for DkimKey {
    type Err = DkimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DkimKey::parse(s)
    }
}

/// The owner name of a selector's record: `<selector>._domainkey.<domain>`.
///
/// # Errors
/// [`maildns_providers::NameError`] when the selector makes a bad label or the
/// name is over 255 bytes in wire form.
pub fn record_name(selector: &str, domain: &Fqdn) -> Result<Fqdn, maildns_providers::NameError> {
    domain.child(&format!("{selector}._domainkey"))
}

#[cfg(test)]
mod tests;
