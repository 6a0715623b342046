//! Provider configurations and users' own provider keys.

use super::urls::validate_http_url;
use super::{check_display_name, quoted, Problems};
use crate::{
    ChatProviderConfig, CreateChatProviderConfigRequest, CreateUserChatProviderKeyRequest,
    ProviderId, Response, SecretString, UpdateChatProviderConfigRequest, CHAT_PROVIDER_IDS,
};

/// Largest central or user provider API key, in bytes (Coder documents "10 KB"; read as KiB).
pub const MAX_PROVIDER_API_KEY_BYTES: usize = 10 * 1024;

/// Reads a provider id as [`ProviderId::parse`] does (trimmed, ASCII case-insensitive, no
/// aliases); an unknown one is reported under `provider` with the list of valid ids.
pub(super) fn check_provider_id(raw: &str, p: &mut Problems) -> Option<ProviderId> {
    let provider = ProviderId::parse(raw);
    if provider.is_none() {
        p.push(
            "provider",
            format!(
                "Unknown provider {}; use one of: {}.",
                quoted(raw.trim()),
                CHAT_PROVIDER_IDS.join(", ")
            ),
        );
    }
    provider
}

/// Checks a key and returns it trimmed; `Ok(None)` when blank. Never echoes the key.
fn check_api_key(key: &SecretString, field: &str, p: &mut Problems) -> Option<SecretString> {
    let trimmed = key.expose().trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.len() > MAX_PROVIDER_API_KEY_BYTES {
        p.push(
            field,
            format!(
                "The API key is {} bytes long; keys may be at most {MAX_PROVIDER_API_KEY_BYTES} \
                 bytes.",
                trimmed.len()
            ),
        );
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        p.push(
            field,
            "The API key must not contain control characters such as newlines.",
        );
        return None;
    }
    Some(SecretString::new(trimmed))
}

fn check_base_url(raw: &str, p: &mut Problems) -> String {
    let url = raw.trim();
    if url.is_empty() {
        return String::new();
    }
    if let Err(reason) = validate_http_url(url) {
        p.push("base_url", format!("base_url {reason}."));
    }
    url.to_owned()
}

/// The key-policy rules on the final state of a provider: some key source must be enabled,
/// the central-key fallback needs both sources, and a central key must be stored unless the
/// provider uses ambient credentials.
fn check_key_policy(
    provider: &str,
    central: bool,
    user: bool,
    fallback: bool,
    has_key: bool,
    allows_ambient_credentials: bool,
    p: &mut Problems,
) {
    if !central && !user {
        p.push(
            "central_api_key_enabled",
            "Enable the central API key, user API keys, or both; otherwise nobody can use the \
             provider.",
        );
    }
    if fallback && !(central && user) {
        p.push(
            "allow_central_api_key_fallback",
            "The central key fallback needs both central_api_key_enabled and \
             allow_user_api_key.",
        );
    }
    if central && !has_key && !allows_ambient_credentials {
        p.push(
            "api_key",
            format!(
                "Provider {provider} uses the central API key but none is stored; send api_key \
                 or disable central_api_key_enabled."
            ),
        );
    }
}

/// A [`CreateChatProviderConfigRequest`] after validation, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProviderConfig {
    /// Normalized provider id.
    pub provider: String,
    /// Trimmed display name; empty means "use the provider's default name".
    pub display_name: String,
    /// Trimmed central key; `None` when none was given.
    pub api_key: Option<SecretString>,
    /// Trimmed base URL; empty for the provider's default endpoint.
    pub base_url: String,
    /// Default true.
    pub enabled: bool,
    /// Default true.
    pub central_api_key_enabled: bool,
    /// Default false.
    pub allow_user_api_key: bool,
    /// Default false.
    pub allow_central_api_key_fallback: bool,
}

/// Validates `POST /chats/providers`.
///
/// The provider must be a known id (trimmed, case-insensitive). At least one of central
/// key and user keys must be enabled; the fallback needs both; central mode needs a key
/// unless `allows_ambient_credentials` (pass `true` for Bedrock, and when the deployment
/// already supplies a key for the provider, e.g. from its environment). Keys are trimmed,
/// at most [`MAX_PROVIDER_API_KEY_BYTES`], without control characters. Azure needs a
/// `base_url`. No message ever contains the key.
pub fn validate_create_provider_config(
    req: &CreateChatProviderConfigRequest,
    allows_ambient_credentials: bool,
) -> Result<ValidatedProviderConfig, Response> {
    let mut p = Problems::default();
    let provider = check_provider_id(&req.provider, &mut p);
    let display_name = check_display_name(req.display_name.as_deref().unwrap_or_default(), &mut p);
    let api_key = req
        .api_key
        .as_ref()
        .and_then(|k| check_api_key(k, "api_key", &mut p));
    let key_rejected = req
        .api_key
        .as_ref()
        .is_some_and(|k| !k.expose().trim().is_empty())
        && api_key.is_none();
    let base_url = check_base_url(req.base_url.as_deref().unwrap_or_default(), &mut p);
    let central = req.central_api_key_enabled.unwrap_or(true);
    let user = req.allow_user_api_key.unwrap_or(false);
    let fallback = req.allow_central_api_key_fallback.unwrap_or(false);
    if let Some(provider) = provider {
        if provider == ProviderId::Azure && base_url.is_empty() {
            p.push(
                "base_url",
                "Azure OpenAI needs base_url: your resource's endpoint URL.",
            );
        }
        // A rejected key was reported already; do not also say that none is stored.
        let has_key = api_key.is_some() || key_rejected;
        check_key_policy(
            provider.as_str(),
            central,
            user,
            fallback,
            has_key,
            allows_ambient_credentials,
            &mut p,
        );
    }
    p.finish("Invalid provider configuration.")?;
    Ok(ValidatedProviderConfig {
        provider: provider
            .map(ProviderId::as_str)
            .unwrap_or_default()
            .to_owned(),
        display_name,
        api_key,
        base_url,
        enabled: req.enabled.unwrap_or(true),
        central_api_key_enabled: central,
        allow_user_api_key: user,
        allow_central_api_key_fallback: fallback,
    })
}

/// What an update does to the stored central key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApiKeyChange {
    /// `api_key` absent: keep the stored key.
    #[default]
    Keep,
    /// `api_key: ""`: delete the stored key.
    Clear,
    /// Store this (trimmed) key.
    Set(SecretString),
}

/// An [`UpdateChatProviderConfigRequest`] after validation against the current provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProviderConfigUpdate {
    /// New display name (`Some("")` resets it to the default); `None` = unchanged.
    pub display_name: Option<String>,
    /// What happens to the central key.
    pub api_key: ApiKeyChange,
    /// New base URL (`Some("")` clears it); `None` = unchanged.
    pub base_url: Option<String>,
    /// New enabled flag; `None` = unchanged.
    pub enabled: Option<bool>,
    /// The resulting central-key toggle.
    pub central_api_key_enabled: bool,
    /// The resulting user-key toggle.
    pub allow_user_api_key: bool,
    /// The resulting fallback toggle.
    pub allow_central_api_key_fallback: bool,
}

/// Validates `PATCH /chats/providers/{providerConfig}` against the provider's
/// current state: the key-policy rules of [`validate_create_provider_config`] apply to the
/// state **after** the update. `api_key: ""` (or blank) clears the stored key.
pub fn validate_update_provider_config(
    current: &ChatProviderConfig,
    req: &UpdateChatProviderConfigRequest,
    allows_ambient_credentials: bool,
) -> Result<ValidatedProviderConfigUpdate, Response> {
    let mut p = Problems::default();
    let display_name = req
        .display_name
        .as_deref()
        .map(|n| check_display_name(n, &mut p));
    let api_key = match &req.api_key {
        None => ApiKeyChange::Keep,
        Some(key) if key.expose().trim().is_empty() => ApiKeyChange::Clear,
        Some(key) => match check_api_key(key, "api_key", &mut p) {
            Some(clean) => ApiKeyChange::Set(clean),
            // Rejected and reported; keep the policy check quiet about it.
            None => ApiKeyChange::Keep,
        },
    };
    let base_url = req.base_url.as_deref().map(|u| check_base_url(u, &mut p));
    let central = req
        .central_api_key_enabled
        .unwrap_or(current.central_api_key_enabled);
    let user = req.allow_user_api_key.unwrap_or(current.allow_user_api_key);
    let fallback = req
        .allow_central_api_key_fallback
        .unwrap_or(current.allow_central_api_key_fallback);
    let has_key = match &api_key {
        ApiKeyChange::Keep => current.has_api_key || req.api_key.is_some(),
        ApiKeyChange::Clear => false,
        ApiKeyChange::Set(_) => true,
    };
    let provider = ProviderId::parse(&current.provider);
    if provider == Some(ProviderId::Azure)
        && base_url.as_deref().unwrap_or(&current.base_url).is_empty()
    {
        p.push(
            "base_url",
            "Azure OpenAI needs base_url: your resource's endpoint URL.",
        );
    }
    let shown: &str = match provider {
        Some(id) => id.as_str(),
        None => &current.provider,
    };
    check_key_policy(
        shown,
        central,
        user,
        fallback,
        has_key,
        allows_ambient_credentials,
        &mut p,
    );
    p.finish("Invalid provider configuration.")?;
    Ok(ValidatedProviderConfigUpdate {
        display_name,
        api_key,
        base_url,
        enabled: req.enabled,
        central_api_key_enabled: central,
        allow_user_api_key: user,
        allow_central_api_key_fallback: fallback,
    })
}

/// Validates `PUT /chats/user-provider-configs/{providerConfig}`: a non-blank key
/// within the limits of [`MAX_PROVIDER_API_KEY_BYTES`]; returns it trimmed. Whether the
/// provider accepts user keys is the server's check.
pub fn validate_user_provider_key(
    req: &CreateUserChatProviderKeyRequest,
) -> Result<SecretString, Response> {
    let mut p = Problems::default();
    let key = check_api_key(&req.api_key, "api_key", &mut p);
    if key.is_none() && p.is_empty() {
        p.push("api_key", "api_key is required.");
    }
    p.finish("Invalid API key.")?;
    key.ok_or_else(|| Response::new("Invalid API key."))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::validation::test_support::*;
    use crate::*;
    use proptest::prelude::*;

    fn provider_req(provider: &str, key: Option<&str>) -> CreateChatProviderConfigRequest {
        CreateChatProviderConfigRequest {
            provider: provider.to_owned(),
            api_key: key.map(SecretString::from),
            ..Default::default()
        }
    }

    #[test]
    fn create_provider_table() {
        type Case = (CreateChatProviderConfigRequest, bool, Vec<&'static str>);
        let toggles =
            |c: bool, u: bool, f: bool, key: Option<&str>| CreateChatProviderConfigRequest {
                central_api_key_enabled: Some(c),
                allow_user_api_key: Some(u),
                allow_central_api_key_fallback: Some(f),
                ..provider_req("openai", key)
            };
        let cases: Vec<Case> = vec![
            (provider_req("openai", Some("sk-1")), false, vec![]),
            (provider_req(" OpenAI ", Some("sk-1")), false, vec![]),
            (provider_req("openai", None), false, vec!["api_key"]),
            (provider_req("openai", Some("   ")), false, vec!["api_key"]),
            (provider_req("bedrock", None), true, vec![]),
            (provider_req("foo", Some("k")), false, vec!["provider"]),
            (provider_req("", Some("k")), false, vec!["provider"]),
            (
                toggles(false, false, false, Some("k")),
                false,
                vec!["central_api_key_enabled"],
            ),
            (toggles(false, true, false, None), false, vec![]),
            (
                toggles(false, true, true, None),
                false,
                vec!["allow_central_api_key_fallback"],
            ),
            (
                toggles(true, false, true, Some("k")),
                false,
                vec!["allow_central_api_key_fallback"],
            ),
            (toggles(true, true, true, Some("k")), false, vec![]),
            (toggles(true, true, true, None), true, vec![]),
            (
                provider_req("openai", Some("sk\n1")),
                false,
                vec!["api_key"],
            ),
            (
                CreateChatProviderConfigRequest {
                    base_url: Some("ftp://x".into()),
                    ..provider_req("openai", Some("k"))
                },
                false,
                vec!["base_url"],
            ),
            (provider_req("azure", Some("k")), false, vec!["base_url"]),
            (
                CreateChatProviderConfigRequest {
                    base_url: Some("https://r.openai.azure.com".into()),
                    ..provider_req("azure", Some("k"))
                },
                false,
                vec![],
            ),
        ];
        for (req, ambient, want) in cases {
            match validate_create_provider_config(&req, ambient) {
                Ok(_) => assert!(want.is_empty(), "{req:?}"),
                Err(r) => assert_eq!(fields(&r), want, "{req:?}"),
            }
        }
        let v = validate_create_provider_config(&provider_req(" OpenAI ", Some("  sk-1\n")), false)
            .unwrap();
        assert_eq!(v.provider, "openai");
        assert_eq!(v.api_key.as_ref().map(SecretString::expose), Some("sk-1"));
        assert!(v.enabled && v.central_api_key_enabled && !v.allow_user_api_key);
    }

    #[test]
    fn provider_key_limits_never_echo_the_key() {
        let at = "k".repeat(MAX_PROVIDER_API_KEY_BYTES);
        assert!(validate_create_provider_config(&provider_req("openai", Some(&at)), false).is_ok());
        let secret = format!("sk-SECRET{}", "k".repeat(MAX_PROVIDER_API_KEY_BYTES));
        let r = validate_create_provider_config(&provider_req("openai", Some(&secret)), false)
            .unwrap_err();
        assert_eq!(fields(&r), vec!["api_key"]);
        let control = "sk-SECRET\u{7}x";
        let r2 = validate_create_provider_config(&provider_req("openai", Some(control)), false)
            .unwrap_err();
        for r in [r, r2] {
            let text = serde_json::to_string(&r).unwrap() + &r.to_string();
            assert!(!text.contains("SECRET"), "{text}");
        }
        assert!(
            validate_user_provider_key(&CreateUserChatProviderKeyRequest {
                api_key: at.as_str().into()
            })
            .is_ok()
        );
        let r = validate_user_provider_key(&CreateUserChatProviderKeyRequest {
            api_key: secret.as_str().into(),
        })
        .unwrap_err();
        assert!(!r.to_string().contains("SECRET"));
        let r = validate_user_provider_key(&CreateUserChatProviderKeyRequest {
            api_key: " ".into(),
        })
        .unwrap_err();
        assert_eq!(fields(&r), vec!["api_key"]);
        let k = validate_user_provider_key(&CreateUserChatProviderKeyRequest {
            api_key: " sk ".into(),
        })
        .unwrap();
        assert_eq!(k.expose(), "sk");
    }

    fn current(provider: &str, has_key: bool, c: bool, u: bool, f: bool) -> ChatProviderConfig {
        ChatProviderConfig {
            id: Uuid::from_u128(1),
            provider: provider.to_owned(),
            display_name: String::new(),
            enabled: true,
            has_api_key: has_key,
            central_api_key_enabled: c,
            allow_user_api_key: u,
            allow_central_api_key_fallback: f,
            base_url: String::new(),
            source: ChatProviderConfigSource::Database,
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn update_provider_table() {
        let key = |k: &str| Some(SecretString::from(k));
        type Case = (
            ChatProviderConfig,
            UpdateChatProviderConfigRequest,
            bool,
            Result<ApiKeyChange, Vec<&'static str>>,
        );
        let cases: Vec<Case> = vec![
            (
                current("openai", true, true, false, false),
                Default::default(),
                false,
                Ok(ApiKeyChange::Keep),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key(""),
                    ..Default::default()
                },
                false,
                Err(vec!["api_key"]),
            ),
            (
                current("bedrock", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key(""),
                    ..Default::default()
                },
                true,
                Ok(ApiKeyChange::Clear),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key(""),
                    central_api_key_enabled: Some(false),
                    allow_user_api_key: Some(true),
                    ..Default::default()
                },
                false,
                Ok(ApiKeyChange::Clear),
            ),
            (
                current("openai", false, false, true, false),
                UpdateChatProviderConfigRequest {
                    central_api_key_enabled: Some(true),
                    ..Default::default()
                },
                false,
                Err(vec!["api_key"]),
            ),
            (
                current("openai", false, false, true, false),
                UpdateChatProviderConfigRequest {
                    central_api_key_enabled: Some(true),
                    api_key: key(" sk-new "),
                    ..Default::default()
                },
                false,
                Ok(ApiKeyChange::Set(SecretString::from("sk-new"))),
            ),
            (
                current("openai", true, true, true, false),
                UpdateChatProviderConfigRequest {
                    allow_user_api_key: Some(false),
                    allow_central_api_key_fallback: Some(true),
                    ..Default::default()
                },
                false,
                Err(vec!["allow_central_api_key_fallback"]),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key("bad\0key"),
                    ..Default::default()
                },
                false,
                Err(vec!["api_key"]),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    base_url: Some("nope".into()),
                    ..Default::default()
                },
                false,
                Err(vec!["base_url"]),
            ),
            (
                current("azure", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    base_url: Some(String::new()),
                    ..Default::default()
                },
                false,
                Err(vec!["base_url"]),
            ),
        ];
        for (cur, req, ambient, want) in cases {
            match (validate_update_provider_config(&cur, &req, ambient), want) {
                (Ok(v), Ok(change)) => assert_eq!(v.api_key, change, "{req:?}"),
                (Err(r), Err(f)) => assert_eq!(fields(&r), f, "{req:?}"),
                (got, want) => panic!("{cur:?} {req:?}: {got:?} vs {want:?}"),
            }
        }
        let req = UpdateChatProviderConfigRequest {
            base_url: Some(" ".into()),
            display_name: Some(" Mine ".into()),
            ..Default::default()
        };
        let v = validate_update_provider_config(
            &current("openai", true, true, false, false),
            &req,
            false,
        )
        .unwrap();
        assert_eq!(v.base_url.as_deref(), Some(""));
        assert_eq!(v.display_name.as_deref(), Some("Mine"));
    }

    #[test]
    fn display_name_edge() {
        let at = "é".repeat(MAX_DISPLAY_NAME_RUNES);
        let req = CreateChatProviderConfigRequest {
            display_name: Some(at),
            ..provider_req("openai", Some("k"))
        };
        assert!(validate_create_provider_config(&req, false).is_ok());
        let over = "é".repeat(MAX_DISPLAY_NAME_RUNES + 1);
        let req = CreateChatProviderConfigRequest {
            display_name: Some(over),
            ..provider_req("openai", Some("k"))
        };
        assert_eq!(
            fields(&validate_create_provider_config(&req, false).unwrap_err()),
            vec!["display_name"]
        );
    }

    proptest! {
        #[test]
        fn provider_validator_never_panics(s in any::<String>(), t in any::<String>()) {
            let _ = validate_create_provider_config(
                &CreateChatProviderConfigRequest { base_url: Some(t.clone()), display_name: Some(t.clone()), ..provider_req(&s, Some(&t)) },
                false,
            );
        }
    }
}
