//! The face owns the environment: credentials come from it (snapshotted once)
//! and reach the library typed, through [`Credentials`].

use crate::accounts::Credentials;
use crate::config::Account;

/// The environment as credentials source (snapshotted once at the face).
pub(super) struct EnvCredentials {
    env: std::collections::HashMap<String, String>,
}

impl EnvCredentials {
    pub(super) fn from_process() -> Self {
        EnvCredentials {
            env: std::env::vars().collect(),
        }
    }
}

impl Credentials for EnvCredentials {
    fn credential(
        &self,
        account: &Account,
    ) -> Result<maildns_providers::Secret, crate::secrets::SecretError> {
        let spec = crate::secrets::SecretSpec {
            env_var: Some(account.credential.env.clone()),
            token_file: account.credential.token_file.clone(),
        };
        Ok(crate::secrets::lookup(&account.name, &spec, &self.env)?.secret)
    }

    fn aws(
        &self,
        _account: &Account,
    ) -> Result<maildns_providers::hosts::route53::AwsCredentials, crate::secrets::SecretError>
    {
        let home = self.env.get("HOME").map(std::path::PathBuf::from);
        crate::secrets::aws_credentials(&self.env, home.as_deref())
    }
}
