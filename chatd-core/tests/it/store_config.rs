//! Store tests of the administrator configuration: provider configs with sealed keys, model
//! configs and the one default, users' own keys, prompts, the model and credentials of a
//! turn, and secret rotation. Every test runs on SQLite (a fresh temp file) and, when
//! `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on PostgreSQL (a fresh
//! schema dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::str::FromStr;

use chatd_core::store::{
    provider_config_listing, provider_key_aad, user_key_aad, ModelConfigFilter, ModelConfigSource,
    NewUser, SecretColumn, Store, TurnModel, UnusableRequestedModel,
    DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT, INVALID_MODEL_CONFIG_MESSAGE, MAX_USER_PROMPT_CHARS,
    NO_DEFAULT_MODEL_CONFIG_MESSAGE,
};
use chatd_core::{ErrorKind, Keyring, SecretKey};
use chatprovider::{CredentialSource, Provider, ProviderApiKeys, UnavailableReason};
use codersdk::{
    ChatErrorKind, ChatModelAnthropicProviderOptions, ChatModelCallConfig, ChatModelConfig,
    ChatModelProviderOptions, ChatModelReasoningEffortConfig, ChatProviderConfigSource,
    CreateChatModelConfigRequest, CreateChatProviderConfigRequest, Decimal, ModelCostConfig,
    SecretString, UpdateChatModelConfigRequest, UpdateChatProviderConfigRequest, Uuid,
    MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES,
};

use chatd_test_support::db::*;

const CENTRAL: &str = "sk-central-0123456789abcdef";
const USER: &str = "sk-user-0123456789abcdef";

fn keyring() -> Keyring {
    Keyring::new("k1", SecretKey::from_bytes([7; 32])).unwrap()
}

fn no_keys() -> ProviderApiKeys {
    ProviderApiKeys::new()
}

/// A provider request: central key toggle `c` with `key` (blank = none), user keys `u`,
/// fallback `f`.
fn provider_req(
    provider: &str,
    key: &str,
    c: bool,
    u: bool,
    f: bool,
) -> CreateChatProviderConfigRequest {
    CreateChatProviderConfigRequest {
        provider: provider.into(),
        api_key: (!key.is_empty()).then(|| SecretString::new(key)),
        central_api_key_enabled: Some(c),
        allow_user_api_key: Some(u),
        allow_central_api_key_fallback: Some(f),
        ..Default::default()
    }
}

async fn add_provider(
    store: &Store,
    keyring: &Keyring,
    deployment: &ProviderApiKeys,
    req: CreateChatProviderConfigRequest,
) -> Uuid {
    let valid = chatprovider::validate_create_provider_request(&req, deployment).unwrap();
    store
        .create_provider_config(&valid, keyring)
        .await
        .unwrap()
        .id
}

fn model_req(provider: &str, model: &str) -> CreateChatModelConfigRequest {
    CreateChatModelConfigRequest {
        provider: provider.into(),
        model: model.into(),
        context_limit: Some(128_000),
        ..Default::default()
    }
}

async fn add_model(
    store: &Store,
    deployment: &ProviderApiKeys,
    req: CreateChatModelConfigRequest,
) -> ChatModelConfig {
    let valid = codersdk::validate_create_model_config(&req).unwrap();
    store.create_model_config(&valid, deployment).await.unwrap()
}

async fn live_defaults(store: &Store) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM model_configs WHERE is_default = 1 AND deleted = 0")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

async fn raw_provider_key(store: &Store, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT api_key_sealed FROM provider_configs WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn raw_user_key(store: &Store, user: Uuid, provider: Uuid) -> String {
    sqlx::query_scalar(
        "SELECT api_key_sealed FROM user_provider_keys WHERE user_id = $1 \
         AND provider_config_id = $2",
    )
    .bind(user.to_string())
    .bind(provider.to_string())
    .fetch_one(store.pool())
    .await
    .unwrap()
}

async fn second_user(store: &Store) -> Uuid {
    store
        .create_user(NewUser {
            username: "bob".into(),
            name: "Bob".into(),
            role: chatd_core::Role::Member,
        })
        .await
        .unwrap()
        .id
}

fn fields(e: &chatd_core::Error) -> Vec<String> {
    e.to_response()
        .validations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

#[tokio::test]
async fn provider_configs_round_trip_without_exposing_keys() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let mut req = provider_req("OpenAI", CENTRAL, true, false, false);
        req.base_url = Some(" https://proxy.example.com/v1 ".into());
        let valid = chatprovider::validate_create_provider_request(&req, &no_keys()).unwrap();
        let created = store.create_provider_config(&valid, &kr).await.unwrap();
        assert_eq!(created.provider, "openai");
        assert_eq!(
            created.display_name, "OpenAI",
            "catalog name when none given"
        );
        assert!(created.has_api_key && created.enabled && created.central_api_key_enabled);
        assert!(!created.allow_user_api_key && !created.allow_central_api_key_fallback);
        assert_eq!(created.base_url, "https://proxy.example.com/v1");
        assert_eq!(created.source, ChatProviderConfigSource::Database);
        assert_eq!(
            store.get_provider_config(created.id).await.unwrap(),
            created
        );
        let json = serde_json::to_string(&created).unwrap();
        assert!(
            !json.contains(CENTRAL) && !json.contains("\"api_key\""),
            "{json}"
        );

        let anthropic = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("anthropic", "", false, true, false),
        )
        .await;
        let list = store.list_provider_configs().await.unwrap();
        let order: Vec<&str> = list.iter().map(|p| p.provider.as_str()).collect();
        assert_eq!(order, ["anthropic", "openai"], "catalog order");
        assert!(!list[0].has_api_key);

        // A partial update keeps what it does not name and bumps updated_at.
        let update = UpdateChatProviderConfigRequest {
            display_name: Some("Company OpenAI".into()),
            allow_user_api_key: Some(true),
            allow_central_api_key_fallback: Some(true),
            ..Default::default()
        };
        let updated = store
            .update_provider_config(created.id, &update, &no_keys(), &kr)
            .await
            .unwrap();
        assert_eq!(updated.display_name, "Company OpenAI");
        assert!(updated.allow_user_api_key && updated.allow_central_api_key_fallback);
        assert!(updated.has_api_key, "absent api_key keeps the key");
        assert_eq!(updated.base_url, created.base_url);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(updated.created_at, created.created_at);

        // Clearing the key while the central key is in use breaks the policy: refused
        // under the row lock, with the validator's per-field answer.
        let clear = UpdateChatProviderConfigRequest {
            api_key: Some(SecretString::new("")),
            ..Default::default()
        };
        let e = store
            .update_provider_config(created.id, &clear, &no_keys(), &kr)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(fields(&e), ["api_key"]);
        assert!(raw_provider_key(&store, created.id).await.is_some());
        // …but allowed when a deployment key stands in, and then the column is erased.
        let env = no_keys().with_api_key(Provider::OpenAi, "sk-env").unwrap();
        let cleared = store
            .update_provider_config(created.id, &clear, &env, &kr)
            .await
            .unwrap();
        assert!(!cleared.has_api_key);
        assert_eq!(raw_provider_key(&store, created.id).await, None);

        // Setting a key seals it; it opens to the trimmed key.
        let set = UpdateChatProviderConfigRequest {
            api_key: Some(SecretString::new(" sk-new-key-000 ")),
            enabled: Some(false),
            ..Default::default()
        };
        let set = store
            .update_provider_config(created.id, &set, &no_keys(), &kr)
            .await
            .unwrap();
        assert!(set.has_api_key && !set.enabled);
        let opened = store.configured_providers(&kr).await.unwrap();
        let openai = opened.iter().find(|p| p.id == created.id).unwrap();
        assert_eq!(openai.api_key.expose(), "sk-new-key-000");
        assert!(!openai.enabled && openai.allow_user_api_key);
        let anthropic_row = opened.iter().find(|p| p.id == anthropic).unwrap();
        assert!(anthropic_row.api_key.is_empty());

        let missing = Uuid::new_v4();
        for e in [
            store.get_provider_config(missing).await.unwrap_err(),
            store
                .update_provider_config(missing, &update, &no_keys(), &kr)
                .await
                .unwrap_err(),
            store.delete_provider_config(missing).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::NotFound);
        }
    })
    .await;
}

#[tokio::test]
async fn one_live_config_per_provider_and_soft_delete_frees_the_slot() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let f = fixture(&store).await;
        let req = provider_req("openai", CENTRAL, true, true, true);
        let first = add_provider(&store, &kr, &no_keys(), req.clone()).await;
        let valid = chatprovider::validate_create_provider_request(&req, &no_keys()).unwrap();
        let e = store.create_provider_config(&valid, &kr).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.http_status(), 409);
        assert!(e.to_string().contains("openai"), "{e}");

        let other = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("anthropic", CENTRAL, true, false, false),
        )
        .await;
        let gpt = add_model(&store, &no_keys(), model_req("openai", "gpt-4o")).await;
        let mini = add_model(&store, &no_keys(), model_req("openai", "gpt-4o-mini")).await;
        let claude = add_model(&store, &no_keys(), model_req("anthropic", "claude-x")).await;
        assert!(gpt.is_default, "the first model becomes the default");
        store
            .set_user_provider_key(f.user, first, &SecretString::new(USER), &kr, &no_keys())
            .await
            .unwrap();

        let deleted = store.delete_provider_config(first).await.unwrap();
        assert_eq!(deleted.provider, "openai");
        let mut ids = deleted.deleted_model_config_ids.clone();
        ids.sort();
        let mut want = vec![gpt.id, mini.id];
        want.sort();
        assert_eq!(ids, want);
        assert_eq!(deleted.deleted_user_keys, 1);
        assert_eq!(deleted.new_default_model_config_id, Some(claude.id));
        assert_eq!(live_defaults(&store).await, [claude.id.to_string()]);
        assert_eq!(
            store.get_provider_config(first).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            store.get_model_config(gpt.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        // The deleted row keeps no secret, and the user's key is gone.
        assert_eq!(raw_provider_key(&store, first).await, None);
        assert!(store
            .user_provider_keys(f.user, &kr)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .delete_provider_config(first)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );

        // The provider can be configured again, as a new row.
        let again = add_provider(&store, &kr, &no_keys(), req).await;
        assert_ne!(again, first);
        let list = store.list_provider_configs().await.unwrap();
        assert_eq!(
            list.iter().map(|p| p.id).collect::<Vec<_>>(),
            [other, again]
        );
    })
    .await;
}

#[tokio::test]
async fn listing_has_one_entry_per_supported_provider() {
    on_each_backend(|store| async move {
        let kr = keyring();
        add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("google", CENTRAL, true, false, false),
        )
        .await;
        let env = no_keys()
            .with_api_key(Provider::Anthropic, "ant-env")
            .unwrap()
            .with_api_key(Provider::OpenRouter, "or-env")
            .unwrap();
        let stored = store.list_provider_configs().await.unwrap();
        let listing = provider_config_listing(&stored, &env);
        let rows: Vec<(&str, ChatProviderConfigSource, bool)> = listing
            .iter()
            .map(|p| (p.provider.as_str(), p.source.clone(), p.enabled))
            .collect();
        use ChatProviderConfigSource::{Database, EnvPreset, Supported};
        assert_eq!(
            rows,
            [
                ("anthropic", EnvPreset, true),
                ("azure", Supported, false),
                ("bedrock", Supported, false),
                ("google", Database, true),
                ("openai", Supported, false),
                ("openai-compat", Supported, false),
                // Only OpenAI and Anthropic are environment presets.
                ("openrouter", Supported, false),
                ("vercel", Supported, false),
            ]
        );
        assert!(listing[0].id.is_nil() && listing[0].has_api_key);
        assert_eq!(listing[0].created_at, None);
        assert_eq!(listing[3], stored[0]);
    })
    .await;
}

fn rich_call_config() -> ChatModelCallConfig {
    ChatModelCallConfig {
        max_output_tokens: Some(8192),
        temperature: Some(0.7),
        top_p: Some(0.95),
        top_k: Some(40),
        presence_penalty: Some(-0.5),
        frequency_penalty: Some(1.25),
        reasoning_effort: Some(ChatModelReasoningEffortConfig {
            default: Some("medium".into()),
            max: Some("high".into()),
        }),
        openai_config: None,
        cost: Some(ModelCostConfig {
            input_price_per_million_tokens: Some(Decimal::from_str("3").unwrap()),
            output_price_per_million_tokens: Some(Decimal::from_str("15.000001").unwrap()),
            cache_read_price_per_million_tokens: Some(Decimal::from_str("0.30").unwrap()),
            cache_write_price_per_million_tokens: Some(Decimal::ZERO),
        }),
        provider_options: Some(ChatModelProviderOptions {
            anthropic: Some(ChatModelAnthropicProviderOptions {
                send_reasoning: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn model_configs_round_trip_their_call_config_exactly() {
    on_each_backend(|store| async move {
        let kr = keyring();
        add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("anthropic", CENTRAL, true, false, false),
        )
        .await;
        let mut req = model_req(" Anthropic ", " claude-sonnet-4 ");
        req.compression_threshold = Some(85);
        req.model_config = Some(rich_call_config());
        let created = add_model(&store, &no_keys(), req).await;
        assert_eq!(created.provider, "anthropic");
        assert_eq!(created.model, "claude-sonnet-4");
        assert_eq!(created.display_name, "claude-sonnet-4");
        assert_eq!(created.context_limit, 128_000);
        assert_eq!(created.compression_threshold, 85);
        assert_eq!(created.model_config, Some(rich_call_config()));
        let got = store.get_model_config(created.id).await.unwrap();
        assert_eq!(got, created);
        // Prices are stored as exact decimal strings, never through a float.
        let raw: String =
            sqlx::query_scalar("SELECT model_config FROM model_configs WHERE id = $1")
                .bind(created.id.to_string())
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(
            raw.contains(r#""cache_read_price_per_million_tokens":"0.3""#),
            "{raw}"
        );
        assert!(
            raw.contains(r#""output_price_per_million_tokens":"15.000001""#),
            "{raw}"
        );

        // Blank strings and absent fields keep; a new model_config replaces the old whole.
        let update = UpdateChatModelConfigRequest {
            model: Some("   ".into()),
            display_name: Some("Claude Sonnet".into()),
            context_limit: Some(200_000),
            ..Default::default()
        };
        let updated = store
            .update_model_config(created.id, &update, &no_keys())
            .await
            .unwrap();
        assert_eq!(updated.model, "claude-sonnet-4");
        assert_eq!(updated.display_name, "Claude Sonnet");
        assert_eq!(updated.context_limit, 200_000);
        assert_eq!(updated.model_config, Some(rich_call_config()));
        let replace = UpdateChatModelConfigRequest {
            model_config: Some(ChatModelCallConfig {
                temperature: Some(0.1),
                ..Default::default()
            }),
            ..Default::default()
        };
        let replaced = store
            .update_model_config(created.id, &replace, &no_keys())
            .await
            .unwrap();
        assert_eq!(
            replaced.model_config,
            Some(ChatModelCallConfig {
                temperature: Some(0.1),
                ..Default::default()
            })
        );
        // The update validator runs again in the store.
        let bad = UpdateChatModelConfigRequest {
            context_limit: Some(0),
            ..Default::default()
        };
        let e = store
            .update_model_config(created.id, &bad, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(fields(&e), ["context_limit"]);
        let missing = store
            .update_model_config(Uuid::new_v4(), &update, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn models_need_a_configured_provider_and_users_see_usable_ones() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let valid = codersdk::validate_create_model_config(&model_req("openai", "gpt-4o")).unwrap();
        let e = store
            .create_model_config(&valid, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(fields(&e), ["provider"]);
        // An environment preset counts as configured.
        let env = no_keys().with_api_key(Provider::OpenAi, "sk-env").unwrap();
        let gpt = store.create_model_config(&valid, &env).await.unwrap();

        let google = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("google", CENTRAL, true, false, false),
        )
        .await;
        let gemini = add_model(&store, &no_keys(), model_req("google", "gemini-2.5-pro")).await;
        let mut off = model_req("google", "gemini-old");
        off.enabled = Some(false);
        let old = add_model(&store, &no_keys(), off).await;
        // Moving a model to an unconfigured provider is refused too.
        let to_vercel = UpdateChatModelConfigRequest {
            provider: Some("vercel".into()),
            ..Default::default()
        };
        let e = store
            .update_model_config(gemini.id, &to_vercel, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(fields(&e), ["provider"]);

        let ids = |list: Vec<ChatModelConfig>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store
                .list_model_configs(ModelConfigFilter::All)
                .await
                .unwrap()),
            [gemini.id, old.id, gpt.id]
        );
        assert_eq!(
            ids(store
                .list_model_configs(ModelConfigFilter::Enabled)
                .await
                .unwrap()),
            [gemini.id, gpt.id]
        );
        // A disabled provider hides its models from users.
        let disable = UpdateChatProviderConfigRequest {
            enabled: Some(false),
            ..Default::default()
        };
        store
            .update_provider_config(google, &disable, &no_keys(), &kr)
            .await
            .unwrap();
        assert_eq!(
            ids(store
                .list_model_configs(ModelConfigFilter::Enabled)
                .await
                .unwrap()),
            [gpt.id]
        );
    })
    .await;
}

#[tokio::test]
async fn exactly_one_default_model() {
    on_each_backend(|store| async move {
        let env = no_keys().with_api_key(Provider::OpenAi, "sk-env").unwrap();
        assert_eq!(store.default_model_config().await.unwrap(), None);
        let mut off = model_req("openai", "disabled-first");
        off.enabled = Some(false);
        let disabled = add_model(&store, &env, off).await;
        assert!(
            !disabled.is_default,
            "a disabled model never becomes the default"
        );
        let a = add_model(&store, &env, model_req("openai", "a")).await;
        assert!(a.is_default, "the first enabled model becomes the default");
        let b = add_model(&store, &env, model_req("openai", "b")).await;
        assert!(!b.is_default);
        let mut c_req = model_req("openai", "c");
        c_req.is_default = Some(true);
        let c = add_model(&store, &env, c_req).await;
        assert!(c.is_default);
        assert!(!store.get_model_config(a.id).await.unwrap().is_default);
        assert_eq!(live_defaults(&store).await, [c.id.to_string()]);

        // Switching the default with an update clears the old one in the same transaction.
        let make_b = UpdateChatModelConfigRequest {
            is_default: Some(true),
            ..Default::default()
        };
        let b = store
            .update_model_config(b.id, &make_b, &env)
            .await
            .unwrap();
        assert!(b.is_default);
        assert_eq!(live_defaults(&store).await, [b.id.to_string()]);
        assert_eq!(store.default_model_config().await.unwrap(), Some(b.clone()));

        // The default can be replaced, not unset or disabled.
        for (req, field) in [
            (
                UpdateChatModelConfigRequest {
                    is_default: Some(false),
                    ..Default::default()
                },
                "is_default",
            ),
            (
                UpdateChatModelConfigRequest {
                    enabled: Some(false),
                    ..Default::default()
                },
                "enabled",
            ),
        ] {
            let e = store
                .update_model_config(b.id, &req, &env)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert_eq!(fields(&e), [field]);
        }
        let e = store
            .update_model_config(disabled.id, &make_b, &env)
            .await
            .unwrap_err();
        assert_eq!(
            fields(&e),
            ["is_default"],
            "a disabled model cannot become default"
        );
        let mut bad = model_req("openai", "d");
        bad.is_default = Some(true);
        bad.enabled = Some(false);
        let valid = codersdk::validate_create_model_config(&bad).unwrap();
        assert_eq!(
            store
                .create_model_config(&valid, &env)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(live_defaults(&store).await, [b.id.to_string()]);

        // Deleting the default re-selects the most recently updated enabled model.
        let touch = UpdateChatModelConfigRequest {
            display_name: Some("A".into()),
            ..Default::default()
        };
        store.update_model_config(a.id, &touch, &env).await.unwrap();
        let gone = store.delete_model_config(b.id).await.unwrap();
        assert_eq!(gone.new_default_model_config_id, Some(a.id));
        assert!(store.get_model_config(a.id).await.unwrap().is_default);
        // Deleting a non-default changes nothing.
        let gone = store.delete_model_config(c.id).await.unwrap();
        assert_eq!(gone.new_default_model_config_id, None);
        // Only a disabled model left: no default.
        let gone = store.delete_model_config(a.id).await.unwrap();
        assert_eq!(gone.new_default_model_config_id, None);
        assert!(live_defaults(&store).await.is_empty());
        assert_eq!(
            store.delete_model_config(a.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_default_switches_leave_one_default() {
    on_each_backend(|store| async move {
        let env = no_keys().with_api_key(Provider::OpenAi, "sk-env").unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let env = env.clone();
            tasks.push(tokio::spawn(async move {
                let mut req = model_req("openai", &format!("m{i}"));
                req.is_default = Some(true);
                let valid = codersdk::validate_create_model_config(&req).unwrap();
                store.create_model_config(&valid, &env).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(live_defaults(&store).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_bound_to_their_row() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let f = fixture(&store).await;
        let bob = second_user(&store).await;
        let openai = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("openai", CENTRAL, true, true, true),
        )
        .await;
        let anthropic = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("anthropic", "ant-central-key-000", true, true, false),
        )
        .await;
        store
            .set_user_provider_key(f.user, openai, &SecretString::new(USER), &kr, &no_keys())
            .await
            .unwrap();
        store
            .set_user_provider_key(
                bob,
                openai,
                &SecretString::new("sk-bob-key-000"),
                &kr,
                &no_keys(),
            )
            .await
            .unwrap();

        // Raw columns hold sealed text only.
        let sealed_central = raw_provider_key(&store, openai).await.unwrap();
        let sealed_user = raw_user_key(&store, f.user, openai).await;
        for sealed in [&sealed_central, &sealed_user] {
            assert!(sealed.starts_with("v1:k1:"), "{sealed}");
            assert!(!sealed.contains(CENTRAL) && !sealed.contains(USER));
            assert!(!sealed.contains("sk-"), "{sealed}");
        }
        let dump: Vec<String> = sqlx::query_scalar(
            "SELECT COALESCE(api_key_sealed, '') FROM provider_configs \
             UNION ALL SELECT api_key_sealed FROM user_provider_keys",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(dump.len(), 4);
        assert!(dump
            .iter()
            .all(|v| !v.contains("sk-") && !v.contains("ant-")));
        // The associated data names the row; opening with it works.
        assert_eq!(
            kr.decrypt_secret(&sealed_central, provider_key_aad(openai).as_bytes())
                .unwrap()
                .expose(),
            CENTRAL
        );
        assert_eq!(
            kr.decrypt_secret(&sealed_user, user_key_aad(f.user, openai).as_bytes())
                .unwrap()
                .expose(),
            USER
        );

        // A central key copied into another provider's row fails to open.
        sqlx::query("UPDATE provider_configs SET api_key_sealed = $1 WHERE id = $2")
            .bind(&sealed_central)
            .bind(anthropic.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let e = store.configured_providers(&kr).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DecryptionFailed);
        assert!(!e.to_string().contains(CENTRAL));
        // So does a user's key copied into another user's row.
        sqlx::query(
            "UPDATE user_provider_keys SET api_key_sealed = $1 WHERE user_id = $2 \
             AND provider_config_id = $3",
        )
        .bind(&sealed_user)
        .bind(bob.to_string())
        .bind(openai.to_string())
        .execute(store.pool())
        .await
        .unwrap();
        assert_eq!(
            store.user_provider_keys(bob, &kr).await.unwrap_err().kind(),
            ErrorKind::DecryptionFailed
        );
        let mine = store.user_provider_keys(f.user, &kr).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].api_key.expose(), USER);
        // A turn of the victim's provider refuses to run on the moved key rather than
        // falling back to another credential.
        let gpt = add_model(&store, &no_keys(), model_req("openai", "gpt-4o")).await;
        let e = store
            .resolve_turn_model(bob, Some(gpt.id), None, &kr, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DecryptionFailed);
        // A keyring without the sealing key cannot open anything.
        let other = Keyring::new("k2", SecretKey::from_bytes([9; 32])).unwrap();
        let e = store.user_provider_keys(f.user, &other).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownKeyId);
        assert_eq!(e.key_id(), Some("k1"));
    })
    .await;
}

#[tokio::test]
async fn users_bring_their_own_keys_where_allowed() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let f = fixture(&store).await;
        let openai = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("openai", CENTRAL, true, true, true),
        )
        .await;
        let anthropic = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("anthropic", CENTRAL, true, true, false),
        )
        .await;
        let google = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("google", CENTRAL, true, false, false),
        )
        .await;
        let bedrock = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("bedrock", "", true, true, true),
        )
        .await;

        let list = store
            .list_user_provider_configs(f.user, &no_keys())
            .await
            .unwrap();
        let view: Vec<(&str, bool, bool)> = list
            .iter()
            .map(|p| {
                (
                    p.provider.as_str(),
                    p.has_user_api_key,
                    p.has_central_api_key_fallback,
                )
            })
            .collect();
        // Google does not accept user keys; Bedrock falls back on ambient credentials.
        assert_eq!(
            view,
            [
                ("anthropic", false, false),
                ("bedrock", false, true),
                ("openai", false, true)
            ]
        );
        assert_eq!(list[2].provider_id, openai);
        assert_eq!(list[2].display_name, "OpenAI");

        let set = store
            .set_user_provider_key(
                f.user,
                anthropic,
                &SecretString::new("  ant-user-key  "),
                &kr,
                &no_keys(),
            )
            .await
            .unwrap();
        assert!(set.has_user_api_key && !set.has_central_api_key_fallback);
        // Replacing keeps one row.
        store
            .set_user_provider_key(
                f.user,
                anthropic,
                &SecretString::new("ant-user-2"),
                &kr,
                &no_keys(),
            )
            .await
            .unwrap();
        let keys = store.user_provider_keys(f.user, &kr).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].provider_config_id, anthropic);
        assert_eq!(keys[0].api_key.expose(), "ant-user-2");

        // Refusals: no user keys, blank key, disabled provider, unknown config or user.
        let e = store
            .set_user_provider_key(f.user, google, &SecretString::new("g-key"), &kr, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.to_string(), "Provider does not accept user API keys.");
        let e = store
            .set_user_provider_key(f.user, openai, &SecretString::new("   "), &kr, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(fields(&e), ["api_key"]);
        let disable = UpdateChatProviderConfigRequest {
            enabled: Some(false),
            ..Default::default()
        };
        store
            .update_provider_config(openai, &disable, &no_keys(), &kr)
            .await
            .unwrap();
        let e = store
            .set_user_provider_key(f.user, openai, &SecretString::new(USER), &kr, &no_keys())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "Provider is disabled.");
        let e = store
            .set_user_provider_key(
                f.user,
                Uuid::new_v4(),
                &SecretString::new(USER),
                &kr,
                &no_keys(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = store
            .set_user_provider_key(
                Uuid::new_v4(),
                bedrock,
                &SecretString::new(USER),
                &kr,
                &no_keys(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let listed = store
            .list_user_provider_configs(f.user, &no_keys())
            .await
            .unwrap();
        assert!(listed.iter().all(|p| p.provider != "openai"), "disabled");

        assert!(store
            .delete_user_provider_key(f.user, anthropic)
            .await
            .unwrap());
        assert!(!store
            .delete_user_provider_key(f.user, anthropic)
            .await
            .unwrap());
        assert!(store
            .user_provider_keys(f.user, &kr)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

/// The credential a turn would send, or the chat error kind it fails with.
async fn turn(store: &Store, kr: &Keyring, user: Uuid, model: Uuid) -> TurnModel {
    store
        .resolve_turn_model(user, Some(model), None, kr, &no_keys())
        .await
        .unwrap()
}

fn outcome(turn: &TurnModel) -> Result<Option<String>, ChatErrorKind> {
    match turn.credentials() {
        Ok(c) => Ok(c.api_key().map(str::to_owned)),
        Err(e) => Err(chaterror::classify(&e).kind().cloned().unwrap()),
    }
}

#[tokio::test]
async fn turn_credentials_follow_the_key_policy() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let f = fixture(&store).await;
        // Rows of the core.md §E.3 truth table, end to end: (C, K, U, F, H) per provider.
        // openai: C=1 K=1 U=0 — central key, a user key is ignored.
        let openai = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("openai", CENTRAL, true, false, false),
        )
        .await;
        // anthropic: C=1 K=1 U=1 F=0 — the user must bring a key.
        let anthropic = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("anthropic", CENTRAL, true, true, false),
        )
        .await;
        // openrouter: C=1 K=1 U=1 F=1 — user key when there is one, else central.
        let openrouter = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("openrouter", CENTRAL, true, true, true),
        )
        .await;
        // bedrock: C=1 K=0 U=0 — ambient credentials.
        add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("bedrock", "", true, false, false),
        )
        .await;
        // vercel: C=0 U=1 — user keys only.
        let vercel = add_provider(
            &store,
            &kr,
            &no_keys(),
            provider_req("vercel", "", false, true, false),
        )
        .await;
        let gpt = add_model(&store, &no_keys(), model_req("openai", "gpt-4o")).await;
        let claude = add_model(&store, &no_keys(), model_req("anthropic", "claude-x")).await;
        let routed = add_model(&store, &no_keys(), model_req("openrouter", "x/y")).await;
        let nova = add_model(&store, &no_keys(), model_req("bedrock", "nova")).await;
        let v0 = add_model(&store, &no_keys(), model_req("vercel", "v0")).await;

        let t = turn(&store, &kr, f.user, gpt.id).await;
        assert_eq!(outcome(&t), Ok(Some(CENTRAL.to_owned())));
        assert!(matches!(
            t.credential_source(),
            Some(CredentialSource::Central { .. })
        ));
        assert_eq!(t.provider(), Some(Provider::OpenAi));
        assert_eq!(t.provider_config.as_ref().map(|p| p.id), Some(openai));
        assert!(!format!("{t:?}").contains(CENTRAL));

        let t = turn(&store, &kr, f.user, claude.id).await;
        assert_eq!(outcome(&t), Err(ChatErrorKind::MissingKey));
        assert_eq!(
            t.unavailable_reason(),
            Some(UnavailableReason::UserApiKeyRequired)
        );
        let t = turn(&store, &kr, f.user, routed.id).await;
        assert_eq!(outcome(&t), Ok(Some(CENTRAL.to_owned())));
        let t = turn(&store, &kr, f.user, nova.id).await;
        assert_eq!(outcome(&t), Ok(None), "ambient");
        assert!(t.credentials().unwrap().is_ambient());
        let t = turn(&store, &kr, f.user, v0.id).await;
        assert_eq!(
            t.unavailable_reason(),
            Some(UnavailableReason::UserApiKeyRequired)
        );

        // The user brings keys: used where allowed, ignored where not.
        for provider in [anthropic, openrouter, vercel] {
            store
                .set_user_provider_key(f.user, provider, &SecretString::new(USER), &kr, &no_keys())
                .await
                .unwrap();
        }
        for model in [claude.id, routed.id, v0.id] {
            let t = turn(&store, &kr, f.user, model).await;
            assert_eq!(outcome(&t), Ok(Some(USER.to_owned())));
            assert!(matches!(
                t.credential_source(),
                Some(CredentialSource::User { .. })
            ));
            assert_eq!(t.unavailable_reason(), None);
        }
        let allow = UpdateChatProviderConfigRequest {
            allow_user_api_key: Some(false),
            ..Default::default()
        };
        store
            .update_provider_config(anthropic, &allow, &no_keys(), &kr)
            .await
            .unwrap();
        assert_eq!(
            outcome(&turn(&store, &kr, f.user, claude.id).await),
            Ok(Some(CENTRAL.to_owned()))
        );

        // Another user of the same deployment gets the central key of openrouter.
        let bob = second_user(&store).await;
        let t = store
            .resolve_turn_model(bob, Some(routed.id), None, &kr, &no_keys())
            .await
            .unwrap();
        assert_eq!(outcome(&t), Ok(Some(CENTRAL.to_owned())));

        // A disabled provider is reported as such, classified provider_disabled.
        let disable = UpdateChatProviderConfigRequest {
            enabled: Some(false),
            ..Default::default()
        };
        store
            .update_provider_config(openai, &disable, &no_keys(), &kr)
            .await
            .unwrap();
        let t = turn(&store, &kr, f.user, gpt.id).await;
        assert_eq!(outcome(&t), Err(ChatErrorKind::ProviderDisabled));
        assert_eq!(
            t.unavailable_reason(),
            Some(UnavailableReason::ProviderDisabled)
        );
    })
    .await;
}

#[tokio::test]
async fn deployment_keys_back_the_central_key() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let f = fixture(&store).await;
        let env = no_keys()
            .with_api_key(Provider::OpenAi, "sk-env-key-0000")
            .unwrap()
            .with_api_key(Provider::Anthropic, "ant-env-key-0000")
            .unwrap();
        // openai is configured in central mode without a stored key: the deployment key.
        add_provider(
            &store,
            &kr,
            &env,
            provider_req("openai", "", true, false, false),
        )
        .await;
        let gpt = add_model(&store, &env, model_req("openai", "gpt-4o")).await;
        // anthropic is not configured at all: an environment preset.
        let claude = add_model(&store, &env, model_req("anthropic", "claude-x")).await;
        let t = store
            .resolve_turn_model(f.user, Some(gpt.id), None, &kr, &env)
            .await
            .unwrap();
        assert_eq!(outcome(&t), Ok(Some("sk-env-key-0000".to_owned())));
        let t = store
            .resolve_turn_model(f.user, Some(claude.id), None, &kr, &env)
            .await
            .unwrap();
        assert!(t.provider_config.is_none());
        assert_eq!(outcome(&t), Ok(Some("ant-env-key-0000".to_owned())));
        assert_eq!(t.unavailable_reason(), None);
        // Without the deployment keys the same turns have no key.
        let t = store
            .resolve_turn_model(f.user, Some(claude.id), None, &kr, &no_keys())
            .await
            .unwrap();
        assert_eq!(outcome(&t), Err(ChatErrorKind::MissingKey));
        assert_eq!(
            t.unavailable_reason(),
            Some(UnavailableReason::MissingApiKey)
        );

        // The catalogue view of the same policy covers every configured provider.
        let resolved = store
            .resolve_provider_keys(f.user, &kr, &env)
            .await
            .unwrap();
        assert!(resolved.is_available("openai"));
        assert_eq!(resolved.api_key("openai"), Some("sk-env-key-0000"));
    })
    .await;
}

#[tokio::test]
async fn model_resolution_order_and_fallbacks() {
    on_each_backend(|store| async move {
        let kr = keyring();
        let f = fixture(&store).await;
        let env = no_keys().with_api_key(Provider::OpenAi, "sk-env").unwrap();
        // No model configs at all.
        for policy in [
            UnusableRequestedModel::Reject,
            UnusableRequestedModel::FallBack,
        ] {
            let e = store
                .resolve_model_config(None, None, policy)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NoDefaultModelConfig);
            assert_eq!(e.to_string(), NO_DEFAULT_MODEL_CONFIG_MESSAGE);
            assert_eq!(e.http_status(), 400);
        }
        let e = store
            .resolve_turn_model(f.user, None, None, &kr, &env)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoDefaultModelConfig);

        let default = add_model(&store, &env, model_req("openai", "default")).await;
        let last = add_model(&store, &env, model_req("openai", "last")).await;
        let asked = add_model(&store, &env, model_req("openai", "asked")).await;
        let mut off = model_req("openai", "off");
        off.enabled = Some(false);
        let off = add_model(&store, &env, off).await;
        let unknown = Uuid::new_v4();

        let pick = |requested: Option<Uuid>, chat_last: Option<Uuid>, policy| {
            let store = store.clone();
            async move {
                store
                    .resolve_model_config(requested, chat_last, policy)
                    .await
                    .map(|r| (r.config.id, r.source))
                    .map_err(|e| (e.kind(), e.to_string()))
            }
        };
        use ModelConfigSource::{ChatLast, Default, Requested};
        use UnusableRequestedModel::{FallBack, Reject};
        assert_eq!(
            pick(Some(asked.id), Some(last.id), Reject).await,
            Ok((asked.id, Requested))
        );
        assert_eq!(
            pick(None, Some(last.id), Reject).await,
            Ok((last.id, ChatLast))
        );
        assert_eq!(pick(None, None, Reject).await, Ok((default.id, Default)));
        // A requested model that is disabled or unknown: refused for sends…
        for bad in [off.id, unknown] {
            assert_eq!(
                pick(Some(bad), Some(last.id), Reject).await,
                Err((
                    ErrorKind::InvalidArgument,
                    INVALID_MODEL_CONFIG_MESSAGE.to_owned()
                ))
            );
            // …skipped for turns.
            assert_eq!(
                pick(Some(bad), Some(last.id), FallBack).await,
                Ok((last.id, ChatLast))
            );
            assert_eq!(
                pick(Some(bad), None, FallBack).await,
                Ok((default.id, Default))
            );
        }
        // An unusable chat model is always skipped.
        assert_eq!(
            pick(None, Some(off.id), Reject).await,
            Ok((default.id, Default))
        );
        store.delete_model_config(last.id).await.unwrap();
        assert_eq!(
            pick(None, Some(last.id), Reject).await,
            Ok((default.id, Default))
        );

        let t = store
            .resolve_turn_model(f.user, Some(off.id), Some(asked.id), &kr, &env)
            .await
            .unwrap();
        assert_eq!(t.model_config.id, asked.id);
        assert_eq!(t.source, ChatLast);
        assert_eq!(t.call_config, ChatModelCallConfig::default());

        // With the default's provider deleted, its models and the default are gone.
        store.delete_model_config(default.id).await.unwrap();
        assert_eq!(
            store.default_model_config().await.unwrap().map(|m| m.id),
            Some(asked.id)
        );
        store.delete_model_config(asked.id).await.unwrap();
        let e = store
            .resolve_turn_model(f.user, Some(off.id), Some(asked.id), &kr, &env)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoDefaultModelConfig);
    })
    .await;
}

#[tokio::test]
async fn rotation_reseals_every_secret_under_the_active_key() {
    on_each_backend(|store| async move {
        let old = Keyring::new("k1", SecretKey::from_bytes([7; 32])).unwrap();
        let f = fixture(&store).await;
        let bob = second_user(&store).await;
        let openai = add_provider(
            &store,
            &old,
            &no_keys(),
            provider_req("openai", CENTRAL, true, true, true),
        )
        .await;
        let google = add_provider(
            &store,
            &old,
            &no_keys(),
            provider_req("google", "g-central-key-000", true, false, false),
        )
        .await;
        add_provider(
            &store,
            &old,
            &no_keys(),
            provider_req("bedrock", "", true, false, false),
        )
        .await;
        store
            .set_user_provider_key(f.user, openai, &SecretString::new(USER), &old, &no_keys())
            .await
            .unwrap();
        store
            .set_user_provider_key(
                bob,
                openai,
                &SecretString::new("sk-bob-key-000"),
                &old,
                &no_keys(),
            )
            .await
            .unwrap();

        // Step 1 of docs/secrets.md: the new key active, the old one kept.
        let mut both = Keyring::new("k2", SecretKey::from_bytes([8; 32])).unwrap();
        both.add_key("k1", SecretKey::from_bytes([7; 32])).unwrap();
        // One row is damaged: it is reported, the others are still rotated.
        let google_sealed = raw_provider_key(&store, google).await.unwrap();
        let mut damaged = google_sealed.clone();
        let last = damaged.pop().unwrap();
        damaged.push(if last == 'A' { 'B' } else { 'A' });
        sqlx::query("UPDATE provider_configs SET api_key_sealed = $1 WHERE id = $2")
            .bind(&damaged)
            .bind(google.to_string())
            .execute(store.pool())
            .await
            .unwrap();

        let report = store.rotate_secrets(&both).await.unwrap();
        assert_eq!(report.rotated, 3, "{report:?}");
        assert_eq!(report.already_current, 0);
        assert_eq!(report.changed_concurrently, 0);
        assert!(!report.is_complete());
        assert_eq!(report.failures.len(), 1);
        let failure = &report.failures[0];
        assert_eq!(failure.column, SecretColumn::ProviderApiKey);
        assert_eq!(failure.provider_config_id, google);
        assert_eq!(failure.user_id, None);
        assert_eq!(failure.kind, ErrorKind::DecryptionFailed);

        for sealed in [
            raw_provider_key(&store, openai).await.unwrap(),
            raw_user_key(&store, f.user, openai).await,
            raw_user_key(&store, bob, openai).await,
        ] {
            assert!(sealed.starts_with("v1:k2:"), "{sealed}");
        }
        assert!(raw_provider_key(&store, google)
            .await
            .unwrap()
            .starts_with("v1:k1:"));

        // Step 3: with the damaged row cleared, the new key alone opens everything.
        sqlx::query("UPDATE provider_configs SET api_key_sealed = NULL WHERE id = $1")
            .bind(google.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let new_only = Keyring::new("k2", SecretKey::from_bytes([8; 32])).unwrap();
        let providers = store.configured_providers(&new_only).await.unwrap();
        let row = providers.iter().find(|p| p.id == openai).unwrap();
        assert_eq!(row.api_key.expose(), CENTRAL);
        let keys = store.user_provider_keys(f.user, &new_only).await.unwrap();
        assert_eq!(keys[0].api_key.expose(), USER);

        // Re-running is cheap: nothing is decrypted or written.
        let again = store.rotate_secrets(&new_only).await.unwrap();
        assert_eq!(again.rotated, 0);
        assert_eq!(again.already_current, 3);
        assert!(again.is_complete());

        // A keyring lacking the sealing key reports every row, naming the key.
        let stranger = Keyring::new("k3", SecretKey::from_bytes([9; 32])).unwrap();
        let report = store.rotate_secrets(&stranger).await.unwrap();
        assert_eq!(report.failures.len(), 3);
        assert!(report
            .failures
            .iter()
            .all(|f| f.kind == ErrorKind::UnknownKeyId && f.key_id.as_deref() == Some("k2")));
        let users: Vec<_> = report
            .failures
            .iter()
            .filter(|f| f.column == SecretColumn::UserProviderKey)
            .filter_map(|f| f.user_id)
            .collect();
        assert_eq!(users.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn deployment_and_personal_prompts() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let initial = store.system_prompt_config().await.unwrap();
        assert_eq!(initial.system_prompt, "");
        assert_eq!(
            initial.include_default_system_prompt,
            DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT
        );
        let set = store
            .set_system_prompt_config("  Be brief.\r\nCite sources.\u{0}  ", Some(false))
            .await
            .unwrap();
        assert_eq!(set.system_prompt, "Be brief.\nCite sources.");
        assert!(!set.include_default_system_prompt);
        // The toggle is unchanged when absent.
        let kept = store
            .set_system_prompt_config("Other.", None)
            .await
            .unwrap();
        assert!(!kept.include_default_system_prompt);
        assert_eq!(store.system_prompt_config().await.unwrap(), kept);
        // The deployment limit, at its edge.
        let at_limit = "x".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES);
        let stored = store
            .set_system_prompt_config(&at_limit, Some(true))
            .await
            .unwrap();
        assert_eq!(
            stored.system_prompt.len(),
            MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES
        );
        let e = store
            .set_system_prompt_config(&format!("{at_limit}x"), Some(false))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(fields(&e), ["system_prompt"]);
        assert!(
            store
                .system_prompt_config()
                .await
                .unwrap()
                .include_default_system_prompt
        );

        // Personal prompts.
        assert_eq!(store.user_prompt(f.user).await.unwrap(), "");
        let p = store
            .set_user_prompt(f.user, " Answer in French. ")
            .await
            .unwrap();
        assert_eq!(p, "Answer in French.");
        assert_eq!(
            store.user_prompt(f.user).await.unwrap(),
            "Answer in French."
        );
        let bob = second_user(&store).await;
        assert_eq!(store.user_prompt(bob).await.unwrap(), "", "per user");
        // Counted in characters, at the edge.
        let at_limit = "é".repeat(MAX_USER_PROMPT_CHARS);
        assert_eq!(
            store.set_user_prompt(f.user, &at_limit).await.unwrap(),
            at_limit
        );
        let e = store
            .set_user_prompt(f.user, &format!("{at_limit}é"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(fields(&e), ["custom_prompt"]);
        assert_eq!(store.user_prompt(f.user).await.unwrap(), at_limit);
        // Blank removes it.
        assert_eq!(store.set_user_prompt(f.user, " \n ").await.unwrap(), "");
        assert_eq!(store.user_prompt(f.user).await.unwrap(), "");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_prompts")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 0);
        let e = store
            .set_user_prompt(Uuid::new_v4(), "hi")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    })
    .await;
}
