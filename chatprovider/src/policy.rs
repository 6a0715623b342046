//! The credential policy: which key, if any, a user's chat
//! runs with, given the administrator's three toggles per provider.

use std::collections::BTreeMap;

use codersdk::{ChatModelProviderUnavailableReason, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::Provider;
use crate::error::{Error, ErrorKind};
use crate::keys::{key_hint, usable_key, ProviderApiKeys, ProviderCredentials};

/// A provider as configured by an administrator (a stored provider row, or an environment
/// preset presented the same way).
///
/// Missing JSON fields take the defaults of a newly created provider: enabled, central key
/// enabled, no user keys, no fallback. The key serializes in clear because this type
/// carries it between the store and the engine; `Debug` prints `[REDACTED]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfiguredProvider {
    /// The provider config id; user keys refer to it.
    pub id: Uuid,
    /// Provider id (`openai`, …); trimmed and case-insensitive. Unknown ids are ignored.
    pub provider: String,
    /// The stored central key; blank when none.
    pub api_key: SecretString,
    /// Custom endpoint; blank for the provider's default.
    pub base_url: String,
    /// Whether the provider may be used at all.
    pub enabled: bool,
    /// The deployment's key is used for users (toggle **C**).
    pub central_api_key_enabled: bool,
    /// Users may bring their own key (toggle **U**).
    pub allow_user_api_key: bool,
    /// The central key is used when a user has none (toggle **F**).
    pub allow_central_api_key_fallback: bool,
}

impl Default for ConfiguredProvider {
    fn default() -> Self {
        ConfiguredProvider {
            id: Uuid::nil(),
            provider: String::new(),
            api_key: SecretString::default(),
            base_url: String::new(),
            enabled: true,
            central_api_key_enabled: true,
            allow_user_api_key: false,
            allow_central_api_key_fallback: false,
        }
    }
}

/// A user's own key for one configured provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserProviderKey {
    /// The [`ConfiguredProvider::id`] the key belongs to. Keys with the nil id are ignored.
    pub provider_config_id: Uuid,
    /// The user's key. Blank keys are ignored.
    pub api_key: SecretString,
}

/// Why a provider cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnavailableReason {
    /// No key is configured for the user to run with (`missing_api_key`).
    MissingApiKey,
    /// The user must add their own key first (`user_api_key_required`).
    UserApiKeyRequired,
    /// An administrator disabled the provider (`provider_disabled`). Model catalogues omit
    /// disabled providers, so this reason is not sent in `GET /chats/models`.
    ProviderDisabled,
    /// This build has no streaming client for the provider (`provider_not_supported`, see
    /// [`crate::streams`]): every turn on it would fail, so the catalogue does not offer
    /// it. Not a key-policy outcome: [`ResolvedProviderKeys`] never reports it;
    /// [`unavailable_reason`] adds it.
    NotSupported,
}

impl UnavailableReason {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            UnavailableReason::MissingApiKey => "missing_api_key",
            UnavailableReason::UserApiKeyRequired => "user_api_key_required",
            UnavailableReason::ProviderDisabled => "provider_disabled",
            UnavailableReason::NotSupported => "provider_not_supported",
        }
    }

    /// The `codersdk` value for a model catalogue entry.
    pub fn to_wire(self) -> ChatModelProviderUnavailableReason {
        match self {
            UnavailableReason::MissingApiKey => ChatModelProviderUnavailableReason::MissingApiKey,
            UnavailableReason::UserApiKeyRequired => {
                ChatModelProviderUnavailableReason::UserApiKeyRequired
            }
            UnavailableReason::ProviderDisabled | UnavailableReason::NotSupported => {
                ChatModelProviderUnavailableReason::Unknown(self.as_str().to_owned())
            }
        }
    }
}

/// Where the credential a provider runs with comes from, for audit logs. Carries only a
/// [`key_hint`], never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CredentialSource {
    /// The deployment's key (stored on the provider, or the deployment fallback).
    Central {
        /// Masked key.
        key_hint: String,
    },
    /// The user's own key.
    User {
        /// Masked key.
        key_hint: String,
    },
    /// No key: the server's ambient credentials (Bedrock).
    Ambient,
}

impl CredentialSource {
    /// `central`, `user` or `ambient`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CredentialSource::Central { .. } => "central",
            CredentialSource::User { .. } => "user",
            CredentialSource::Ambient => "ambient",
        }
    }

    /// The masked key; `None` for ambient credentials.
    pub fn key_hint(&self) -> Option<&str> {
        match self {
            CredentialSource::Central { key_hint } | CredentialSource::User { key_hint } => {
                Some(key_hint)
            }
            CredentialSource::Ambient => None,
        }
    }
}

/// The outcome of the policy for one configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderStatus {
    /// The user can use the provider with this credential.
    Available(CredentialSource),
    /// The user cannot use the provider.
    Unavailable(UnavailableReason),
}

impl ProviderStatus {
    /// Whether the provider can be used.
    pub fn is_available(&self) -> bool {
        matches!(self, ProviderStatus::Available(_))
    }
}

impl Serialize for ProviderStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            available: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            unavailable_reason: Option<UnavailableReason>,
            #[serde(skip_serializing_if = "Option::is_none")]
            credential: Option<&'a CredentialSource>,
        }
        let wire = match self {
            ProviderStatus::Available(c) => Wire {
                available: true,
                unavailable_reason: None,
                credential: Some(c),
            },
            ProviderStatus::Unavailable(r) => Wire {
                available: false,
                unavailable_reason: Some(*r),
                credential: None,
            },
        };
        wire.serialize(s)
    }
}

/// The keys one user's chats run with, and each configured provider's availability.
///
/// Made by [`resolve_user_provider_keys`]. Key lookups ([`api_key`](Self::api_key),
/// [`client_credentials`](Self::client_credentials)) see the chosen key of every configured
/// provider plus the deployment keys of providers that have no configuration row.
/// Availability ([`is_available`](Self::is_available)) covers configured providers only:
/// any other name is unavailable with `missing_api_key`, so pass
/// environment presets as [`ConfiguredProvider`] rows to make them available.
///
/// `Debug` shows keys as `[REDACTED]`. It serializes without keys and base URLs, as
/// `{"providers":{"openai":{"available":true,"credential":{"source":"user","key_hint":"…"}},
/// "anthropic":{"available":false,"unavailable_reason":"user_api_key_required"}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResolvedProviderKeys {
    #[serde(skip)]
    keys: ProviderApiKeys,
    providers: BTreeMap<Provider, ProviderStatus>,
}

impl ResolvedProviderKeys {
    /// The key to use for `provider`, trimmed and non-empty.
    pub fn api_key(&self, provider: &str) -> Option<&str> {
        self.keys.api_key(provider)
    }

    /// Whether `provider` has a key entry, even an empty one (Bedrock on ambient
    /// credentials).
    pub fn has_provider(&self, provider: &str) -> bool {
        self.keys.has_provider(provider)
    }

    /// The configured base URL of `provider`.
    pub fn base_url(&self, provider: &str) -> Option<&str> {
        self.keys.base_url(provider)
    }

    /// Whether `provider` is configured, enabled and usable by this user (the key policy
    /// only; whether this build can stream it is [`crate::streams`], which the catalogue
    /// adds in [`crate::list_configured_models`]).
    pub fn is_available(&self, provider: &str) -> bool {
        self.status(provider)
            .is_some_and(ProviderStatus::is_available)
    }

    /// Why `provider` is not available, as its wire string (`missing_api_key`,
    /// `user_api_key_required`, `provider_disabled`); `None` exactly when it is
    /// available.
    pub fn unavailable_reason(&self, provider: &str) -> Option<&'static str> {
        self.reason(provider).map(UnavailableReason::as_str)
    }

    /// [`unavailable_reason`](Self::unavailable_reason), typed.
    pub fn reason(&self, provider: &str) -> Option<UnavailableReason> {
        match self.status(provider) {
            Some(ProviderStatus::Available(_)) => None,
            Some(ProviderStatus::Unavailable(r)) => Some(*r),
            None => Some(UnavailableReason::MissingApiKey),
        }
    }

    /// Where the credential of an available provider comes from.
    pub fn credential(&self, provider: &str) -> Option<CredentialSource> {
        match self.status(provider)? {
            ProviderStatus::Available(c) => Some(c.clone()),
            ProviderStatus::Unavailable(_) => None,
        }
    }

    /// The policy outcome of a configured provider; `None` for other names.
    pub fn status(&self, provider: &str) -> Option<&ProviderStatus> {
        self.providers.get(&Provider::parse(provider)?)
    }

    /// Every configured provider's outcome, in catalog order.
    pub fn statuses(&self) -> impl Iterator<Item = (Provider, &ProviderStatus)> + '_ {
        self.providers.iter().map(|(p, s)| (*p, s))
    }

    /// The resolved keys and base URLs.
    pub fn keys(&self) -> &ProviderApiKeys {
        &self.keys
    }

    /// What a provider client needs to connect, as
    /// [`ProviderApiKeys::client_credentials`]; a disabled provider fails with kind
    /// `provider_disabled` rather than a missing key.
    pub fn client_credentials(&self, provider: &str) -> Result<ProviderCredentials<'_>, Error> {
        let p = Provider::parse(provider).ok_or_else(|| Error::unsupported_provider(provider))?;
        if let Some(ProviderStatus::Unavailable(UnavailableReason::ProviderDisabled)) =
            self.providers.get(&p)
        {
            return Err(Error::new(
                ErrorKind::ProviderDisabled,
                format!("provider \"{}\" is disabled", p.as_str()),
            )
            .with_provider(p));
        }
        self.keys.client_credentials(p.as_str())
    }
}

/// One outcome of the key-policy decision: which key a user's request uses, or why none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision<'a> {
    User(&'a str),
    Central(&'a str),
    Ambient,
    Unavailable(UnavailableReason),
}

/// The key-policy decision, first match wins: a usable personal key when personal keys are
/// allowed; the central key when enabled and (for users who may bring one) fallback allows
/// it; ambient credentials; otherwise the reason nothing is available.
fn decide<'a>(
    provider: Provider,
    row: &ConfiguredProvider,
    central_key: Option<&'a str>,
    user_key: Option<&'a str>,
) -> Decision<'a> {
    let c = row.central_api_key_enabled;
    let u = row.allow_user_api_key;
    let f = row.allow_central_api_key_fallback;
    if let (true, Some(key)) = (u, user_key) {
        return Decision::User(key);
    }
    if let Some(key) = central_key {
        return if !u || f {
            Decision::Central(key)
        } else {
            Decision::Unavailable(UnavailableReason::UserApiKeyRequired)
        };
    }
    if provider.allows_ambient_credentials() && c {
        return if !u || f {
            Decision::Ambient
        } else {
            Decision::Unavailable(UnavailableReason::UserApiKeyRequired)
        };
    }
    // Rule 4 (U, F and C without a central key) and rule 5 (U) give the same answer.
    if u {
        return Decision::Unavailable(UnavailableReason::UserApiKeyRequired);
    }
    Decision::Unavailable(UnavailableReason::MissingApiKey)
}

/// Why `provider` cannot be used by this user with this build: [`crate::streams`] first
/// (a provider without a streaming client is [`UnavailableReason::NotSupported`] whatever its
/// keys, unless disabled), then the key policy ([`ResolvedProviderKeys::reason`]). What the
/// model catalogue and the turn's model resolution report.
pub fn unavailable_reason(
    resolved: &ResolvedProviderKeys,
    provider: &str,
) -> Option<UnavailableReason> {
    let reason = resolved.reason(provider);
    match Provider::parse(provider) {
        Some(p)
            if !crate::factory::streams(p)
                && reason != Some(UnavailableReason::ProviderDisabled) =>
        {
            Some(UnavailableReason::NotSupported)
        }
        _ => reason,
    }
}

/// Applies the administrators' key policy for one user.
///
/// - `fallback`: the deployment's own keys (environment presets); a configured provider
///   with the central key enabled and no stored key uses its fallback key.
/// - `providers`: the configured providers. Provider names are trimmed and
///   case-insensitive; unknown ones are ignored. When a provider has several rows the
///   first enabled one is used (else the first row).
/// - `user_keys`: the user's own keys, matched to rows by
///   [`UserProviderKey::provider_config_id`]; nil ids and blank keys are ignored, and the
///   first usable key of a row wins.
///
/// For each configured, enabled provider the first matching rule decides (**C** central
/// key enabled, **U** user keys allowed, **F** central fallback allowed):
///
/// 1. **U** and the user has a key → the user's key.
/// 2. a central key exists (only with **C**) and (not **U** or **F**) → the central key;
///    with **U** and not **F** → `user_api_key_required`.
/// 3. the provider allows ambient credentials (Bedrock) and **C** and (not **U** or **F**)
///    → available with no key (the entry is present but empty); with **U** and not **F**
///    → `user_api_key_required`.
/// 4. **U** → `user_api_key_required`.
/// 5. otherwise → `missing_api_key`.
///
/// Disabled providers are unavailable (`provider_disabled`) and their keys and base URLs
/// are removed, the deployment's included. Keys that could not be sent in a header
/// (control characters, longer than [`MAX_API_KEY_BYTES`](crate::MAX_API_KEY_BYTES)) count
/// as absent. A configured provider's non-blank base URL overrides the deployment's.
pub fn resolve_user_provider_keys(
    fallback: &ProviderApiKeys,
    providers: &[ConfiguredProvider],
    user_keys: &[UserProviderKey],
) -> ResolvedProviderKeys {
    let mut rows: BTreeMap<Provider, &ConfiguredProvider> = BTreeMap::new();
    for row in providers {
        let Some(p) = Provider::parse(&row.provider) else {
            continue;
        };
        let slot = rows.entry(p).or_insert(row);
        if !slot.enabled && row.enabled {
            *slot = row;
        }
    }

    let mut keys = fallback.without_empty_keys();
    let mut statuses = BTreeMap::new();
    for (p, row) in rows {
        if !row.enabled {
            keys.remove_everything(p);
            statuses.insert(
                p,
                ProviderStatus::Unavailable(UnavailableReason::ProviderDisabled),
            );
            continue;
        }
        keys.set_base_url_unchecked(p, &row.base_url);
        let user_key = if row.id.is_nil() {
            None
        } else {
            user_keys
                .iter()
                .filter(|k| !k.provider_config_id.is_nil() && k.provider_config_id == row.id)
                .find_map(|k| usable_key(k.api_key.expose()))
        };
        let central_key = if row.central_api_key_enabled {
            usable_key(row.api_key.expose()).or_else(|| fallback.api_key_of(p))
        } else {
            None
        };
        keys.remove_api_key(p);
        let status = match decide(p, row, central_key, user_key) {
            Decision::User(key) => {
                keys.insert_clean_key(p, key);
                ProviderStatus::Available(CredentialSource::User {
                    key_hint: key_hint(key),
                })
            }
            Decision::Central(key) => {
                keys.insert_clean_key(p, key);
                ProviderStatus::Available(CredentialSource::Central {
                    key_hint: key_hint(key),
                })
            }
            Decision::Ambient => {
                keys.set_ambient(p);
                ProviderStatus::Available(CredentialSource::Ambient)
            }
            Decision::Unavailable(reason) => ProviderStatus::Unavailable(reason),
        };
        statuses.insert(p, status);
    }
    ResolvedProviderKeys {
        keys,
        providers: statuses,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const CENTRAL: &str = "sk-central";
    const USER: &str = "sk-user";

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn row(n: u128, provider: &str, c: bool, key: &str, u: bool, f: bool) -> ConfiguredProvider {
        ConfiguredProvider {
            id: id(n),
            provider: provider.into(),
            api_key: key.into(),
            central_api_key_enabled: c,
            allow_user_api_key: u,
            allow_central_api_key_fallback: f,
            ..Default::default()
        }
    }

    fn user(n: u128, key: &str) -> UserProviderKey {
        UserProviderKey {
            provider_config_id: id(n),
            api_key: key.into(),
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Want {
        Central,
        User,
        Ambient,
        Required,
        Missing,
    }

    /// Where the central key comes from in a truth-table run.
    #[derive(Debug, Clone, Copy)]
    enum KeyFrom {
        Stored,
        Deployment,
    }

    /// `bits` = [C, K, U, F, H] of the truth table.
    fn check(provider: &str, bits: [bool; 5], from: KeyFrom, want: Want) {
        let [c, k, u, f, h] = bits;
        let stored = if k && matches!(from, KeyFrom::Stored) {
            CENTRAL
        } else {
            ""
        };
        let mut fallback = ProviderApiKeys::new();
        if k && matches!(from, KeyFrom::Deployment) {
            fallback
                .set_api_key(Provider::parse(provider).unwrap(), CENTRAL)
                .unwrap();
        }
        let rows = [row(1, provider, c, stored, u, f)];
        let users = if h { vec![user(1, USER)] } else { vec![] };
        let r = resolve_user_provider_keys(&fallback, &rows, &users);
        let ctx = format!("{provider} C={c} K={k} U={u} F={f} H={h} {from:?}");
        let (key, available, reason, present) = match want {
            Want::Central => (Some(CENTRAL), true, None, true),
            Want::User => (Some(USER), true, None, true),
            Want::Ambient => (None, true, None, true),
            Want::Required => (None, false, Some("user_api_key_required"), false),
            Want::Missing => (None, false, Some("missing_api_key"), false),
        };
        assert_eq!(r.api_key(provider), key, "{ctx}");
        assert_eq!(r.is_available(provider), available, "{ctx}");
        assert_eq!(r.unavailable_reason(provider), reason, "{ctx}");
        assert_eq!(r.has_provider(provider), present, "{ctx}");
        let source = r.credential(provider).map(|c| c.as_str());
        let want_source = match want {
            Want::Central => Some("central"),
            Want::User => Some("user"),
            Want::Ambient => Some("ambient"),
            Want::Required | Want::Missing => None,
        };
        assert_eq!(source, want_source, "{ctx}");
        assert_eq!(r.keys().is_usable(provider), available, "{ctx}");
    }

    /// The full truth table of the key policy. `None` = "any": both values are run.
    #[test]
    fn truth_table_non_bedrock_and_bedrock() {
        use Want::*;
        type Row = (bool, bool, bool, Option<bool>, Option<bool>, Want, Want);
        let table: [Row; 13] = [
            // C,    K,    U,    F,           H,           non-Bedrock, Bedrock
            (true, true, false, None, None, Central, Central),
            (true, true, true, Some(false), Some(true), User, User),
            (
                true,
                true,
                true,
                Some(false),
                Some(false),
                Required,
                Required,
            ),
            (true, true, true, Some(true), Some(true), User, User),
            (true, true, true, Some(true), Some(false), Central, Central),
            (true, false, false, None, None, Missing, Ambient),
            (true, false, true, Some(true), Some(true), User, User),
            (
                true,
                false,
                true,
                Some(true),
                Some(false),
                Required,
                Ambient,
            ),
            (true, false, true, Some(false), Some(true), User, User),
            (
                true,
                false,
                true,
                Some(false),
                Some(false),
                Required,
                Required,
            ),
            (false, true, true, None, Some(true), User, User),
            (false, true, true, None, Some(false), Required, Required),
            (false, true, false, None, None, Missing, Missing),
        ];
        let both = |v: Option<bool>| match v {
            Some(b) => vec![b],
            None => vec![false, true],
        };
        let mut runs = 0;
        for (c, k, u, f, h, plain, bedrock) in table {
            // "C=0, K=any": a key that exists is ignored, so run without one as well.
            let ks = if c { vec![k] } else { vec![false, true] };
            for k in ks {
                for f in both(f) {
                    for h in both(h) {
                        for from in [KeyFrom::Stored, KeyFrom::Deployment] {
                            for p in ["openai", "anthropic", "google", "azure", "vercel"] {
                                check(p, [c, k, u, f, h], from, plain);
                            }
                            check("bedrock", [c, k, u, f, h], from, bedrock);
                            runs += 1;
                        }
                    }
                }
            }
        }
        assert!(runs >= 40, "{runs}");
    }

    #[test]
    fn named_vectors() {
        // (name, rows, user keys, [(provider, available, reason, api key, present)])
        type Expect = (
            &'static str,
            bool,
            Option<&'static str>,
            Option<&'static str>,
            Option<bool>,
        );
        type Case = (
            &'static str,
            Vec<ConfiguredProvider>,
            Vec<UserProviderKey>,
            Vec<Expect>,
        );
        let cases: Vec<Case> = vec![
            (
                "CentralOnlyKeyPresent",
                vec![row(1, "openai", true, "sk-central", false, false)],
                vec![],
                vec![("openai", true, None, Some("sk-central"), None)],
            ),
            (
                "CentralOnlyKeyMissing",
                vec![row(1, "openai", true, "", false, false)],
                vec![],
                vec![("openai", false, Some("missing_api_key"), None, Some(false))],
            ),
            (
                "BedrockCentralOnlyAmbient",
                vec![row(3, "bedrock", true, "", false, false)],
                vec![],
                vec![("bedrock", true, None, None, Some(true))],
            ),
            (
                "BedrockFallbackAmbient",
                vec![row(3, "bedrock", true, "", true, true)],
                vec![],
                vec![("bedrock", true, None, None, Some(true))],
            ),
            (
                "BedrockUserKeyRequiredWithoutFallback",
                vec![row(3, "bedrock", true, "", true, false)],
                vec![],
                vec![(
                    "bedrock",
                    false,
                    Some("user_api_key_required"),
                    None,
                    Some(false),
                )],
            ),
            (
                "BedrockCentralDisabled",
                vec![row(3, "bedrock", false, "", false, false)],
                vec![],
                vec![("bedrock", false, Some("missing_api_key"), None, Some(false))],
            ),
            (
                "BedrockCentralStoredKey",
                vec![row(3, "bedrock", true, "bedrock-token", false, false)],
                vec![],
                vec![("bedrock", true, None, Some("bedrock-token"), Some(true))],
            ),
            (
                "UserOnlyUserHasKey",
                vec![row(1, "openai", false, "sk-central", true, false)],
                vec![user(1, "sk-user")],
                vec![("openai", true, None, Some("sk-user"), None)],
            ),
            (
                "UserOnlyUserHasNoKey",
                vec![row(1, "openai", false, "sk-central", true, false)],
                vec![],
                vec![("openai", false, Some("user_api_key_required"), None, None)],
            ),
            (
                "BothEnabledFallbackOff with user key",
                vec![row(1, "openai", true, "sk-central", true, false)],
                vec![user(1, "sk-user")],
                vec![("openai", true, None, Some("sk-user"), None)],
            ),
            (
                "BothEnabledFallbackOff without user key",
                vec![row(1, "openai", true, "sk-central", true, false)],
                vec![],
                vec![("openai", false, Some("user_api_key_required"), None, None)],
            ),
            (
                "BothEnabledFallbackOn with user key",
                vec![row(1, "openai", true, "sk-central", true, true)],
                vec![user(1, "sk-user")],
                vec![("openai", true, None, Some("sk-user"), None)],
            ),
            (
                "BothEnabledFallbackOn without user key",
                vec![row(1, "openai", true, "sk-central", true, true)],
                vec![],
                vec![("openai", true, None, Some("sk-central"), None)],
            ),
            (
                "FallbackOn, central key empty, no user key",
                vec![row(1, "openai", true, "", true, true)],
                vec![],
                vec![("openai", false, Some("user_api_key_required"), None, None)],
            ),
            (
                "Multiple",
                vec![
                    row(1, "openai", true, "sk-central", false, false),
                    row(2, "anthropic", false, "", true, false),
                ],
                vec![],
                vec![
                    ("openai", true, None, Some("sk-central"), None),
                    (
                        "anthropic",
                        false,
                        Some("user_api_key_required"),
                        None,
                        None,
                    ),
                ],
            ),
            (
                "anthropic (1, -, 1, 1) no keys at all",
                vec![row(2, "anthropic", true, "", true, true)],
                vec![],
                vec![(
                    "anthropic",
                    false,
                    Some("user_api_key_required"),
                    None,
                    None,
                )],
            ),
            (
                "anthropic (1, -, 1, 0) no keys",
                vec![row(2, "anthropic", true, "", true, false)],
                vec![],
                vec![(
                    "anthropic",
                    false,
                    Some("user_api_key_required"),
                    None,
                    None,
                )],
            ),
        ];
        for (name, rows, users, expects) in cases {
            let r = resolve_user_provider_keys(&ProviderApiKeys::new(), &rows, &users);
            for (p, available, reason, key, present) in expects {
                assert_eq!(r.is_available(p), available, "{name}: {p}");
                assert_eq!(r.unavailable_reason(p), reason, "{name}: {p}");
                assert_eq!(r.api_key(p), key, "{name}: {p}");
                if let Some(present) = present {
                    assert_eq!(r.has_provider(p), present, "{name}: {p}");
                }
            }
        }
    }

    #[test]
    fn base_urls_fallback_and_unconfigured_providers() {
        let fallback = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-env")
            .unwrap()
            .with_api_key(Provider::Anthropic, "ant-env")
            .unwrap()
            .with_base_url(Provider::OpenAi, "https://env-proxy.example.com/v1")
            .unwrap();
        let mut openai = row(1, "openai", true, "", false, false);
        openai.base_url = " https://db-proxy.example.com/v1 ".into();
        let r = resolve_user_provider_keys(&fallback, &[openai], &[]);
        // Central mode without a stored key uses the deployment key.
        assert_eq!(r.api_key("openai"), Some("sk-env"));
        assert_eq!(
            r.base_url("openai"),
            Some("https://db-proxy.example.com/v1")
        );
        assert!(r.is_available("openai"));
        // Anthropic has no row: its deployment key stays usable by clients, but it is not
        // in the availability map (reports it as missing_api_key).
        assert_eq!(r.api_key("anthropic"), Some("ant-env"));
        assert!(!r.is_available("anthropic"));
        assert_eq!(r.unavailable_reason("anthropic"), Some("missing_api_key"));
        assert_eq!(r.status("anthropic"), None);
        assert!(r.client_credentials("anthropic").is_ok());
        // Unknown names.
        assert!(!r.is_available("acme"));
        assert_eq!(r.unavailable_reason("acme"), Some("missing_api_key"));
        assert_eq!(r.credential("acme"), None);

        // C=0 drops the deployment key of a configured provider.
        let r = resolve_user_provider_keys(
            &fallback,
            &[row(1, "openai", false, "", false, false)],
            &[],
        );
        assert_eq!(r.api_key("openai"), None);
        assert_eq!(
            r.client_credentials("openai").unwrap_err().to_string(),
            "OPENAI_API_KEY is not set"
        );
    }

    #[test]
    fn disabled_duplicates_and_bad_input() {
        let fallback = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-env")
            .unwrap()
            .with_base_url(Provider::OpenAi, "https://env.example.com")
            .unwrap();
        let mut disabled = row(1, "openai", true, "sk-db", false, false);
        disabled.enabled = false;
        let r = resolve_user_provider_keys(&fallback, &[disabled.clone()], &[]);
        assert!(!r.is_available("openai"));
        assert_eq!(r.unavailable_reason("openai"), Some("provider_disabled"));
        assert_eq!(r.api_key("openai"), None, "deployment key pruned too");
        assert_eq!(r.base_url("openai"), None);
        let e = r.client_credentials("openai").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProviderDisabled);
        assert_eq!(
            chaterror::classify(&e).kind(),
            Some(&codersdk::ChatErrorKind::ProviderDisabled)
        );

        // Duplicate rows: the first enabled row wins, whatever the order or spelling.
        let enabled = row(2, " OPENAI ", true, "sk-second", false, false);
        let r = resolve_user_provider_keys(&fallback, &[disabled.clone(), enabled.clone()], &[]);
        assert_eq!(r.api_key("openai"), Some("sk-second"));
        let first = row(3, "openai", true, "sk-first", false, false);
        let r = resolve_user_provider_keys(&fallback, &[first, enabled, disabled], &[]);
        assert_eq!(r.api_key("openai"), Some("sk-first"));

        // User keys: nil ids, blank and control-character keys are ignored; keys for rows
        // that do not allow them are ignored; the first usable key wins.
        let rows = [
            row(1, "openai", false, "", true, false),
            row(2, "anthropic", true, "ant-central", false, false),
            row(0, "google", false, "", true, false),
        ];
        let users = [
            user(1, "   "),
            user(1, "sk-\nbad"),
            user(1, " sk-good "),
            user(1, "sk-later"),
            user(2, "ant-user"),
            user(0, "g-user"),
            user(99, "stray"),
        ];
        let r = resolve_user_provider_keys(&ProviderApiKeys::new(), &rows, &users);
        assert_eq!(r.api_key("openai"), Some("sk-good"));
        assert_eq!(r.api_key("anthropic"), Some("ant-central"));
        assert_eq!(
            r.unavailable_reason("google"),
            Some("user_api_key_required")
        );

        // Unknown providers and blank names are ignored, never a panic.
        let r = resolve_user_provider_keys(
            &ProviderApiKeys::new(),
            &[
                row(5, "acme", true, "k", true, true),
                row(6, "", true, "k", false, false),
            ],
            &[user(5, "k")],
        );
        assert_eq!(r.statuses().count(), 0);
        // A stored central key with a newline counts as absent.
        let r = resolve_user_provider_keys(
            &ProviderApiKeys::new(),
            &[row(7, "vercel", true, "v\r\nX-Evil: 1", false, false)],
            &[],
        );
        assert_eq!(r.unavailable_reason("vercel"), Some("missing_api_key"));
    }

    #[test]
    fn serde_shapes() {
        let json = r#"{"id":"00000000-0000-0000-0000-000000000001","provider":"openai",
            "api_key":"sk-x","base_url":"","enabled":true,"central_api_key_enabled":false,
            "allow_user_api_key":true,"allow_central_api_key_fallback":false}"#;
        let p: ConfiguredProvider = serde_json::from_str(json).unwrap();
        assert_eq!(p.id, id(1));
        assert!(!p.central_api_key_enabled && p.allow_user_api_key);
        assert_eq!(p.api_key.expose(), "sk-x");
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["allow_central_api_key_fallback"], false);
        let defaults: ConfiguredProvider =
            serde_json::from_str(r#"{"provider":"google"}"#).unwrap();
        assert!(defaults.enabled && defaults.central_api_key_enabled);
        assert!(!defaults.allow_user_api_key && !defaults.allow_central_api_key_fallback);
        let k: UserProviderKey = serde_json::from_str(
            r#"{"provider_config_id":"00000000-0000-0000-0000-000000000002","api_key":"u"}"#,
        )
        .unwrap();
        assert_eq!(k.provider_config_id, id(2));
        assert!(!format!("{k:?}").contains("\"u\""));

        let r = resolve_user_provider_keys(
            &ProviderApiKeys::new(),
            &[
                row(
                    1,
                    "openai",
                    true,
                    "sk-proj-abcdefghijklmnop1234",
                    false,
                    false,
                ),
                row(2, "anthropic", false, "", true, false),
                row(3, "bedrock", true, "", false, false),
            ],
            &[],
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"providers": {
                "anthropic": {"available": false, "unavailable_reason": "user_api_key_required"},
                "bedrock": {"available": true, "credential": {"source": "ambient"}},
                "openai": {"available": true,
                           "credential": {"source": "central", "key_hint": "sk-…1234"}},
            }})
        );
    }

    #[test]
    fn reasons_to_wire() {
        assert_eq!(
            UnavailableReason::MissingApiKey.to_wire(),
            ChatModelProviderUnavailableReason::MissingApiKey
        );
        assert_eq!(
            UnavailableReason::UserApiKeyRequired.to_wire(),
            ChatModelProviderUnavailableReason::UserApiKeyRequired
        );
        assert_eq!(
            serde_json::to_string(&UnavailableReason::ProviderDisabled.to_wire()).unwrap(),
            "\"provider_disabled\""
        );
    }
}
