//! Validation of the administrator's provider requests and of users' own keys
//!, with the provider knowledge `codersdk` lacks.

use codersdk::{
    ChatProviderConfig, CreateChatProviderConfigRequest, CreateUserChatProviderKeyRequest,
    Response, SecretString, UpdateChatProviderConfigRequest, ValidatedProviderConfig,
    ValidatedProviderConfigUpdate,
};

use crate::catalog::Provider;
use crate::keys::ProviderApiKeys;
use crate::policy::ConfiguredProvider;

/// Whether central-key mode can work without a stored key: the provider runs on ambient
/// credentials (Bedrock), or the deployment supplies a key for it (an environment preset),
/// which the key policy uses when the stored key is blank.
fn central_key_optional(provider: &str, deployment_keys: &ProviderApiKeys) -> bool {
    Provider::parse(provider)
        .is_some_and(|p| p.allows_ambient_credentials() || deployment_keys.api_key_of(p).is_some())
}

/// Validates `POST /chats/providers`.
///
/// The rules of [`codersdk::validate_create_provider_config`] (known provider id, trimmed
/// and case-insensitive; at least one of central key / user keys; the fallback needs both;
/// key at most [`MAX_API_KEY_BYTES`](crate::MAX_API_KEY_BYTES) without control characters;
/// base URL an absolute `http`/`https` URL; Azure needs a base URL), where "central mode
/// needs a stored key" is waived for Bedrock and for providers `deployment_keys` already
/// has a key for. Errors are a `Response` with per-field `validations` and never contain
/// the key.
pub fn validate_create_provider_request(
    req: &CreateChatProviderConfigRequest,
    deployment_keys: &ProviderApiKeys,
) -> Result<ValidatedProviderConfig, Response> {
    codersdk::validate_create_provider_config(
        req,
        central_key_optional(&req.provider, deployment_keys),
    )
}

/// Validates `PATCH /chats/providers/{providerConfig}` against the provider's current
/// state, as [`codersdk::validate_update_provider_config`] with the same waiver as
/// [`validate_create_provider_request`]. An `api_key` of `""` (or blank) clears the stored
/// key ([`codersdk::ApiKeyChange::Clear`]).
pub fn validate_update_provider_request(
    current: &ChatProviderConfig,
    req: &UpdateChatProviderConfigRequest,
    deployment_keys: &ProviderApiKeys,
) -> Result<ValidatedProviderConfigUpdate, Response> {
    codersdk::validate_update_provider_config(
        current,
        req,
        central_key_optional(&current.provider, deployment_keys),
    )
}

/// Validates `PUT /chats/user-provider-configs/{providerConfig}`: the provider must be a
/// known, enabled provider that allows user keys, and the key non-blank, at most
/// [`MAX_API_KEY_BYTES`](crate::MAX_API_KEY_BYTES) and free of control characters.
/// Returns the trimmed key; errors never contain it.
pub fn validate_user_provider_key_request(
    provider: &ConfiguredProvider,
    req: &CreateUserChatProviderKeyRequest,
) -> Result<SecretString, Response> {
    let Some(p) = Provider::parse(&provider.provider) else {
        return Err(Response::new("Unknown provider.")
            .with_validation("provider", "This provider is not supported."));
    };
    if !provider.enabled {
        return Err(Response::new("Provider is disabled.").with_detail(format!(
            "{} is disabled; ask an administrator to enable it.",
            p.display_name()
        )));
    }
    if !provider.allow_user_api_key {
        return Err(
            Response::new("Provider does not accept user API keys.").with_detail(format!(
                "An administrator has not allowed personal API keys for {}.",
                p.display_name()
            )),
        );
    }
    codersdk::validate_user_provider_key(req)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::keys::MAX_API_KEY_BYTES;
    use codersdk::{ApiKeyChange, ChatProviderConfigSource, Uuid};

    fn create(provider: &str) -> CreateChatProviderConfigRequest {
        CreateChatProviderConfigRequest {
            provider: provider.into(),
            ..Default::default()
        }
    }

    fn fields(r: &Response) -> Vec<&str> {
        r.validations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn create_rules() {
        let none = ProviderApiKeys::new();
        // Unknown provider.
        let e = validate_create_provider_request(&create("acme"), &none).unwrap_err();
        assert!(fields(&e).contains(&"provider"), "{e}");
        // Normalized id, defaults, stored key.
        let mut req = create(" OpenAI ");
        req.api_key = Some(" sk-123 ".into());
        let ok = validate_create_provider_request(&req, &none).unwrap();
        assert_eq!(ok.provider, "openai");
        assert!(ok.enabled && ok.central_api_key_enabled && !ok.allow_user_api_key);
        assert_eq!(
            ok.api_key.as_ref().map(SecretString::expose),
            Some("sk-123")
        );
        // Central mode without a key: refused, except for Bedrock and deployment keys.
        let e = validate_create_provider_request(&create("openai"), &none).unwrap_err();
        assert_eq!(fields(&e), ["api_key"]);
        assert!(validate_create_provider_request(&create("bedrock"), &none).is_ok());
        let env = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-env")
            .unwrap();
        assert!(validate_create_provider_request(&create("openai"), &env).is_ok());
        assert!(validate_create_provider_request(&create("anthropic"), &env).is_err());
        // Neither central nor user keys.
        let mut req = create("bedrock");
        req.central_api_key_enabled = Some(false);
        let e = validate_create_provider_request(&req, &none).unwrap_err();
        assert!(fields(&e).contains(&"central_api_key_enabled"), "{e}");
        // Fallback needs both.
        let mut req = create("bedrock");
        req.allow_central_api_key_fallback = Some(true);
        let e = validate_create_provider_request(&req, &none).unwrap_err();
        assert!(
            fields(&e).contains(&"allow_central_api_key_fallback"),
            "{e}"
        );
        req.allow_user_api_key = Some(true);
        assert!(validate_create_provider_request(&req, &none).is_ok());
        // User keys only: no central key needed.
        let mut req = create("google");
        req.central_api_key_enabled = Some(false);
        req.allow_user_api_key = Some(true);
        assert!(validate_create_provider_request(&req, &none).is_ok());
    }

    #[test]
    fn key_and_url_limits() {
        let none = ProviderApiKeys::new();
        let mut req = create("openai");
        let at_limit = "k".repeat(MAX_API_KEY_BYTES);
        req.api_key = Some(at_limit.as_str().into());
        assert!(validate_create_provider_request(&req, &none).is_ok());
        let over = "s".repeat(MAX_API_KEY_BYTES + 1);
        req.api_key = Some(over.as_str().into());
        let e = validate_create_provider_request(&req, &none).unwrap_err();
        assert_eq!(fields(&e), ["api_key"]);
        assert!(!format!("{e} {e:?}").contains(&over));
        let secret = "sk-live-\u{1}-secret";
        req.api_key = Some(secret.into());
        let e = validate_create_provider_request(&req, &none).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("secret"));
        req.api_key = Some("sk".into());
        for bad in [
            "ftp://x.example.com",
            "example.com/v1",
            "http://",
            "https://a b",
        ] {
            req.base_url = Some(bad.into());
            let e = validate_create_provider_request(&req, &none).unwrap_err();
            assert_eq!(fields(&e), ["base_url"], "{bad}");
        }
        req.base_url = Some(" https://proxy.example.com/v1 ".into());
        assert_eq!(
            validate_create_provider_request(&req, &none)
                .unwrap()
                .base_url,
            "https://proxy.example.com/v1"
        );
        let mut azure = create("azure");
        azure.api_key = Some("az".into());
        let e = validate_create_provider_request(&azure, &none).unwrap_err();
        assert_eq!(fields(&e), ["base_url"]);
    }

    fn current(provider: &str, has_key: bool) -> ChatProviderConfig {
        ChatProviderConfig {
            id: Uuid::from_u128(1),
            provider: provider.into(),
            display_name: String::new(),
            enabled: true,
            has_api_key: has_key,
            central_api_key_enabled: true,
            allow_user_api_key: false,
            allow_central_api_key_fallback: false,
            base_url: String::new(),
            source: ChatProviderConfigSource::Database,
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn update_rules() {
        let none = ProviderApiKeys::new();
        let clear = UpdateChatProviderConfigRequest {
            api_key: Some("".into()),
            ..Default::default()
        };
        // Clearing the only key of a central-mode provider is refused ...
        let e =
            validate_update_provider_request(&current("openai", true), &clear, &none).unwrap_err();
        assert_eq!(fields(&e), ["api_key"]);
        // ... but fine for Bedrock (ambient) or with a deployment key.
        let ok =
            validate_update_provider_request(&current("bedrock", true), &clear, &none).unwrap();
        assert_eq!(ok.api_key, ApiKeyChange::Clear);
        let env = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-env")
            .unwrap();
        assert!(validate_update_provider_request(&current("openai", true), &clear, &env).is_ok());
        // Switching to user keys only, then clearing.
        let user_only = UpdateChatProviderConfigRequest {
            api_key: Some("  ".into()),
            central_api_key_enabled: Some(false),
            allow_user_api_key: Some(true),
            ..Default::default()
        };
        let ok =
            validate_update_provider_request(&current("openai", true), &user_only, &none).unwrap();
        assert_eq!(ok.api_key, ApiKeyChange::Clear);
        assert!(!ok.central_api_key_enabled && ok.allow_user_api_key);
        // Absent key: kept.
        let keep = UpdateChatProviderConfigRequest::default();
        let ok = validate_update_provider_request(&current("openai", true), &keep, &none).unwrap();
        assert_eq!(ok.api_key, ApiKeyChange::Keep);
    }

    #[test]
    fn user_keys() {
        let mut row = ConfiguredProvider {
            provider: "openai".into(),
            allow_user_api_key: true,
            ..Default::default()
        };
        let req = |k: &str| CreateUserChatProviderKeyRequest { api_key: k.into() };
        assert_eq!(
            validate_user_provider_key_request(&row, &req(" sk-mine "))
                .unwrap()
                .expose(),
            "sk-mine"
        );
        assert!(validate_user_provider_key_request(&row, &req("  ")).is_err());
        let e = validate_user_provider_key_request(&row, &req("sk-\nmine")).unwrap_err();
        assert!(!format!("{e:?}").contains("mine"));
        row.allow_user_api_key = false;
        let e = validate_user_provider_key_request(&row, &req("sk-mine")).unwrap_err();
        assert_eq!(e.message, "Provider does not accept user API keys.");
        row.allow_user_api_key = true;
        row.enabled = false;
        let e = validate_user_provider_key_request(&row, &req("sk-mine")).unwrap_err();
        assert_eq!(e.message, "Provider is disabled.");
        row.provider = "acme".into();
        let e = validate_user_provider_key_request(&row, &req("sk-mine")).unwrap_err();
        assert_eq!(fields(&e), ["provider"]);
    }
}
