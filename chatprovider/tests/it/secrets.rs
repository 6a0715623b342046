//! No key value ever appears in `Debug` output, error messages (text and source chain) or
//! the serialized `ResolvedProviderKeys`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::error::Error as StdError;

use chatprovider::{
    resolve_user_provider_keys, validate_create_provider_request,
    validate_user_provider_key_request, ConfiguredProvider, Provider, ProviderApiKeys,
    UserProviderKey,
};
use codersdk::{CreateChatProviderConfigRequest, CreateUserChatProviderKeyRequest, Uuid};

const DEPLOYMENT: &str = "sk-DEPLOYMENT-4f1c9e2a7b3d5e8f";
const CENTRAL: &str = "sk-CENTRAL-0a1b2c3d4e5f6a7b8c9d";
const USER: &str = "sk-USERKEY-9z8y7x6w5v4u3t2s1r";
const BEDROCK: &str = "bedrock-TOKEN-abcdefghijklmnop";
const SECRETS: [&str; 4] = [DEPLOYMENT, CENTRAL, USER, BEDROCK];

/// Fails if `text` contains any 8-character piece of any secret (a hint shows at most 7).
fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(8) {
            let piece: String = window.iter().collect();
            assert!(
                !text.contains(&piece),
                "{what} leaks {piece:?} of a key:\n{text}"
            );
        }
    }
}

/// Display and Debug of an error and of every error in its source chain.
fn error_texts(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut node = Some(err);
    while let Some(e) = node {
        out.push_str(&format!("{e}\n{e:?}\n"));
        node = e.source();
    }
    out
}

fn row(n: u128, provider: &str, key: &str, c: bool, u: bool, f: bool) -> ConfiguredProvider {
    ConfiguredProvider {
        id: Uuid::from_u128(n),
        provider: provider.into(),
        api_key: key.into(),
        central_api_key_enabled: c,
        allow_user_api_key: u,
        allow_central_api_key_fallback: f,
        ..Default::default()
    }
}

#[test]
fn resolved_keys_never_show_keys() {
    let fallback = ProviderApiKeys::new()
        .with_api_key(Provider::OpenAi, DEPLOYMENT)
        .unwrap()
        .with_api_key(Provider::Vercel, DEPLOYMENT)
        .unwrap();
    let mut disabled = row(6, "vercel", CENTRAL, true, false, false);
    disabled.enabled = false;
    let providers = vec![
        row(1, "openai", "", true, true, true),
        row(2, "anthropic", CENTRAL, true, true, false),
        row(3, "bedrock", BEDROCK, true, false, false),
        row(4, "google", CENTRAL, false, true, false),
        row(5, "openrouter", CENTRAL, true, false, false),
        disabled,
    ];
    let users = vec![
        UserProviderKey {
            provider_config_id: Uuid::from_u128(2),
            api_key: USER.into(),
        },
        UserProviderKey {
            provider_config_id: Uuid::from_u128(4),
            api_key: USER.into(),
        },
    ];
    let r = resolve_user_provider_keys(&fallback, &providers, &users);

    // The keys are there for clients ...
    assert_eq!(r.api_key("openai"), Some(DEPLOYMENT));
    assert_eq!(r.api_key("anthropic"), Some(USER));
    assert_eq!(r.api_key("bedrock"), Some(BEDROCK));
    assert_eq!(r.api_key("openrouter"), Some(CENTRAL));
    // ... but never printed or serialized.
    assert_clean("Debug", &format!("{r:?}\n{r:#?}"));
    assert_clean("keys Debug", &format!("{:?}", r.keys()));
    assert_clean("rows Debug", &format!("{providers:?} {users:?}"));
    let json = serde_json::to_string(&r).unwrap();
    assert_clean("JSON", &json);
    assert!(json.contains("key_hint"), "{json}");
    for (_, status) in r.statuses() {
        assert_clean(
            "status",
            &format!("{status:?} {}", serde_json::to_string(status).unwrap()),
        );
    }
    for p in [
        "openai",
        "anthropic",
        "bedrock",
        "google",
        "openrouter",
        "vercel",
        "azure",
        "x",
    ] {
        if let Some(c) = r.credential(p) {
            assert_clean(
                "credential",
                &format!("{c:?} {}", serde_json::to_string(&c).unwrap()),
            );
        }
        match r.client_credentials(p) {
            Ok(creds) => assert_clean("credentials Debug", &format!("{creds:?}")),
            Err(e) => assert_clean("credentials error", &error_texts(&e)),
        }
        let classified = match r.client_credentials(p) {
            Ok(_) => continue,
            Err(e) => chaterror::classify(&e),
        };
        assert_clean("classification", &format!("{classified:?}"));
    }
}

#[test]
fn errors_never_show_keys() {
    let mut keys = ProviderApiKeys::new();
    let with_newline = format!("{CENTRAL}\nX-Injected: 1");
    let too_long = format!("{CENTRAL}{}", "x".repeat(chatprovider::MAX_API_KEY_BYTES));
    for bad in [with_newline.as_str(), too_long.as_str()] {
        let e = keys.set_api_key(Provider::OpenAi, bad).unwrap_err();
        assert_clean("set_api_key error", &error_texts(&e));
        assert_clean("classified", &format!("{:?}", chaterror::classify(&e)));
    }
    let url_with_key = format!("gopher://user:{CENTRAL}@host/");
    let e = keys
        .set_base_url(Provider::OpenAi, &url_with_key)
        .unwrap_err();
    assert_clean("base URL error", &error_texts(&e));
    let e = chatprovider::azure_base_url(&format!("ftp://{CENTRAL}.openai.azure.com")).unwrap_err();
    assert_clean("azure error", &error_texts(&e));

    // A stored row with a broken URL: the client check fails without echoing either.
    let merged = ProviderApiKeys::merged(
        &ProviderApiKeys::new(),
        &[ConfiguredProvider {
            provider: "vercel".into(),
            api_key: CENTRAL.into(),
            base_url: format!("{USER}.example.com"),
            ..Default::default()
        }],
    );
    let e = merged.client_credentials("vercel").unwrap_err();
    assert_clean("client credentials error", &error_texts(&e));

    // Admin validation.
    for key in [with_newline.as_str(), too_long.as_str(), CENTRAL] {
        let req = CreateChatProviderConfigRequest {
            provider: "acme".into(),
            api_key: Some(key.into()),
            base_url: Some(format!("ftp://{USER}@x")),
            allow_central_api_key_fallback: Some(true),
            ..Default::default()
        };
        let e = validate_create_provider_request(&req, &ProviderApiKeys::new()).unwrap_err();
        assert_clean(
            "validation",
            &format!("{e}\n{e:?}\n{}", serde_json::to_string(&e).unwrap()),
        );
    }
    let mut disabled = row(1, "openai", CENTRAL, true, true, false);
    disabled.enabled = false;
    for (provider, key) in [
        (&disabled, USER),
        (
            &row(2, "openai", "", true, true, false),
            with_newline.as_str(),
        ),
    ] {
        let req = CreateUserChatProviderKeyRequest {
            api_key: key.into(),
        };
        let e = validate_user_provider_key_request(provider, &req).unwrap_err();
        assert_clean("user key validation", &format!("{e}\n{e:?}"));
    }
}
