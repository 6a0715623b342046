//! The hot-config cache (docs/engine-design.md "The hot-config cache"): a warm turn reads
//! no configuration from the database; the store's own writes are seen at once; writes
//! behind the store's back are seen after an invalidation; every `Admin` write announces
//! what it changed; on PostgreSQL another replica's write reaches this replica's cache
//! through the relay, and a lost `LISTEN` connection clears it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatd_core::configcache::ConfigCache;
use chatd_core::store::Store;
use chatd_core::{Actor, Admin, ConfigChange, Keyring, SecretKey};
use chatd_test_support::db::{
    fixture, on_each_backend, postgres_url, Backend, Fixture, RawSql, TestDatabase,
};
use chatprovider::ProviderApiKeys;
use codersdk::{
    ChatModelConfig, ChatModelOverrideContext, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateUserChatProviderKeyRequest, SecretString,
    UpdateChatModelOverrideRequest, UpdateUserChatCompactionThresholdRequest, UserChatCustomPrompt,
    Uuid,
};

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new("k1", SecretKey::from_bytes([3; 32])).unwrap())
}

/// What the tests configure: one provider whose users may bring their own key, two
/// model configs (the first the default), and an admin handle over the store.
struct Setup {
    admin: Admin,
    keyring: Arc<Keyring>,
    f: Fixture,
    root: Actor,
    provider: Uuid,
    models: Vec<ChatModelConfig>,
}

async fn setup(store: &Store) -> Setup {
    let keyring = keyring();
    let admin = Admin::new(store.clone(), Arc::clone(&keyring), ProviderApiKeys::new());
    let f = fixture(store).await;
    let root = Actor::admin(Uuid::new_v4());
    let provider = admin
        .create_provider(
            &root,
            &CreateChatProviderConfigRequest {
                provider: "openai".into(),
                api_key: Some(SecretString::new("sk-central-not-a-key")),
                allow_user_api_key: Some(true),
                allow_central_api_key_fallback: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut models = Vec::new();
    for model in ["gpt-4o", "gpt-4.1"] {
        let req = CreateChatModelConfigRequest {
            provider: "openai".into(),
            model: model.into(),
            context_limit: Some(128_000),
            ..Default::default()
        };
        models.push(admin.create_model_config(&root, &req).await.unwrap());
    }
    Setup {
        admin,
        keyring,
        f,
        root,
        provider: provider.id,
        models,
    }
}

/// Every configuration read a turn makes (the model and its keys, a side model, the
/// prompts, the owner's threshold), as the engine makes them.
async fn turn_reads(store: &Store, s: &Setup, gone: Uuid) {
    let keys = ProviderApiKeys::new();
    let model = store
        .resolve_turn_model(s.f.user, None, Some(s.models[1].id), &s.keyring, &keys)
        .await
        .unwrap();
    assert_eq!(model.model_config.id, s.models[1].id);
    // A chat whose last model is gone runs on the default.
    let model = store
        .resolve_turn_model(s.f.user, Some(gone), Some(gone), &s.keyring, &keys)
        .await
        .unwrap();
    assert_eq!(model.model_config.id, s.models[0].id);
    for context in [
        ChatModelOverrideContext::Compaction,
        ChatModelOverrideContext::TitleGeneration,
        ChatModelOverrideContext::General,
    ] {
        store.usable_model_override(&context).await.unwrap();
    }
    store.cached_system_prompt_config().await.unwrap();
    store.cached_plan_mode_instructions().await.unwrap();
    store.cached_user_prompt(s.f.user).await.unwrap();
    store
        .user_compaction_threshold(s.f.user, s.models[1].id)
        .await
        .unwrap();
    assert!(s.admin.is_configured().await.unwrap());
}

/// A warm turn's configuration reads are all answered from memory: the database is not
/// asked once. The cold reads are counted too (each load is one query).
#[tokio::test]
async fn a_warm_turn_reads_no_configuration_from_the_database() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let actor = Actor::user(s.f.user);
        s.admin
            .set_user_provider_key(
                &actor,
                s.provider,
                &CreateUserChatProviderKeyRequest {
                    api_key: SecretString::new("sk-own-not-a-key"),
                },
            )
            .await
            .unwrap();
        s.admin
            .set_user_prompt(
                &actor,
                &UserChatCustomPrompt {
                    custom_prompt: "Answer briefly.".into(),
                },
            )
            .await
            .unwrap();
        let gone = Uuid::new_v4();
        let cache = store.config_cache();
        cache.clear();
        let before = cache.stats();
        turn_reads(&store, &s, gone).await;
        let cold = cache.stats();
        turn_reads(&store, &s, gone).await;
        let warm = cache.stats();
        eprintln!(
            "configuration reads of two turn set-ups: cold {} loads, warm {} loads ({} hits)",
            cold.loads - before.loads,
            warm.loads - cold.loads,
            warm.hits - cold.hits
        );
        assert!(cold.loads - before.loads >= 10, "{before:?} {cold:?}");
        assert_eq!(warm.loads, cold.loads, "a warm turn loads nothing");
        // The owner's own key is the one the policy picked, opened from the cached
        // sealed text.
        let model = store
            .resolve_turn_model(
                s.f.user,
                None,
                Some(s.models[0].id),
                &s.keyring,
                &ProviderApiKeys::new(),
            )
            .await
            .unwrap();
        let credential = model.credential_source().unwrap();
        assert!(
            matches!(credential, chatprovider::CredentialSource::User { .. }),
            "{credential:?}"
        );
        // Nothing cached shows a key or a prompt.
        let shown = format!("{store:?} {cache:?}");
        for secret in ["sk-own", "sk-central", "Answer briefly"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    })
    .await;
}

/// The store's own writes drop what they changed after commit: the next read, of this
/// process, sees them at once. A write behind the store's back (SQL by hand) is not
/// seen until the change is applied (or the TTL runs out).
#[tokio::test]
async fn writes_are_seen_at_once_and_others_after_an_invalidation() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let user = s.f.user;
        let actor = Actor::user(user);
        assert_eq!(store.cached_user_prompt(user).await.unwrap(), "");
        // The user's own write: their next turn sees it.
        store.set_user_prompt(user, "first").await.unwrap();
        assert_eq!(store.cached_user_prompt(user).await.unwrap(), "first");
        // Behind the store's back: the cached value stays until invalidated.
        sqlx::query("UPDATE user_prompts SET custom_prompt = 'by hand' WHERE user_id = $1")
            .bind(user.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.cached_user_prompt(user).await.unwrap(), "first");
        store
            .config_cache()
            .apply(&ConfigChange::UserPrompt { user_id: user });
        assert_eq!(store.cached_user_prompt(user).await.unwrap(), "by hand");

        // Thresholds.
        assert_eq!(
            store
                .user_compaction_threshold(user, s.models[0].id)
                .await
                .unwrap(),
            None
        );
        s.admin
            .set_user_compaction_threshold(
                &actor,
                s.models[0].id,
                &UpdateUserChatCompactionThresholdRequest {
                    threshold_percent: 40,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .user_compaction_threshold(user, s.models[0].id)
                .await
                .unwrap(),
            Some(40)
        );
        s.admin
            .delete_user_compaction_threshold(&actor, s.models[0].id)
            .await
            .unwrap();
        assert_eq!(
            store
                .user_compaction_threshold(user, s.models[0].id)
                .await
                .unwrap(),
            None
        );

        // A new default is used by the next turn that falls back to the default.
        let keys = ProviderApiKeys::new();
        let turn = |last| {
            let store = store.clone();
            let keyring = Arc::clone(&s.keyring);
            let keys = keys.clone();
            async move {
                store
                    .resolve_turn_model(user, None, Some(last), &keyring, &keys)
                    .await
                    .unwrap()
                    .model_config
                    .id
            }
        };
        let gone = Uuid::new_v4();
        assert_eq!(turn(gone).await, s.models[0].id);
        s.admin
            .update_model_config(
                &s.root,
                s.models[1].id,
                &codersdk::UpdateChatModelConfigRequest {
                    is_default: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(turn(gone).await, s.models[1].id);
        // A disabled model is skipped by the next turn.
        s.admin
            .update_model_config(
                &s.root,
                s.models[0].id,
                &codersdk::UpdateChatModelConfigRequest {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(turn(s.models[0].id).await, s.models[1].id);

        // Overrides.
        let title = ChatModelOverrideContext::TitleGeneration;
        assert!(store.usable_model_override(&title).await.unwrap().is_none());
        s.admin
            .set_model_override(
                &s.root,
                &title,
                &UpdateChatModelOverrideRequest {
                    model_config_id: s.models[1].id.to_string(),
                },
            )
            .await
            .unwrap();
        let used = store.usable_model_override(&title).await.unwrap().unwrap();
        assert_eq!(used.id, s.models[1].id);

        // A provider disabled: the next turn's credentials say so.
        s.admin
            .update_provider(
                &s.root,
                s.provider,
                &codersdk::UpdateChatProviderConfigRequest {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let model = store
            .resolve_turn_model(user, None, None, &s.keyring, &keys)
            .await
            .unwrap();
        assert_eq!(
            model.unavailable_reason(),
            Some(chatprovider::UnavailableReason::ProviderDisabled)
        );
    })
    .await;
}

/// Every `Admin` write that changes what a turn reads announces it, naming the user for
/// per-user settings.
#[tokio::test]
async fn admin_writes_announce_what_they_changed() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let heard: Arc<Mutex<Vec<ConfigChange>>> = Arc::default();
        let sink = Arc::clone(&heard);
        s.admin.on_config_change(Arc::new(move |change| {
            sink.lock().unwrap().push(change);
        }));
        let user = s.f.user;
        let actor = Actor::user(user);
        let take = || std::mem::take(&mut *heard.lock().unwrap());
        s.admin
            .set_user_provider_key(
                &actor,
                s.provider,
                &CreateUserChatProviderKeyRequest {
                    api_key: SecretString::new("sk-own-not-a-key"),
                },
            )
            .await
            .unwrap();
        s.admin
            .delete_user_provider_key(&actor, s.provider)
            .await
            .unwrap();
        assert_eq!(
            take(),
            vec![ConfigChange::UserProviderKeys { user_id: user }; 2]
        );
        s.admin
            .set_user_compaction_threshold(
                &actor,
                s.models[0].id,
                &UpdateUserChatCompactionThresholdRequest {
                    threshold_percent: 50,
                },
            )
            .await
            .unwrap();
        s.admin
            .delete_user_compaction_threshold(&actor, s.models[0].id)
            .await
            .unwrap();
        assert_eq!(
            take(),
            vec![ConfigChange::UserCompactionThresholds { user_id: user }; 2]
        );
        s.admin
            .set_user_prompt(
                &actor,
                &UserChatCustomPrompt {
                    custom_prompt: "p".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(take(), vec![ConfigChange::UserPrompt { user_id: user }]);
        // A refused write announces nothing.
        let refused = s
            .admin
            .set_user_compaction_threshold(
                &actor,
                s.models[0].id,
                &UpdateUserChatCompactionThresholdRequest {
                    threshold_percent: 101,
                },
            )
            .await;
        assert!(refused.is_err());
        assert_eq!(take(), Vec::new());
    })
    .await;
}

/// Two replicas, each with its own store (and cache) on one PostgreSQL schema: a write on
/// one reaches the other's cache through the relay; a lost `LISTEN` connection clears the
/// cache (changes may have been missed meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_writes_reach_this_replicas_cache() {
    if postgres_url().is_none() {
        eprintln!("CHATD_TEST_DATABASE_URL is not set: this PostgreSQL-only test ran nothing");
        return;
    }
    let db = TestDatabase::create(Backend::Postgres).await;
    let store_a = db.connect_store().await;
    let store_b = db.connect_store().await;
    let s = setup(&store_a).await;
    let engine_a = replica(&store_a).await;
    let engine_b = replica(&store_b).await;
    s.admin.on_config_change(engine_a.config_announcer());
    let user = s.f.user;
    let actor = Actor::user(user);
    s.admin
        .set_user_prompt(
            &actor,
            &UserChatCustomPrompt {
                custom_prompt: "old".into(),
            },
        )
        .await
        .unwrap();
    // B caches the prompt.
    assert_eq!(store_b.cached_user_prompt(user).await.unwrap(), "old");
    s.admin
        .set_user_prompt(
            &actor,
            &UserChatCustomPrompt {
                custom_prompt: "new".into(),
            },
        )
        .await
        .unwrap();
    wait_for("B sees the new prompt", || {
        let store_b = store_b.clone();
        async move { store_b.cached_user_prompt(user).await.unwrap() == "new" }
    })
    .await;
    // A new default reaches B's next turn.
    let keys = ProviderApiKeys::new();
    let gone = Uuid::new_v4();
    let default_on_b = || {
        let store_b = store_b.clone();
        let keyring = Arc::clone(&s.keyring);
        let keys = keys.clone();
        async move {
            store_b
                .resolve_turn_model(user, None, Some(gone), &keyring, &keys)
                .await
                .unwrap()
                .model_config
                .id
        }
    };
    assert_eq!(default_on_b().await, s.models[0].id);
    s.admin
        .update_model_config(
            &s.root,
            s.models[1].id,
            &codersdk::UpdateChatModelConfigRequest {
                is_default: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let new_default = s.models[1].id;
    wait_for("B uses the new default", || {
        let next = default_on_b();
        async move { next.await == new_default }
    })
    .await;

    // Changed by hand (no announcement): B keeps its cached prompt ...
    assert_eq!(store_b.cached_user_prompt(user).await.unwrap(), "new");
    sqlx::query("UPDATE user_prompts SET custom_prompt = 'by hand' WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&db.raw_pool().await)
        .await
        .unwrap();
    assert_eq!(store_b.cached_user_prompt(user).await.unwrap(), "new");
    // ... until its LISTEN connection is lost: it may have missed changes, so the
    // reconnected replica starts from an empty cache.
    let channel = engine_b.notification_channel().unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
    )
    .bind(format!("LISTEN \"{channel}\""))
    .fetch_all(&db.raw_pool().await)
    .await
    .unwrap();
    assert!(!terminated.is_empty());
    wait_for("B re-read after reconnecting", || {
        let store_b = store_b.clone();
        async move { store_b.cached_user_prompt(user).await.unwrap() == "by hand" }
    })
    .await;
    engine_a.shutdown().await;
    engine_b.shutdown().await;
    store_a.close().await;
    store_b.close().await;
    db.remove().await;
}

async fn replica(store: &Store) -> chatd_core::Engine {
    chatd_test_support::scripted::engine_with_config(
        store,
        chatd_test_support::scripted::ScriptedModel::new([]),
        chatd_test_support::scripted::fast_settings(),
        |c| c.with_generated_titles(false),
    )
    .await
}

/// Polls `check` until it holds (or panics after 10 s).
async fn wait_for<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cache's `Debug` shows counts only, also when it holds entries.
#[test]
fn an_empty_cache_shows_counts_only() {
    let cache = ConfigCache::new();
    let shown = format!("{cache:?}");
    assert!(shown.starts_with("ConfigCache {"), "{shown}");
    assert!(cache.is_empty());
}

/// Through the engine: a turn warms the cache, the user changes their personal prompt and
/// an administrator the deployment prompt (both through `Admin`), and the very next turn
/// sends the new prompts; nothing waits for a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_turn_sends_the_prompts_just_written() {
    use chatd_test_support::scripted::{
        create_request, engine_with, fast_settings, is_summary_request, is_title_request,
        wait_status, ScriptedModel,
    };
    use codersdk::{ChatStatus, UpdateChatSystemPromptRequest};
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([]);
        let engine = engine_with(&store, Arc::clone(&model), fast_settings()).await;
        let admin = Admin::new(store.clone(), keyring(), ProviderApiKeys::new());
        admin.on_config_change(engine.config_announcer());
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let root = Actor::admin(Uuid::new_v4());
        let set_prompts = |personal: &'static str, deployment: &'static str| {
            let admin = admin.clone();
            async move {
                admin
                    .set_user_prompt(
                        &actor,
                        &UserChatCustomPrompt {
                            custom_prompt: personal.into(),
                        },
                    )
                    .await
                    .unwrap();
                admin
                    .set_system_prompt(
                        &root,
                        &UpdateChatSystemPromptRequest {
                            system_prompt: deployment.into(),
                            include_default_system_prompt: Some(false),
                        },
                    )
                    .await
                    .unwrap();
            }
        };
        // The system prompt of the last turn request (turn summaries are requests too).
        let last_system = || {
            let requests = model.requests.lock().unwrap();
            requests
                .iter()
                .rev()
                .find(|r| !is_summary_request(r) && !is_title_request(r))
                .unwrap()
                .system
                .join("\n")
        };
        set_prompts("Personal one.", "Deployment one.").await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hello"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let first = last_system();
        assert!(
            first.contains("Personal one.") && first.contains("Deployment one."),
            "{first}"
        );
        assert!(store.config_cache().stats().hits + store.config_cache().stats().loads > 0);

        set_prompts("Personal two.", "Deployment two.").await;
        engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    content: vec![codersdk::ChatInputPart::text("again")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // The send committed `pending`: `waiting` is the end of the second turn.
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let second = last_system();
        assert!(
            second.contains("Personal two.") && second.contains("Deployment two."),
            "{second}"
        );
        assert!(
            !second.contains("Personal one.") && !second.contains("Deployment one."),
            "{second}"
        );
        engine.shutdown().await;
    })
    .await;
}
