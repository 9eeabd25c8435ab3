//! DKIM private keys: generation, PEM load and store, and the public `p=` value.
//!
//! Why this module exists: a DKIM key lives twice, as a private key file the signer
//! (OpenDKIM) reads for every message and as the `p=` value in DNS. Both must come
//! from the same key, the file must never be readable by others (not even for an
//! instant while it is written), and a key file in use must never be replaced
//! (OpenDKIM re-reads key files per message, so overwriting one switches keys at once,
//! before DNS has the new public key).
//!
//! Crypto crates: RSA uses the `rsa` crate (0.10) because it generates 1024-bit keys,
//! which some DNS hosts still need and aws-lc-rs cannot generate. That crate carries
//! advisory RUSTSEC-2023-0071 (Marvin: a timing side channel in private-key
//! operations on attacker-chosen inputs). maildns only generates keys, encodes them,
//! and (in tests) signs its own messages, so the side channel is not reachable; the
//! signing of real mail is done by OpenDKIM with OpenSSL. Ed25519 uses
//! `ed25519-dalek` 3. Randomness comes from the operating system (`getrandom`).

use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::pkcs8::{EncodePublicKey as _, LineEnding, ObjectIdentifier, PrivateKeyInfoRef};
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The RSA sizes maildns generates.
pub const RSA_SIZES: [u32; 4] = [1024, 2048, 3072, 4096];

/// The smallest RSA key maildns accepts anywhere a key enters (generated,
/// imported, loaded from disk): RFC 8301 §3.2, signers MUST use at least 1024 bits.
pub const RSA_MIN_BITS: u32 = 1024;

/// The RSA size RFC 8301 §3.2 says signers SHOULD use at least; smaller (but
/// allowed) keys get [`strength_warning`] on every run.
pub const RSA_RECOMMENDED_BITS: u32 = 2048;

/// The warning for an allowed but weak key (RSA of 1024 up to 2047 bits), or
/// `None`. Keys under [`RSA_MIN_BITS`] never get this far: they are refused.
pub fn strength_warning(algorithm: Algorithm, bits: u32) -> Option<String> {
    (algorithm == Algorithm::Rsa && bits < RSA_RECOMMENDED_BITS).then(|| {
        format!(
            "a {bits}-bit RSA key: RFC 8301 (section 3.2) says signers SHOULD use at least {RSA_RECOMMENDED_BITS} bits; rotate to a 2048-bit key unless the DNS host cannot hold its record"
        )
    })
}

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// DER of a PKCS#8 v1 Ed25519 private key up to the 32-byte seed (RFC 8410 §7).
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A DKIM key algorithm (`k=` tag: `rsa` or `ed25519`, RFC 6376 / RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// RSA (`k=rsa`, signed with rsa-sha256).
    Rsa,
    /// Ed25519 (`k=ed25519`, RFC 8463, signed with ed25519-sha256).
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// Parses [`Algorithm::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "rsa" => Some(Algorithm::Rsa),
            "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What key to generate: algorithm and, for RSA, the modulus size in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeySpec {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// RSA modulus size in bits (1024, 2048, 3072 or 4096). For Ed25519 only 256 (or 0,
    /// meaning "the fixed size") is accepted.
    pub bits: u32,
}

impl KeySpec {
    /// An RSA key of `bits` bits.
    pub fn rsa(bits: u32) -> Self {
        KeySpec {
            algorithm: Algorithm::Rsa,
            bits,
        }
    }

    /// An Ed25519 key (256 bits).
    pub fn ed25519() -> Self {
        KeySpec {
            algorithm: Algorithm::Ed25519,
            bits: 256,
        }
    }
}

/// Why a key could not be generated, parsed, written or read. Never contains key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// RSA below 1024 bits (requested, or found in a key): receivers ignore
    /// such signatures (RFC 8301 §3.2).
    #[error("a {bits}-bit RSA key: RSA keys must have at least 1024 bits (RFC 8301, section 3.2)")]
    RsaTooSmall {
        /// The key's (or the requested) size.
        bits: u32,
    },
    /// A key file holding an RSA key under 1024 bits.
    #[error(
        "{}: a {bits}-bit RSA key: RSA keys must have at least 1024 bits (RFC 8301, section 3.2); generate a 2048-bit key",
        path.display()
    )]
    WeakKeyFile {
        /// The file.
        path: PathBuf,
        /// The key's size.
        bits: u32,
    },
    /// An RSA size maildns does not generate.
    #[error("unsupported RSA key size {bits}: use 1024, 2048, 3072 or 4096")]
    UnsupportedSize {
        /// Requested size.
        bits: u32,
    },
    /// Ed25519 with a size other than 256.
    #[error("Ed25519 keys are always 256 bits; {bits} requested")]
    Ed25519Size {
        /// Requested size.
        bits: u32,
    },
    /// The generator or the operating system's RNG failed.
    #[error("key generation failed: {reason}")]
    Generate {
        /// What failed.
        reason: String,
    },
    /// Text that is not a supported PEM private key.
    #[error("not a usable private key: {reason}")]
    InvalidPem {
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// Encoding a key failed.
    #[error("cannot encode the key: {reason}")]
    Encode {
        /// What failed.
        reason: String,
    },
    /// A key file that could not be parsed.
    #[error("{}: not a usable private key: {reason}", path.display())]
    InvalidKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// Refusing to overwrite.
    #[error("{} already exists: maildns never overwrites a key file", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file mode other than 0600 / 0640.
    #[error("key file mode {mode:o} refused: use 600 or 640")]
    BadMode {
        /// The refused mode.
        mode: u32,
    },
    /// chown refused (only root may give a file away).
    #[error("cannot chown {} to {uid}:{gid}: {source} (changing a file's owner needs root)", path.display())]
    Chown {
        /// The file.
        path: PathBuf,
        /// Wanted owner.
        uid: u32,
        /// Wanted group.
        gid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// Any other I/O failure.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

#[derive(Clone)]
enum Inner {
    Rsa(Box<rsa::PrivateKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// A DKIM private key (RSA or Ed25519). Its `Debug` shows the algorithm, size and
/// public `p=` value, never the private key.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Inner,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm())
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a new key. RSA: 1024, 2048, 3072 or 4096 bits (4096 can take a
    /// second or more). Ed25519: `bits` must be 256 or 0.
    ///
    /// # Errors
    /// [`KeyError::RsaTooSmall`] under 1024 bits (RFC 8301 §3.2),
    /// [`KeyError::UnsupportedSize`] for another RSA size, [`KeyError::Ed25519Size`]
    /// for an Ed25519 size other than 0 or 256, [`KeyError::Generate`] when the
    /// random source or the generator fails.
    pub fn generate(spec: KeySpec) -> Result<Self, KeyError> {
        match spec.algorithm {
            Algorithm::Rsa => {
                if spec.bits < RSA_MIN_BITS {
                    return Err(KeyError::RsaTooSmall { bits: spec.bits });
                }
                if !RSA_SIZES.contains(&spec.bits) {
                    return Err(KeyError::UnsupportedSize { bits: spec.bits });
                }
                let mut rng = getrandom::SysRng;
                let key = rsa::PrivateKey::new(&mut rng, spec.bits as usize).map_err(|e| {
                    KeyError::Generate {
                        reason: e.to_string(),
                    }
                })?;
                Ok(PrivateKey {
                    inner: Inner::Rsa(Box::new(key)),
                })
            }
            Algorithm::Ed25519 => {
                if spec.bits != 0 && spec.bits != 256 {
                    return Err(KeyError::Ed25519Size { bits: spec.bits });
                }
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut_slice()).map_err(|e| KeyError::Generate {
                    reason: e.to_string(),
                })?;
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                Ok(PrivateKey {
                    inner: Inner::Ed25519(Box::new(key)),
                })
            }
        }
    }

    /// Parses a PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
    /// (`BEGIN PRIVATE KEY`, RSA or Ed25519). Text around the PEM block (comments
    /// some tools add) is ignored. Encrypted keys are refused: OpenDKIM cannot read
    /// them either.
    ///
    /// # Errors
    /// [`KeyError::InvalidPem`] for anything unreadable; [`KeyError::RsaTooSmall`]
    /// for an RSA key under [`RSA_MIN_BITS`] (RFC 8301 §3.2): this is the one door
    /// every key from outside comes through (import, adopt, load from disk).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let key = Self::parse_pem(text)?;
        match key.algorithm() {
            Algorithm::Rsa if key.bits() < RSA_MIN_BITS => {
                Err(KeyError::RsaTooSmall { bits: key.bits() })
            }
            _ => Ok(key),
        }
    }

    fn parse_pem(text: &str) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::InvalidPem { reason };
        let block = pem_block(text).ok_or_else(|| invalid("no PEM block found".into()))?;
        if block.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            if block.contains("Proc-Type:") {
                return Err(invalid(
                    "encrypted PKCS#1 key; OpenDKIM needs an unencrypted key".into(),
                ));
            }
            let key = rsa::PrivateKey::from_pkcs1_pem(block)
                .map_err(|e| invalid(format!("PKCS#1 RSA key: {e}")))?;
            return Ok(PrivateKey {
                inner: Inner::Rsa(Box::new(key)),
            });
        }
        if block.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(invalid(
                "encrypted PKCS#8 key; OpenDKIM needs an unencrypted key".into(),
            ));
        }
        if !block.starts_with("-----BEGIN PRIVATE KEY-----") {
            let label = block.lines().next().unwrap_or_default();
            return Err(invalid(format!(
                "unsupported PEM type {}: expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY",
                crate::quote::quoted(label)
            )));
        }
        let (_, doc) = rsa::pkcs8::SecretDocument::from_pem(block)
            .map_err(|e| invalid(format!("PKCS#8 PEM: {e}")))?;
        let info = PrivateKeyInfoRef::try_from(doc.as_bytes())
            .map_err(|e| invalid(format!("PKCS#8 structure: {e}")))?;
        let oid = info.algorithm.oid;
        if oid == OID_RSA {
            let key = rsa::PrivateKey::try_from(info)
                .map_err(|e| invalid(format!("PKCS#8 RSA key: {e}")))?;
            Ok(PrivateKey {
                inner: Inner::Rsa(Box::new(key)),
            })
        } else if oid == OID_ED25519 {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(doc.as_bytes())
                .map_err(|e| invalid(format!("PKCS#8 Ed25519 key: {e}")))?;
            Ok(PrivateKey {
                inner: Inner::Ed25519(Box::new(key)),
            })
        } else {
            Err(invalid(format!(
                "unsupported key algorithm {oid}: expected RSA or Ed25519"
            )))
        }
    }

    /// The key as PEM: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`, like
    /// `openssl genrsa -traditional`), Ed25519 as PKCS#8 (`BEGIN PRIVATE KEY`, what
    /// `openssl genpkey -algorithm ed25519` writes and OpenSSL-based signers read).
    ///
    /// # Errors
    /// [`KeyError::Encode`] when the key cannot be encoded.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let enc = |e: &dyn fmt::Display| KeyError::Encode {
            reason: e.to_string(),
        };
        match &self.inner {
            Inner::Rsa(k) => k.to_pkcs1_pem(LineEnding::LF).map_err(|e| enc(&e)),
            Inner::Ed25519(k) => {
                // PKCS#8 v1 (RFC 8410 §7), what `openssl genpkey` writes. The v2 form
                // ed25519-dalek writes (with the public key) is refused by OpenSSL
                // 3.0, and so by OpenDKIM.
                let mut der = Zeroizing::new(ED25519_PKCS8_V1_PREFIX.to_vec());
                der.extend_from_slice(k.as_bytes());
                let doc =
                    rsa::pkcs8::SecretDocument::try_from(der.as_slice()).map_err(|e| enc(&e))?;
                doc.to_pem("PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| enc(&e))
            }
        }
    }

    /// Ed25519 only: the 64-byte secret key in libsodium's layout (the 32-byte
    /// seed, then the 32-byte public key), the form rspamd and
    /// `rspamadm dkim_keygen -t ed25519` use (base64-encoded). `None` for RSA.
    pub fn ed25519_keypair_bytes(&self) -> Option<Zeroizing<[u8; 64]>> {
        match &self.inner {
            Inner::Rsa(_) => None,
            Inner::Ed25519(k) => Some(Zeroizing::new(k.to_keypair_bytes())),
        }
    }

    /// An Ed25519 key from libsodium's 64-byte layout (seed, then public key;
    /// the public half must match the seed) or from the 32-byte seed alone.
    ///
    /// # Errors
    /// [`KeyError::InvalidPem`] for another length or a public half that does
    /// not belong to the seed.
    pub fn from_ed25519_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::InvalidPem { reason };
        let key = match bytes.len() {
            32 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(bytes);
                ed25519_dalek::SigningKey::from_bytes(&seed)
            }
            64 => {
                let mut pair = Zeroizing::new([0u8; 64]);
                pair.copy_from_slice(bytes);
                ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                    .map_err(|e| invalid(format!("Ed25519 key pair: {e}")))?
            }
            n => {
                return Err(invalid(format!(
                    "an Ed25519 key is 32 bytes (seed) or 64 bytes (seed and public key), not {n}"
                )));
            }
        };
        Ok(PrivateKey {
            inner: Inner::Ed25519(Box::new(key)),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match &self.inner {
            Inner::Rsa(_) => Algorithm::Rsa,
            Inner::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Key size in bits (RSA modulus size; 256 for Ed25519).
    pub fn bits(&self) -> u32 {
        match &self.inner {
            Inner::Rsa(k) => k.n().bit_width(),
            Inner::Ed25519(_) => 256,
        }
    }

    /// The public key bytes published in DNS: RSA as DER SubjectPublicKeyInfo (what
    /// opendkim-genkey publishes), Ed25519 as the raw 32-byte key (RFC 8463 §4).
    ///
    /// # Errors
    /// [`KeyError::Encode`] when the RSA public key cannot be encoded as DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Rsa(k) => k
                .to_public_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| KeyError::Encode {
                    reason: e.to_string(),
                }),
            Inner::Ed25519(k) => Ok(k.verifying_key().to_bytes().to_vec()),
        }
    }

    /// The `p=` value: base64 of [`PrivateKey::public_key_der`].
    ///
    /// # Errors
    /// As [`PrivateKey::public_key_der`].
    pub fn p_value(&self) -> Result<String, KeyError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.public_key_der()?))
    }
}

/// The first `-----BEGIN ...-----` .. `-----END ...-----` block of `text`.
fn pem_block(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")?;
    let rest = text.get(start..)?;
    let end_marker = rest.find("-----END ")?;
    let after = rest.get(end_marker + "-----END ".len()..)?;
    let close = after.find("-----")?;
    let end = end_marker + "-----END ".len() + close + "-----".len();
    rest.get(..end)
}

/// How to write a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// File mode: `0o600` (default) or `0o640` (group-readable, for a signer running
    /// in the file's group; OpenDKIM accepts it only if that group has no other
    /// members).
    pub mode: u32,
    /// Owner and group to give the file (needs root).
    pub owner: Option<(u32, u32)>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            mode: 0o600,
            owner: None,
        }
    }
}

/// Writes `key` to a NEW file at `path`, atomically: a temporary file in the same
/// directory is created with the final mode (`O_EXCL`, never more readable than
/// requested), written, fsynced, chowned if asked, then hard-linked to `path` (which
/// fails if `path` exists: nothing is ever replaced), removed, and the directory is
/// fsynced. An existing `path` is [`KeyError::Exists`].
///
/// # Errors
/// [`KeyError::Exists`] when `path` exists, [`KeyError::BadMode`] for a mode other
/// than 0600 or 0640, [`KeyError::Chown`] when the owner cannot be set, and
/// [`KeyError::Io`] for any other file-system failure; no temporary file is left.
pub fn write_private_key(
    path: &Path,
    key: &PrivateKey,
    opts: WriteOptions,
) -> Result<(), KeyError> {
    if opts.mode != 0o600 && opts.mode != 0o640 {
        return Err(KeyError::BadMode { mode: opts.mode });
    }
    if path.symlink_metadata().is_ok() {
        return Err(KeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| KeyError::Io {
            path: path.to_path_buf(),
            op: "take the file name",
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
        })?
        .to_string_lossy()
        .into_owned();
    let pem = key.to_pem()?;
    let tmp = TempFile::create(&dir, &file_name, opts.mode)?;
    let write = (|| {
        let mut f = tmp.file()?;
        f.write_all(pem.as_bytes())
            .map_err(io_err(&tmp.path, "write"))?;
        // Creation mode went through the umask; set it exactly (still never wider).
        f.set_permissions(Permissions::from_mode(opts.mode))
            .map_err(io_err(&tmp.path, "chmod"))?;
        if let Some((uid, gid)) = opts.owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|source| {
                KeyError::Chown {
                    path: path.to_path_buf(),
                    uid,
                    gid,
                    source,
                }
            })?;
        }
        f.sync_all().map_err(io_err(&tmp.path, "fsync"))?;
        std::fs::hard_link(&tmp.path, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                KeyError::Io {
                    path: path.to_path_buf(),
                    op: "link the new key file into place",
                    source: e,
                }
            }
        })
    })();
    drop(tmp); // removes the temporary name in every case
    write?;
    sync_dir(&dir)
}

/// Reads and parses a PEM private key file.
///
/// # Errors
/// [`KeyError::Io`], [`KeyError::InvalidKeyFile`], and [`KeyError::WeakKeyFile`]
/// for an RSA key under 1024 bits.
pub fn load_private_key(path: &Path) -> Result<PrivateKey, KeyError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path, "read"))?);
    PrivateKey::from_pem(&text).map_err(|e| match e {
        KeyError::InvalidPem { reason } => KeyError::InvalidKeyFile {
            path: path.to_path_buf(),
            reason,
        },
        KeyError::RsaTooSmall { bits } => KeyError::WeakKeyFile {
            path: path.to_path_buf(),
            bits,
        },
        other => other,
    })
}

/// The public half of the private key in the PEM file at `path`, as
/// [`PrivateKey::public_key_der`] gives it, with the algorithm and size.
///
/// Reads only what publishing needs: the RSA modulus and public exponent are
/// taken from the key's DER structure without building the private key (which
/// computes its CRT values: most of the CPU time of a `publish` run of 1,000
/// domains with nothing to change went there). The same formats as
/// [`PrivateKey::from_pem`] are read and the same keys refused (encrypted,
/// multi-prime, under [`RSA_MIN_BITS`]); a key whose private half is damaged is
/// found where it is used to sign, and was checked when it came in (generated,
/// imported or adopted through [`PrivateKey::from_pem`]).
///
/// # Errors
/// As [`load_private_key`].
pub fn load_public_key(path: &Path) -> Result<(Algorithm, u32, Vec<u8>), KeyError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path, "read"))?);
    let invalid = |reason: String| KeyError::InvalidKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let block = pem_block(&text).ok_or_else(|| invalid("no PEM block found".into()))?;
    let rsa_der =
        if block.starts_with("-----BEGIN RSA PRIVATE KEY-----") && !block.contains("Proc-Type:") {
            let (_, doc) = rsa::pkcs8::SecretDocument::from_pem(block)
                .map_err(|e| invalid(format!("PKCS#1 RSA key: {e}")))?;
            Some(doc)
        } else if block.starts_with("-----BEGIN PRIVATE KEY-----") {
            let (_, doc) = rsa::pkcs8::SecretDocument::from_pem(block)
                .map_err(|e| invalid(format!("PKCS#8 PEM: {e}")))?;
            let info = PrivateKeyInfoRef::try_from(doc.as_bytes())
                .map_err(|e| invalid(format!("PKCS#8 structure: {e}")))?;
            if info.algorithm.oid == OID_RSA {
                Some(
                    rsa::pkcs8::SecretDocument::try_from(info.private_key.as_bytes())
                        .map_err(|e| invalid(format!("PKCS#8 RSA key: {e}")))?,
                )
            } else {
                None
            }
        } else {
            None
        };
    let Some(der) = rsa_der else {
        // Ed25519 (cheap to build) and every refusal: the full parser.
        let key = load_private_key(path)?;
        return Ok((key.algorithm(), key.bits(), key.public_key_der()?));
    };
    use rsa::pkcs1::der::Decode as _;
    let key = rsa::pkcs1::RsaPrivateKeyRef::from_der(der.as_bytes())
        .map_err(|e| invalid(format!("RSA key: {e}")))?;
    if key.version() != rsa::pkcs1::Version::TwoPrime {
        return Err(invalid(
            "RSA key: multi-prime keys are not supported".into(),
        ));
    }
    // The size from the modulus's big-endian bytes (DER drops leading zeros),
    // checked before the public key is built (which refuses small moduli its
    // own way).
    let n = key.modulus.as_bytes();
    let bits = match n.first() {
        Some(&top) => u32::try_from(n.len() * 8)
            .unwrap_or(u32::MAX)
            .saturating_sub(top.leading_zeros()),
        None => 0,
    };
    if bits < RSA_MIN_BITS {
        return Err(KeyError::WeakKeyFile {
            path: path.to_path_buf(),
            bits,
        });
    }
    let public = rsa::PublicKey::try_from(rsa::pkcs1::RsaPublicKey {
        modulus: key.modulus,
        public_exponent: key.public_exponent,
    })
    .map_err(|e| invalid(format!("RSA key: {e}")))?;
    let der = public
        .to_public_key_der()
        .map_err(|e| KeyError::Encode {
            reason: e.to_string(),
        })?
        .as_bytes()
        .to_vec();
    Ok((Algorithm::Rsa, bits, der))
}

/// Fsyncs a directory so a new name in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// A temporary file created with `O_EXCL`; its name is removed on drop. While it
/// lives it holds an exclusive `flock`, so [`remove_stale_temp_files`] run by
/// another process never takes a file that is being written (the kernel drops
/// the lock when its process dies, however it dies).
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    file: nix::fcntl::Flock<File>,
}

impl TempFile {
    /// Creates `<dir>/.<name>.<random>.tmp` with `mode`, locked.
    pub(crate) fn create(dir: &Path, name: &str, mode: u32) -> Result<TempFile, KeyError> {
        let mut last = None;
        for _ in 0..16 {
            let path = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
            {
                Ok(file) => {
                    // A fresh file nobody else knows yet: the lock is free.
                    let file = match nix::fcntl::Flock::lock(
                        file,
                        nix::fcntl::FlockArg::LockExclusiveNonblock,
                    ) {
                        Ok(f) => f,
                        Err((_, errno)) => {
                            let _ = std::fs::remove_file(&path);
                            return Err(io_err(&path, "lock a temporary file")(
                                std::io::Error::from(errno),
                            ));
                        }
                    };
                    return Ok(TempFile { path, file });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(io_err(dir, "create a temporary file")(e)),
            }
        }
        Err(io_err(dir, "create a temporary file")(last.unwrap_or_else(
            || std::io::Error::other("no free temporary name"),
        )))
    }

    /// A handle on the open file.
    pub(crate) fn file(&self) -> Result<File, KeyError> {
        self.file.try_clone().map_err(io_err(&self.path, "dup"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // The name goes before the lock (released when `file` drops after this).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// True for a name [`TempFile::create`] makes: `.<name>.<16 hex digits>.tmp`.
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|r| r.strip_suffix(".tmp")) else {
        return false;
    };
    match rest.rsplit_once('.') {
        Some((base, hex)) => {
            !base.is_empty() && hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Removes the temporary files [`write_private_key`] left in `dir` when its
/// process was killed before it could remove them (`.<name>.<random>.tmp`, which
/// may hold a complete private key). A file still being written by a live
/// process is locked and skipped. A missing `dir` has nothing to remove.
/// Returns the removed paths.
///
/// # Errors
///
/// [`KeyError::Io`] when `dir` cannot be listed or a stale file cannot be
/// removed. A temporary file this process cannot open is reported in the log
/// and left.
pub fn remove_stale_temp_files(dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, "list the directory")(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "list the directory"))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = path.symlink_metadata() else {
            continue; // gone meanwhile
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                // Another user's file (e.g. 0600 of the signer's user): not ours
                // to judge; say so rather than fail the command.
                tracing::warn!(
                    "cannot check the temporary file {}: {e}; remove it if no maildns is writing it",
                    path.display()
                );
                continue;
            }
        };
        // Held by a live writer: not stale.
        let Ok(_lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        else {
            continue;
        };
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path, "remove a stale temporary file")(e)),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn check_roundtrip(spec: KeySpec) {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(spec).unwrap();
        assert_eq!(key.algorithm(), spec.algorithm);
        assert_eq!(key.bits(), spec.bits);
        let path = dir.path().join("k.private");
        write_private_key(&path, &key, WriteOptions::default()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.nlink(), 1, "temporary name left behind");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_private_key(&path, &key, WriteOptions::default()).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("k.private"));
        let back = load_private_key(&path).unwrap();
        assert_eq!(back.p_value().unwrap(), key.p_value().unwrap());
        assert_eq!(back.bits(), spec.bits);
    }

    #[test]
    fn rsa_1024_roundtrip() {
        check_roundtrip(KeySpec::rsa(1024));
    }

    #[test]
    fn rsa_2048_roundtrip() {
        check_roundtrip(KeySpec::rsa(2048));
    }

    #[test]
    fn rsa_3072_roundtrip() {
        check_roundtrip(KeySpec::rsa(3072));
    }

    #[test]
    fn rsa_4096_roundtrip() {
        check_roundtrip(KeySpec::rsa(4096));
    }

    #[test]
    fn ed25519_roundtrip() {
        check_roundtrip(KeySpec::ed25519());
        let key = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.p_value().unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32, "RFC 8463: p= is the raw 32-byte key");
        assert!(
            key.to_pem()
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn rsa_pem_is_pkcs1() {
        let key = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        assert!(
            key.to_pem()
                .unwrap()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
    }

    #[test]
    fn refuses_small_and_odd_sizes() {
        assert!(matches!(
            PrivateKey::generate(KeySpec::rsa(512)),
            Err(KeyError::RsaTooSmall { bits: 512 })
        ));
        assert!(matches!(
            PrivateKey::generate(KeySpec::rsa(1536)),
            Err(KeyError::UnsupportedSize { bits: 1536 })
        ));
        assert!(matches!(
            PrivateKey::generate(KeySpec {
                algorithm: Algorithm::Ed25519,
                bits: 2048
            }),
            Err(KeyError::Ed25519Size { .. })
        ));
    }

    #[test]
    fn stale_temp_key_files_are_removed_but_live_ones_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // What a `rotate` killed between write and link leaves: a complete key.
        let key = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        let stale = d.join(".202611.private.00c0ffee00c0ffee.tmp");
        std::fs::write(&stale, key.to_pem().unwrap().as_bytes()).unwrap();
        // Being written right now by a live writer (locked).
        let live = TempFile::create(d, "202612.private", 0o600).unwrap();
        // Not ours: other names stay.
        for other in [
            "202611.private",
            ".202611.private.tmp",
            ".x.0123.tmp",
            ".x.0123456789abcdefg.tmp",
            "x.0123456789abcdef.tmp",
        ] {
            std::fs::write(d.join(other), "x").unwrap();
        }
        let removed = remove_stale_temp_files(d).unwrap();
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(live.path.exists(), "a locked temp file is not stale");
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 6, "{left:?}");
        let live_path = live.path.clone();
        drop(live);
        assert!(!live_path.exists());
        assert!(
            remove_stale_temp_files(&d.join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn mode_0640_and_bad_modes() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let path = dir.path().join("g.private");
        let opts = WriteOptions {
            mode: 0o640,
            owner: None,
        };
        write_private_key(&path, &key, opts).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        let bad = WriteOptions {
            mode: 0o644,
            owner: None,
        };
        let err = write_private_key(&dir.path().join("h"), &key, bad).unwrap_err();
        assert!(matches!(err, KeyError::BadMode { mode: 0o644 }));
        assert!(!dir.path().join("h").exists());
    }

    #[test]
    fn chown_to_self_works() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let path = dir.path().join("o.private");
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let opts = WriteOptions {
            mode: 0o600,
            owner: Some((uid, gid)),
        };
        write_private_key(&path, &key, opts).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    }

    #[test]
    fn debug_and_errors_hide_key_material() {
        let key = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("Rsa") && dbg.contains("1024"), "{dbg}");
        let pem = key.to_pem().unwrap();
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for line in &body {
            assert!(!dbg.contains(line));
        }
        // A corrupted key: the error must not echo the text.
        let broken = pem.replace(body[2], &body[2][..10]);
        let err = PrivateKey::from_pem(&broken).unwrap_err().to_string();
        for line in &body {
            assert!(!err.contains(&line[..20]), "{err}");
        }
    }

    #[test]
    fn pkcs8_rsa_and_surrounding_text() {
        let key = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        let Inner::Rsa(k) = &key.inner else {
            unreachable!()
        };
        use rsa::pkcs8::EncodePrivateKey as _;
        let pem = k.to_pkcs8_pem(LineEnding::CRLF).unwrap();
        let text = format!("# a comment\n{}\ntrailing\n", pem.as_str());
        let back = PrivateKey::from_pem(&text).unwrap();
        assert_eq!(back.p_value().unwrap(), key.p_value().unwrap());
    }

    #[test]
    fn rejects_other_pem_types() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = PrivateKey::from_pem(cert).unwrap_err().to_string();
        assert!(err.contains("CERTIFICATE"), "{err}");
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(
            PrivateKey::from_pem(enc)
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
        assert!(PrivateKey::from_pem("").is_err());
    }

    /// The public half read alone is the one the full key gives, for every
    /// format maildns reads; what the full parser refuses is refused too.
    #[test]
    fn the_public_half_alone_is_the_full_keys() {
        use rsa::pkcs8::EncodePrivateKey as _;
        let dir = tempfile::tempdir().unwrap();
        let rsa = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        let Inner::Rsa(k) = &rsa.inner else {
            unreachable!()
        };
        let ed = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let cases = [
            ("pkcs1", rsa.to_pem().unwrap().to_string(), &rsa),
            (
                "pkcs8",
                format!(
                    "# comment\n{}",
                    k.to_pkcs8_pem(LineEnding::LF).unwrap().as_str()
                ),
                &rsa,
            ),
            ("ed25519", ed.to_pem().unwrap().to_string(), &ed),
        ];
        for (name, pem, key) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            let (algorithm, bits, der) = load_public_key(&path).unwrap();
            assert_eq!(algorithm, key.algorithm(), "{name}");
            assert_eq!(bits, key.bits(), "{name}");
            assert_eq!(der, key.public_key_der().unwrap(), "{name}");
        }
        for (name, text) in [
            ("junk", "hello"),
            (
                "cert",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            ),
            (
                "encrypted",
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
            ),
            (
                "cut",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = load_public_key(&path).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn load_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.private");
        std::fs::write(&path, "hello").unwrap();
        let err = load_private_key(&path).unwrap_err().to_string();
        assert!(err.contains("junk.private"), "{err}");
        let missing = load_private_key(&dir.path().join("none")).unwrap_err();
        assert!(missing.to_string().contains("none"));
    }

    /// The p= of a key opendkim-genkey wrote equals the one in its .txt file.
    #[test]
    fn reads_opendkim_genkey_keys() {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("opendkim-genkey")
            .args(["-b", "1024", "-s", "t", "-d", "example.com", "-D"])
            .arg(dir.path())
            .status()
            .expect("opendkim-genkey (package opendkim-tools; scripts/test installs it)");
        assert!(status.success());
        let key = load_private_key(&dir.path().join("t.private")).unwrap();
        assert_eq!(key.bits(), 1024);
        let txt = std::fs::read_to_string(dir.path().join("t.txt")).unwrap();
        let joined: String = txt
            .split('"')
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>()
            .concat();
        let p = joined
            .split(';')
            .map(str::trim)
            .find_map(|t| t.strip_prefix("p="))
            .unwrap();
        assert_eq!(key.p_value().unwrap(), p);
    }

    /// The example (`openssl genrsa -traditional 512`) and its kind: any
    /// RSA key under 1024 bits, PKCS#1 or PKCS#8, is refused on load, naming the
    /// file and the size; 1024 bits loads with a warning, 2048 without.
    #[test]
    fn rsa_keys_under_1024_bits_are_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[&str], u32); 4] = [
            ("512.pkcs1", &["genrsa", "-traditional", "-out"], 512),
            ("512.pkcs8", &["genrsa", "-out"], 512),
            ("768.pkcs1", &["genrsa", "-traditional", "-out"], 768),
            ("1016.pkcs8", &["genrsa", "-out"], 1016),
        ];
        for (name, args, bits) in cases {
            let path = dir.path().join(name);
            let out = std::process::Command::new("openssl")
                .args(args)
                .arg(&path)
                .arg(bits.to_string())
                .output()
                .expect("openssl on PATH");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let err = load_private_key(&path).map(|k| k.bits()).unwrap_err();
            assert!(
                matches!(&err, KeyError::WeakKeyFile { bits: b, path: p } if *b == bits && p == &path),
                "{name}: {err}"
            );
            let err = load_public_key(&path).map(|k| k.1).unwrap_err();
            assert!(
                matches!(&err, KeyError::WeakKeyFile { bits: b, path: p } if *b == bits && p == &path),
                "{name}: {err}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("a {bits}-bit RSA key")), "{msg}");
            assert!(msg.contains(name) && msg.contains("RFC 8301"), "{msg}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(matches!(
                PrivateKey::from_pem(&text),
                Err(KeyError::RsaTooSmall { bits: b }) if b == bits
            ));
        }
        let key = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        let back = PrivateKey::from_pem(&key.to_pem().unwrap()).unwrap();
        assert_eq!(back.bits(), 1024);
        let w = strength_warning(back.algorithm(), back.bits()).expect("1024 warns");
        assert!(w.contains("1024-bit") && w.contains("2048"), "{w}");
        assert_eq!(strength_warning(Algorithm::Rsa, 2048), None);
        assert_eq!(strength_warning(Algorithm::Ed25519, 256), None);
    }

    /// Plain `openssl genrsa` (PKCS#8 in OpenSSL 3) and `-traditional` (PKCS#1),
    /// and an OpenSSL Ed25519 key, checked against `openssl pkey -pubout`.
    #[test]
    fn reads_openssl_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[&str]); 3] = [
            ("pkcs8.pem", &["genrsa", "-out"]),
            ("pkcs1.pem", &["genrsa", "-traditional", "-out"]),
            ("ed.pem", &["genpkey", "-algorithm", "ed25519", "-out"]),
        ];
        for (name, args) in cases {
            let path = dir.path().join(name);
            let mut cmd = std::process::Command::new("openssl");
            cmd.args(args).arg(&path);
            if name != "ed.pem" {
                cmd.arg("1024");
            }
            assert!(cmd.output().expect("openssl on PATH").status.success());
            let key = load_private_key(&path).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success());
            let spki = out.stdout;
            match key.algorithm() {
                Algorithm::Rsa => assert_eq!(key.public_key_der().unwrap(), spki),
                // SPKI for Ed25519 is a 12-byte header + the raw key.
                Algorithm::Ed25519 => {
                    assert_eq!(key.public_key_der().unwrap(), spki[12..].to_vec())
                }
            }
        }
    }

    /// OpenSSL (which OpenDKIM uses) reads the PEM we write, for both algorithms.
    #[test]
    fn openssl_reads_our_pem() {
        let dir = tempfile::tempdir().unwrap();
        for spec in [KeySpec::rsa(1024), KeySpec::ed25519()] {
            let key = PrivateKey::generate(spec).unwrap();
            let path = dir.path().join(format!("{}.pem", spec.algorithm));
            write_private_key(&path, &key, WriteOptions::default()).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.ends_with(&key.public_key_der().unwrap()));
        }
    }

    proptest::proptest! {
        #[test]
        fn from_pem_never_panics(s in ".{0,400}") {
            let _ = PrivateKey::from_pem(&s);
        }

        #[test]
        fn from_pem_armored_garbage_never_panics(
            label in "(RSA PRIVATE KEY|PRIVATE KEY|ENCRYPTED PRIVATE KEY|X)",
            body in "[A-Za-z0-9+/=\n]{0,300}",
        ) {
            let text = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
            let _ = PrivateKey::from_pem(&text);
        }

        #[test]
        fn from_pem_valid_prefix_never_panics(cut in 0usize..900) {
            let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGc0Jq6Ra1p6DcWO0c0Ipq3mQhvz0A6eIx4bqzpk3R8p\n-----END PRIVATE KEY-----\n";
            let end = cut.min(pem.len());
            let _ = PrivateKey::from_pem(&pem[..end]);
        }
    }
}
