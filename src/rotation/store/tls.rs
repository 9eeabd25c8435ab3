//! TLS to PostgreSQL for the state store and the `opendkim-sql` signer:
//! `sslmode` and `sslrootcert` in the URL's query, with libpq's meaning
//! (<https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION>).
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
//! operating system's roots; `verify-ca` and `verify-full` need it.
//!
//! Why this crate: `tokio-postgres` (the driver) knows only `disable`,
//! `prefer` and `require` and no `sslrootcert`, so both are taken out of the
//! URL here and the rest is the driver's; the TLS itself is
//! `tokio-postgres-rustls` on rustls (the TLS library reqwest already
//! brings; no OpenSSL). The only own code is `verify-ca`'s verifier (rustls
//! always checks the name; libpq's `verify-ca` does not) and `require`'s
//! (none), each delegating the signature checks to rustls.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
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
}

/// Why the TLS settings cannot be used (never holds the URL's password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// An `sslmode` libpq does not know.
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    BadMode(String),
    /// `verify-ca`/`verify-full` without `sslrootcert`.
    #[error("sslmode={0} needs sslrootcert=FILE (PEM root certificates) or sslrootcert=system")]
    NoRoot(&'static str),
    /// The root certificate file cannot be read or holds no certificate.
    #[error("sslrootcert {}: {message}", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(String),
}

impl PgTls {
    /// Takes `sslmode` and `sslrootcert` out of `url`'s query (`?a=b&c=d`);
    /// returns the URL without them (for the driver) and the settings.
    ///
    /// # Errors
    /// [`TlsSetupError::BadMode`] for an unknown `sslmode`.
    pub fn split_url(url: &str) -> Result<(String, PgTls), TlsSetupError> {
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
    /// A `verify-*` mode without a root; a root file that cannot be read or
    /// holds no certificate.
    pub fn connector(&self) -> Result<MakeRustlsConnect, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let has_root = self.root_cert.is_some() || self.system_roots;
        let check = match self.mode {
            SslMode::Disable | SslMode::Prefer => Check::None,
            SslMode::Require if !has_root => Check::None,
            SslMode::Require | SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::Full,
        };
        if check != Check::None && !has_root {
            return Err(TlsSetupError::NoRoot(match self.mode {
                SslMode::VerifyFull => "verify-full",
                _ => "verify-ca",
            }));
        }
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::None => Arc::new(NoCheck(provider.clone())),
            Check::Chain | Check::Full => {
                let roots = Arc::new(self.roots()?);
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
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, TlsSetupError> {
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
        let Some(path) = &self.root_cert else {
            return Ok(roots);
        };
        let bad = |message: String| TlsSetupError::Root {
            path: path.clone(),
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

/// `%XX` escapes in a query value (a path with spaces, say).
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
        let (_, tls) = PgTls::split_url("postgres://m@db/s?sslmode=verify-ca").unwrap();
        assert!(matches!(tls.connector(), Err(TlsSetupError::NoRoot(_))));
    }
}
