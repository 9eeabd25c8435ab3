//! AWS credentials as the adapter receives them (typed, already found by the
//! caller) and the Signature Version 4 signing of each request with them.
//!
//! SigV4 is done by AWS's own `aws-sigv4` crate rather than by hand: the
//! canonical request has enough corners (header folding, URI encoding, the
//! empty-body hash) that a home-made signer would be a standing risk.
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html>

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use super::Config;
use crate::Secret;

/// AWS credentials: an access key (id and secret) and, for temporary
/// credentials, a session token. Where they come from (environment, shared
/// credentials file) is decided by the caller; the providers crate reads
/// neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token, for temporary credentials.
    pub session_token: Option<Secret>,
}

/// Why a request could not be signed (logged; the host then refuses the
/// unsigned request with its own authentication error).
pub(super) type SigningError = Box<dyn std::error::Error + Send + Sync>;

/// Signs requests for Route 53 (service `route53`, region `us-east-1`, the
/// only region of its global endpoint).
#[derive(Debug)]
pub(super) struct SigV4 {
    credentials: aws_credential_types::Credentials,
}

impl SigV4 {
    /// A signer for the credentials in `cfg`.
    pub(super) fn new(cfg: &Config) -> SigV4 {
        SigV4 {
            credentials: aws_credential_types::Credentials::new(
                cfg.access_key_id.clone(),
                cfg.secret_access_key.expose().to_string(),
                cfg.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "maildns",
            ),
        }
    }

    /// The headers (`authorization`, `x-amz-date`, `x-amz-security-token`)
    /// that sign this request now. The signing time is the wall clock: AWS
    /// refuses signatures more than five minutes off its own time, so no
    /// other clock may be used here.
    pub(super) fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SigningError> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("route53")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}
