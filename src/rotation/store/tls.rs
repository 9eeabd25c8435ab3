//! TLS to PostgreSQL for the state store and the `opendkim-sql` signer:
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in the URL's query, with
//! libpq's meaning
//! (<https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION>,
//! <https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLCERT>).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default, as libpq) | when the server offers it, else plain | not checked |
//! | `require` | always | not checked; with `sslrootcert`, as `verify-ca` (as libpq) |
//! | `verify-ca` | always | signed by a root of `sslrootcert` |
//! | `verify-full` | always | signed by a root of `sslrootcert` and issued for the URL's host |
//!
//! `sslrootcert` is a PEM file of root certificates, or `system` for the
//! operating system's roots. Without it, libpq's default root file
//! `~/.postgresql/root.crt` is used: `verify-ca` and `verify-full` fail
//! without either; `require` checks the chain (as `verify-ca`) when that
//! file exists, as libpq does for backwards compatibility.
//!
//! Client certificates, as libpq: `sslcert` (default
//! `~/.postgresql/postgresql.crt`) is a PEM file whose first certificate is
//! the client's (the rest its chain), `sslkey` (default
//! `~/.postgresql/postgresql.key`) its PEM private key (PKCS#8, PKCS#1 or
//! SEC1, not encrypted: there is no `sslpassword`). The certificate is sent
//! when the server asks for one. A default certificate file that does not
//! exist means none; a named one that does not exist is an error (libpq sends
//! none then, which only shows later as the server's refusal). The key file
//! must not be readable by group or world (mode 0600 or less), or, owned by
//! root, at most 0640, as libpq requires; its contents never appear in an
//! error. `~` is `$HOME`, else the user's home directory in the password
//! database (as libpq).
//!
//! Why this crate: `tokio-postgres` (the driver) knows only `disable`,
//! `prefer` and `require` and no `sslrootcert`, so both are taken out of the
//! URL here and the rest is the driver's; the TLS itself is
//! `tokio-postgres-rustls` on rustls (the TLS library reqwest already
//! brings; no OpenSSL). The only own code is `verify-ca`'s verifier (rustls
//! always checks the name; libpq's `verify-ca` does not) and `require`'s
//! (none), each delegating the signature checks to rustls.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS always; the certificate is not checked (unless `sslrootcert`).
    Require,
    /// TLS always; the certificate chain is checked against `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Option<SslMode> {
        Some(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// The TLS settings of a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgTls {
    /// `sslmode` (default `prefer`).
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file, or `None` with `system_roots`.
    pub root_cert: Option<PathBuf>,
    /// `sslrootcert=system`: the operating system's roots.
    pub system_roots: bool,
    /// `sslcert`: the client certificate (PEM), else libpq's default.
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key (PEM), else libpq's
    /// default.
    pub client_key: Option<PathBuf>,
}

/// Why the TLS settings cannot be used (never holds the URL's password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// An `sslmode` libpq does not know.
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    BadMode(String),
    /// `verify-ca`/`verify-full` without `sslrootcert`, and libpq's default
    /// root file does not exist.
    #[error(
        "sslmode={mode} needs root certificates: the default root certificate file {} does not exist; give sslrootcert=FILE (PEM root certificates) or sslrootcert=system, or create that file", default.display()
    )]
    NoRoot {
        /// The mode.
        mode: &'static str,
        /// The default file looked at (`~/.postgresql/root.crt`).
        default: PathBuf,
    },
    /// The client certificate file cannot be read or holds no certificate.
    #[error("sslcert {}: {message}", path.display())]
    ClientCert {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The client key file cannot be used; the message never holds any of
    /// the file's contents.
    #[error("sslkey {}: {message}", path.display())]
    ClientKey {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The root certificate file cannot be read or holds no certificate.
    #[error("sslrootcert {}: {message}", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `%` in the URL not followed by two hexadecimal digits, or `%00`:
    /// libpq refuses both (a literal `%` is written `%25`). The URL is not
    /// repeated (it may hold a password).
    #[error(
        "the URL has {what} at character {at}: percent-encoding is '%' and two hexadecimal digits (write a literal '%' as %25), and %00 is not allowed (libpq's rules)"
    )]
    BadPercent {
        /// `an invalid percent-encoded token` or `the forbidden value %00`.
        what: &'static str,
        /// Its position (1-based, in characters).
        at: usize,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(String),
}

impl PgTls {
    /// Takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of
    /// `url`'s query (`?a=b&c=d`); returns the URL without them (for the
    /// driver, which decodes the percent-encoding of the user, database
    /// name and other values as libpq does) and the settings (their values
    /// decoded).
    ///
    /// # Errors
    /// [`TlsSetupError::BadMode`] for an unknown `sslmode`;
    /// [`TlsSetupError::BadPercent`] for a malformed `%` escape or `%00`
    /// anywhere in the URL (libpq refuses both; the driver alone would take
    /// them literally).
    pub fn split_url(url: &str) -> Result<(String, PgTls), TlsSetupError> {
        check_percent(url)?;
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), PgTls::default()));
        };
        let mut tls = PgTls::default();
        let mut rest = Vec::new();
        for param in query.split('&') {
            match param.split_once('=') {
                Some(("sslmode", v)) => {
                    tls.mode =
                        SslMode::parse(v).ok_or_else(|| TlsSetupError::BadMode(v.to_string()))?;
                }
                Some(("sslrootcert", "system")) => {
                    tls.system_roots = true;
                    tls.root_cert = None;
                }
                Some(("sslrootcert", v)) => {
                    tls.root_cert = Some(PathBuf::from(percent_decode(v)));
                    tls.system_roots = false;
                }
                Some(("sslcert", v)) => tls.client_cert = Some(PathBuf::from(percent_decode(v))),
                Some(("sslkey", v)) => tls.client_key = Some(PathBuf::from(percent_decode(v))),
                _ => rest.push(param),
            }
        }
        let url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok((url, tls))
    }

    /// The mode the driver is given: it asks the server for TLS (`prefer`)
    /// or insists on it (`require` and the `verify-*` modes).
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    /// The TLS connector for the driver (unused with `disable`).
    ///
    /// # Errors
    /// A `verify-*` mode without a root (neither `sslrootcert` nor
    /// `~/.postgresql/root.crt`); a root file that cannot be read or holds no
    /// certificate; a client certificate or key that cannot be read or used,
    /// or a key file group or world may read.
    pub fn connector(&self) -> Result<MakeRustlsConnect, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // libpq's default root file, when no sslrootcert names one.
        let mut root = self.root_cert.clone();
        if root.is_none() && !self.system_roots && self.mode != SslMode::Disable {
            let default = libpq_file("root.crt");
            match self.mode {
                SslMode::VerifyCa | SslMode::VerifyFull if !default.exists() => {
                    return Err(TlsSetupError::NoRoot {
                        mode: if self.mode == SslMode::VerifyFull {
                            "verify-full"
                        } else {
                            "verify-ca"
                        },
                        default,
                    });
                }
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull if default.exists() => {
                    root = Some(default);
                }
                _ => {}
            }
        }
        let has_root = root.is_some() || self.system_roots;
        let check = match self.mode {
            SslMode::Disable | SslMode::Prefer => Check::None,
            SslMode::Require if !has_root => Check::None,
            SslMode::Require | SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::Full,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::None => Arc::new(NoCheck(provider.clone())),
            Check::Chain | Check::Full => {
                let roots = Arc::new(self.roots(root.as_deref())?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
                if check == Check::Full {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match self.client_identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsSetupError::Rustls(format!("client certificate and key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The client certificate chain and key (`sslcert`/`sslkey`, else
    /// libpq's default files), or `None` when no certificate file is named
    /// and the default one does not exist (or with `disable`).
    fn client_identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsSetupError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let cert_path = match &self.client_cert {
            Some(p) => p.clone(),
            None => {
                let default = libpq_file("postgresql.crt");
                if !default.exists() {
                    return Ok(None);
                }
                default
            }
        };
        let bad_cert = |message: String| TlsSetupError::ClientCert {
            path: cert_path.clone(),
            message,
        };
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| bad_cert(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(e.to_string()))?;
        if chain.is_empty() {
            return Err(bad_cert("holds no PEM certificate".into()));
        }
        let key_path = self
            .client_key
            .clone()
            .unwrap_or_else(|| libpq_file("postgresql.key"));
        let key = load_key(&key_path)?;
        Ok(Some((chain, key)))
    }

    fn roots(&self, root: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsSetupError::Rustls(
                    "sslrootcert=system: the operating system has no root certificates".into(),
                ));
            }
            return Ok(roots);
        }
        let Some(path) = root else {
            return Ok(roots);
        };
        let bad = |message: String| TlsSetupError::Root {
            path: path.to_path_buf(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("holds no usable PEM certificate".into()));
        }
        Ok(roots)
    }
}

/// `~/.postgresql/<name>`: libpq's default TLS files, `~` being `$HOME`, else
/// the user's home directory in the password database (as libpq).
fn libpq_file(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_default();
    home.join(".postgresql").join(name)
}

/// Reads the client key at `path` after libpq's permission check. Errors
/// say what is wrong with the file, never what it holds (a PEM parse error
/// could quote a line of it).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let bad = |message: String| TlsSetupError::ClientKey {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    // libpq (fe-secure-openssl.c): owned by root, u=rw,g=r (0640) or less;
    // otherwise u=rw (0600) or less.
    let mode = meta.mode() & 0o7777;
    let too_open = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(bad(format!(
            "the private key file has group or world access (mode {mode:04o}); it must have permissions u=rw (0600) or less, or u=rw,g=r (0640) or less if owned by root (chmod 0600 {})",
            path.display()
        )));
    }
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::Io(e)) => Err(bad(e.to_string())),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(bad(
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1); an encrypted key is not supported (no sslpassword)".into(),
        )),
        Err(_) => Err(bad("is not a valid PEM private key".into())),
    }
}

/// Refuses what libpq's URI decoder refuses (`conninfo_uri_decode`): a `%`
/// not followed by two hexadecimal digits, and `%00`.
fn check_percent(url: &str) -> Result<(), TlsSetupError> {
    let chars: Vec<char> = url.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c != '%' {
            continue;
        }
        let (hi, lo) = (chars.get(i + 1), chars.get(i + 2));
        match (
            hi.and_then(|h| h.to_digit(16)),
            lo.and_then(|l| l.to_digit(16)),
        ) {
            (Some(0), Some(0)) => {
                return Err(TlsSetupError::BadPercent {
                    what: "the forbidden value %00",
                    at: i + 1,
                });
            }
            (Some(_), Some(_)) => {}
            _ => {
                return Err(TlsSetupError::BadPercent {
                    what: "an invalid percent-encoded token",
                    at: i + 1,
                });
            }
        }
    }
    Ok(())
}

/// `%XX` escapes in a query value (a path with spaces, say); the URL passed
/// [`check_percent`], so every escape is well formed. Bytes that are not
/// UTF-8 are replaced (a path must be UTF-8 in the configuration anyway).
fn percent_decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    Chain,
    Full,
}

/// `prefer`/`require` without a root: the certificate is not checked (as
/// libpq), the handshake signatures are.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: rustls's full check, except that the certificate need not
/// name the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, tls) = PgTls::split_url(
            "postgres://m@db:5432/state?sslmode=verify-full&application_name=x&sslrootcert=/etc/ssl/my%20ca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://m@db:5432/state?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ssl/my ca.pem")));
        let (url, tls) = PgTls::split_url("postgres://m@db/state").unwrap();
        assert_eq!(url, "postgres://m@db/state");
        assert_eq!(tls.mode, SslMode::Prefer, "libpq's default");
        assert!(PgTls::split_url("postgres://m@db/s?sslmode=allow-ish").is_err());
        for (bad, what, at) in [
            ("postgres://m@db/mail%ZZdns", "invalid", 21),
            ("postgres://m@db/mail%2", "invalid", 21),
            ("postgres://m@db/mail%", "invalid", 21),
            ("postgres://m@db/mail%00dns", "%00", 21),
            ("postgres://m%4@db/maildns", "invalid", 13),
        ] {
            let e = PgTls::split_url(bad).unwrap_err().to_string();
            assert!(
                e.contains(what) && e.contains(&format!("character {at}:")),
                "{bad}: {e}"
            );
            assert!(!e.contains("postgres://"), "the URL is not repeated: {e}");
        }
        let (url, _) =
            PgTls::split_url("postgres://dns%20ops@db/mail%2Ddns?application_name=a%25b").unwrap();
        assert_eq!(
            url, "postgres://dns%20ops@db/mail%2Ddns?application_name=a%25b",
            "left for the driver to decode"
        );
        let (url, tls) = PgTls::split_url(
            "postgres://m@db/s?sslcert=/etc/maildns/client%201.crt&sslmode=require&sslkey=/etc/maildns/client.key",
        )
        .unwrap();
        assert_eq!(url, "postgres://m@db/s");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(
            tls.client_cert,
            Some(PathBuf::from("/etc/maildns/client 1.crt"))
        );
        assert_eq!(
            tls.client_key,
            Some(PathBuf::from("/etc/maildns/client.key"))
        );
    }

    #[test]
    fn a_client_key_group_or_world_may_read_is_refused_without_showing_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.key");
        // Not a real key: what matters is that no byte of it is echoed.
        let body = "-----BEGIN PRIVATE KEY-----\nU2VjcmV0S2V5Qnl0ZXNOZXZlclNob3du\n-----END PRIVATE KEY-----\n";
        std::fs::write(&path, body).unwrap();
        let owned_by_root = nix::unistd::geteuid().is_root();
        for (mode, refused) in [
            (0o644, true),
            (0o604, true),
            (0o640, !owned_by_root),
            (0o600, false),
            (0o400, false),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load_key(&path).err().map(|e| e.to_string());
            match (&err, refused) {
                (Some(e), true) => {
                    assert!(e.contains("group or world access"), "{mode:o}: {e}");
                    assert!(e.contains(&path.display().to_string()), "{e}");
                }
                // Private enough: read (rustls judges the key itself later).
                (Some(e), false) => assert!(!e.contains("group or world"), "{mode:o}: {e}"),
                (None, false) => {}
                (None, true) => panic!("{mode:o}: a key others may read was accepted"),
            }
            let e = err.unwrap_or_default();
            assert!(!e.contains("U2VjcmV0"), "key contents in the error: {e}");
        }
        assert!(
            load_key(&dir.path().join("absent.key"))
                .unwrap_err()
                .to_string()
                .starts_with(&format!(
                    "sslkey {}",
                    dir.path().join("absent.key").display()
                ))
        );
    }
}
