//! The configuration file's shapes as written (TOML, with spans for
//! file:line:key messages). Only [`super::validate`] reads them; the rest of
//! maildns sees the validated types of [`crate::config`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) state_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) accounts: BTreeMap<String, Spanned<RawAccount>>,
    #[serde(default)]
    pub(super) domains: BTreeMap<Spanned<String>, Spanned<RawDomain>>,
    pub(super) signer: Option<Spanned<RawSigner>>,
    pub(super) publish: Option<RawPublish>,
    pub(super) propagation: Option<RawPropagation>,
    pub(super) state: Option<Spanned<RawState>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) url: Option<Spanned<String>>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) replica_id: Option<Spanned<String>>,
    pub(super) lease: Option<Spanned<String>>,
    // A password in the config is refused with a pointer to the right place.
    pub(super) password: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPublish {
    pub(super) max_delete_share: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPropagation {
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) daemon_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) resolvers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) check_resolvers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) require_resolvers: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) provider: Spanned<String>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) bump_serial: Option<bool>,
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) server_id: Option<String>,
    pub(super) server: Option<Spanned<String>>,
    pub(super) key_name: Option<Spanned<String>>,
    pub(super) algorithm: Option<Spanned<String>>,
    pub(super) project: Option<String>,
    pub(super) wait_insync: Option<bool>,
    pub(super) command: Option<Spanned<Vec<String>>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) atomic: Option<bool>,
    pub(super) compare_and_swap: Option<bool>,
    pub(super) value_form: Option<Spanned<String>>,
    pub(super) notify: Option<Spanned<Vec<String>>>,
    pub(super) tenant_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) subscription_id: Option<String>,
    pub(super) resource_group: Option<String>,
    pub(super) token_url: Option<String>,
    pub(super) application_key: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) customer_number: Option<String>,
    pub(super) account_id: Option<toml::Value>,
    pub(super) api_user: Option<String>,
    pub(super) username: Option<String>,
    pub(super) client_ip: Option<String>,
    pub(super) replace_whole_host_list: Option<bool>,
    pub(super) token_env: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
    // A secret in the config is refused with a pointer to the right place.
    pub(super) token: Option<Spanned<toml::Value>>,
    pub(super) secret: Option<Spanned<toml::Value>>,
    pub(super) api_key: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomain {
    pub(super) account: Spanned<String>,
    pub(super) zone: Option<Spanned<String>>,
    pub(super) ttl: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) nameservers: Vec<Spanned<String>>,
    pub(super) spf: Option<Spanned<String>>,
    pub(super) dmarc: Option<Spanned<String>>,
    pub(super) adsp: Option<Spanned<String>>,
    pub(super) dkim: Option<Spanned<RawDkim>>,
    pub(super) lint: Option<Spanned<RawLint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLint {
    #[serde(default)]
    pub(super) allow: Vec<Spanned<String>>,
    pub(super) reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    pub(super) algorithms: Option<Spanned<Vec<String>>>,
    pub(super) bits: Option<Spanned<i64>>,
    pub(super) selector_format: Option<Spanned<String>>,
    pub(super) rotation_interval: Option<Spanned<String>>,
    pub(super) overlap: Option<Spanned<String>>,
    pub(super) min_overlap: Option<Spanned<String>>,
    pub(super) retire: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) publish_retired_private_keys: bool,
    #[serde(default)]
    pub(super) testing: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigner {
    pub(super) kind: Option<Spanned<String>>,
    pub(super) config: Option<Spanned<String>>,
    pub(super) key_dir: Option<Spanned<String>>,
    pub(super) key_table: Option<Spanned<String>>,
    pub(super) signing_table: Option<Spanned<String>>,
    pub(super) user: Option<String>,
    pub(super) reload_command: Option<Spanned<Vec<String>>>,
    pub(super) confirm: Option<Spanned<String>>,
    pub(super) probe_interval: Option<Spanned<String>>,
    pub(super) probe_timeout: Option<Spanned<String>>,
    // kind = "opendkim-sql" (the PostgreSQL database) or "rspamd" (Redis)
    pub(super) url: Option<Spanned<String>>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    // A password in the config is refused with a pointer to the right place.
    pub(super) password: Option<Spanned<toml::Value>>,
    pub(super) controllers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) key_hash: Option<Spanned<String>>,
    pub(super) selector_hash: Option<Spanned<String>>,
    pub(super) controller_password_env: Option<Spanned<String>>,
    pub(super) controller_password_file: Option<Spanned<String>>,
    pub(super) controller_password: Option<Spanned<toml::Value>>,
    pub(super) sockets: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) columns: Option<Spanned<RawSqlColumns>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSqlColumns {
    pub(super) key_id: Option<Spanned<String>>,
    pub(super) domain: Option<Spanned<String>>,
    pub(super) selector: Option<Spanned<String>>,
    pub(super) private_key: Option<Spanned<String>>,
    pub(super) pattern: Option<Spanned<String>>,
    pub(super) signing_key: Option<Spanned<String>>,
}
