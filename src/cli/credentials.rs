//! The face owns the environment: credentials come from it (snapshotted once)
//! and reach the library typed, through [`Credentials`].

use anyhow::Context;

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
    fn credential(&self, account: &Account) -> anyhow::Result<maildns_providers::Secret> {
        let spec = crate::secrets::SecretSpec {
            env_var: Some(account.credential.env.clone()),
            token_file: account.credential.token_file.clone(),
        };
        Ok(crate::secrets::lookup(&account.name, &spec, &self.env)?.secret)
    }

    fn aws(
        &self,
        account: &Account,
    ) -> anyhow::Result<maildns_providers::hosts::route53::AwsCredentials> {
        let home = self.env.get("HOME").map(std::path::PathBuf::from);
        maildns_providers::hosts::route53::AwsCredentials::from_env_and_files(
            &self.env,
            home.as_deref(),
        )
        .with_context(|| format!("account '{}'", account.name))
    }
}
