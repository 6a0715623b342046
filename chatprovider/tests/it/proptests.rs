//! Arbitrary provider names, keys, URLs and model references never panic, and keys never
//! leak into what is printed or serialized.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatprovider::{
    azure_base_url, check_inline_image, inline_image_byte_cap, key_hint, normalize_provider,
    reasoning_effort_from_chat, resolve_model_with_provider_hint, resolve_reasoning_effort,
    resolve_user_provider_keys, validate_create_provider_request, ConfiguredProvider,
    InlineAttachment, Provider, ProviderApiKeys, UserProviderKey, SUPPORTED_PROVIDERS,
};
use codersdk::{ChatModelReasoningEffortConfig, CreateChatProviderConfigRequest, Uuid};
use proptest::prelude::*;

/// Provider names: real ids in odd spellings, and noise.
fn provider_name() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..SUPPORTED_PROVIDERS.len(), any::<bool>(), "[ \t]{0,2}").prop_map(|(i, upper, pad)| {
            let id = SUPPORTED_PROVIDERS[i].as_str();
            let id = if upper {
                id.to_uppercase()
            } else {
                id.to_owned()
            };
            format!("{pad}{id}{pad}")
        }),
        any::<String>(),
        "[a-z-]{0,16}",
    ]
}

/// Keys that cannot occur by chance in JSON or messages: `QQ` then at least 8 more.
fn secret_key() -> impl Strategy<Value = String> {
    "QQ[A-Za-z0-9_-]{8,48}"
}

/// Any key: secret-looking, blank, with control characters, or arbitrary.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        secret_key(),
        Just(String::new()),
        "[ \t]{1,3}",
        "QQ[a-z]{4}\n[a-z]{4}",
        any::<String>()
    ]
}

fn any_url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "https?://[a-z0-9.-]{0,20}(:[0-9]{1,6})?(/[a-z0-9/]{0,10})?",
        "[a-z]{1,6}://[^ ]{0,30}",
        any::<String>(),
    ]
}

fn configured() -> impl Strategy<Value = ConfiguredProvider> {
    (
        0u128..6,
        provider_name(),
        any_key(),
        any_url(),
        any::<[bool; 4]>(),
    )
        .prop_map(
            |(id, provider, key, url, [enabled, c, u, f])| ConfiguredProvider {
                id: Uuid::from_u128(id),
                provider,
                api_key: key.into(),
                base_url: url,
                enabled,
                central_api_key_enabled: c,
                allow_user_api_key: u,
                allow_central_api_key_fallback: f,
            },
        )
}

fn user_key() -> impl Strategy<Value = UserProviderKey> {
    (0u128..6, any_key()).prop_map(|(id, key)| UserProviderKey {
        provider_config_id: Uuid::from_u128(id),
        api_key: key.into(),
    })
}

proptest! {
    #[test]
    fn normalize_never_panics(name in provider_name()) {
        if let Some(id) = normalize_provider(&name) {
            prop_assert_eq!(id, name.trim().to_lowercase());
            prop_assert!(Provider::parse(&name).is_some());
        }
        let _ = chatprovider::provider_display_name(&name);
        let _ = inline_image_byte_cap(&name);
        let _ = reasoning_effort_from_chat(&name, Some(&name));
    }

    #[test]
    fn key_hint_shows_at_most_a_third(key in any::<String>()) {
        let hint = key_hint(&key);
        let len = key.trim().chars().count();
        let shown = hint.chars().count() - 1;
        prop_assert!(shown <= len / 3);
        prop_assert!(shown <= 7);
        prop_assert!(hint.contains('…'));
    }

    #[test]
    fn resolution_never_panics_and_never_leaks(
        fallback_key in any_key(),
        fallback_url in any_url(),
        rows in proptest::collection::vec(configured(), 0..8),
        users in proptest::collection::vec(user_key(), 0..8),
    ) {
        let mut fallback = ProviderApiKeys::new();
        let _ = fallback.set_api_key(Provider::OpenAi, fallback_key.as_str());
        let _ = fallback.set_base_url(Provider::OpenAi, &fallback_url);
        let r = resolve_user_provider_keys(&fallback, &rows, &users);
        let json = serde_json::to_string(&r).unwrap();
        let debug = format!("{r:?}");
        let mut secrets: Vec<String> = rows.iter().map(|r| r.api_key.expose().to_owned()).collect();
        secrets.extend(users.iter().map(|u| u.api_key.expose().to_owned()));
        secrets.push(fallback_key.clone());
        for s in secrets.iter().filter(|s| s.trim().starts_with("QQ")) {
            prop_assert!(!json.contains(s.trim()), "JSON leaks a key: {}", json);
            prop_assert!(!debug.contains(s.trim()), "Debug leaks a key");
        }
        for p in SUPPORTED_PROVIDERS {
            let id = p.as_str();
            prop_assert_eq!(r.is_available(id), r.unavailable_reason(id).is_none());
            prop_assert_eq!(r.is_available(id), r.credential(id).is_some());
            if r.is_available(id) {
                prop_assert!(r.keys().is_usable(id));
            }
            match r.client_credentials(id) {
                Ok(c) => {
                    let shown = format!("{c:?}");
                    for s in secrets.iter().filter(|s| s.trim().starts_with("QQ")) {
                        prop_assert!(!shown.contains(s.trim()));
                    }
                }
                Err(e) => {
                    let text = format!("{e} {e:?}");
                    for s in secrets.iter().filter(|s| s.trim().starts_with("QQ")) {
                        prop_assert!(!text.contains(s.trim()), "error leaks a key: {}", text);
                    }
                    prop_assert!(chaterror::classify(&e).kind().is_some());
                }
            }
        }
        let _ = ProviderApiKeys::merged(&fallback, &rows);
    }

    #[test]
    fn models_never_panic(model in any::<String>(), hint in provider_name()) {
        match resolve_model_with_provider_hint(&model, &hint) {
            Ok((_, id)) => {
                prop_assert!(!id.is_empty());
                prop_assert_eq!(id.trim(), id.as_str());
            }
            Err(e) => {
                prop_assert!(e.is_model());
                prop_assert!(e.to_string().len() <= chatprovider::MAX_ECHOED_INPUT_BYTES * 6 + 32);
            }
        }
    }

    #[test]
    fn urls_never_panic(url in any_url(), secret in secret_key()) {
        let _ = azure_base_url(&url);
        let mut keys = ProviderApiKeys::new();
        for p in SUPPORTED_PROVIDERS {
            let _ = keys.set_base_url(p, &url);
        }
        let with_secret = format!("{url}{secret}");
        if let Err(e) = azure_base_url(&with_secret) {
            let text = format!("{e} {e:?}");
            prop_assert!(!text.contains(&secret));
        }
        if let Err(e) = keys.set_base_url(Provider::Vercel, &with_secret) {
            let text = format!("{e} {e:?}");
            prop_assert!(!text.contains(&secret));
        }
    }

    #[test]
    fn validation_never_panics_or_leaks(
        provider in provider_name(),
        key in secret_key(),
        junk in any::<String>(),
        url in any_url(),
        toggles in any::<[Option<bool>; 4]>(),
    ) {
        for k in [key.clone(), format!("{key}{junk}"), format!("{junk}{key}\u{0}")] {
            let req = CreateChatProviderConfigRequest {
                provider: provider.clone(),
                display_name: None,
                api_key: Some(k.as_str().into()),
                base_url: Some(url.clone()),
                enabled: toggles[0],
                central_api_key_enabled: toggles[1],
                allow_user_api_key: toggles[2],
                allow_central_api_key_fallback: toggles[3],
            };
            if let Err(e) = validate_create_provider_request(&req, &ProviderApiKeys::new()) {
                let text = format!("{e} {e:?}");
                prop_assert!(!text.contains(&key));
            }
        }
    }

    #[test]
    fn images_and_efforts_never_panic(
        provider in provider_name(),
        name in any::<String>(),
        media_type in prop_oneof!["image/[a-z]{1,5}", any::<String>()],
        size in any::<u64>(),
        requested in proptest::option::of(any::<String>()),
        default in proptest::option::of(any::<String>()),
        max in proptest::option::of(any::<String>()),
    ) {
        let a = InlineAttachment { name: &name, media_type: &media_type, size_bytes: size };
        if let Err(e) = check_inline_image(&provider, &a) {
            prop_assert!(e.is_image_too_large());
            prop_assert!(size >= chatprovider::ANTHROPIC_INLINE_IMAGE_CAP_BYTES);
        }
        let bounds = ChatModelReasoningEffortConfig { default, max };
        let _ = resolve_reasoning_effort(requested.as_deref(), Some(&bounds));
        let _ = reasoning_effort_from_chat(&provider, requested.as_deref());
    }
}
