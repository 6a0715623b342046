//! The deployment model overrides change what the engine does, through the real
//! `StoreModelResolver` and the real OpenAI client against a local stand-in provider that
//! records which model each request names: `general` picks the model of a new chat that
//! names none, `title_generation` writes the automatic and the requested titles and the
//! turn summaries, and an override that cannot be used (disabled model, no key for the
//! owner) falls back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::title::TITLE_SYSTEM_PROMPT;
use chatd_core::{
    Actor, Engine, EngineConfig, EngineSettings, Keyring, SecretKey, StoreModelResolver,
};
use chatd_test_support::db::{fixture, on_each_backend, Fixture};
use chatd_test_support::replay::{Recorded, ReplayServer, Reply};
use chatprovider::ProviderApiKeys;
use codersdk::{
    ChatInputPart, ChatModelConfig, ChatModelOverrideContext, ChatStatus,
    CreateChatModelConfigRequest, CreateChatProviderConfigRequest, CreateChatRequest, SecretString,
    UpdateChatModelConfigRequest, Uuid,
};
use serde_json::Value;

/// The title the stand-in writes when asked by the title override's model.
const OVERRIDE_TITLE: &str = "Written By The Title Model";
/// The title the stand-in writes when asked by any other model.
const CHAT_MODEL_TITLE: &str = "Written By The Chat Model";
/// The turn summary the stand-in writes when asked by the title override's model.
const OVERRIDE_SUMMARY: &str = "Summarized by title model";
/// The turn summary the stand-in writes when asked by any other model.
const CHAT_MODEL_SUMMARY: &str = "Summarized by chat model";
/// The model the `title_generation` override names.
const TITLE_MODEL: &str = "gpt-4o-mini";

/// One request the stand-in provider (OpenAI-compatible: Chat Completions) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    model: String,
    title: bool,
    summary: bool,
}

/// Whether any string in `value` is one of the title instructions.
fn asks_for_title(value: &Value) -> bool {
    match value {
        Value::String(s) => {
            s == TITLE_SYSTEM_PROMPT || s == chatd_core::CONVERSATION_TITLE_SYSTEM_PROMPT
        }
        Value::Array(items) => items.iter().any(asks_for_title),
        Value::Object(map) => map.values().any(asks_for_title),
        _ => false,
    }
}

/// Whether the first message of `messages` is the turn summary instruction.
fn asks_for_summary(messages: &Value) -> bool {
    messages[0]["content"].as_str() == Some(chatd_core::TURN_SUMMARY_SYSTEM_PROMPT)
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let body = serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {body}\n\n")
}

/// What the stand-in saw in `request`, which must be a Chat Completions request.
fn seen_in(request: &Recorded) -> Seen {
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    let body = request.json_or_null();
    Seen {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        title: asks_for_title(&body["messages"]),
        summary: asks_for_summary(&body["messages"]),
    }
}

/// Answers every Chat Completions request with a one-chunk text stream: a title for title
/// requests and a label for summary requests (which one says which model wrote it), "ok"
/// otherwise.
fn complete(request: &Recorded) -> Option<Reply> {
    let Seen {
        model,
        title,
        summary,
    } = seen_in(request);
    let text = match (title, summary, model == TITLE_MODEL) {
        (true, _, true) => OVERRIDE_TITLE,
        (true, _, false) => CHAT_MODEL_TITLE,
        (false, true, true) => OVERRIDE_SUMMARY,
        (false, true, false) => CHAT_MODEL_SUMMARY,
        (false, false, _) => "ok",
    };
    let mut sse = chunk(
        &model,
        serde_json::json!({"role": "assistant", "content": text}),
        None,
    );
    sse.push_str(&chunk(&model, serde_json::json!({}), Some("stop")));
    sse.push_str("data: [DONE]\n\n");
    Some(Reply::sse(vec![sse.into_bytes()]))
}

struct Setup {
    engine: Engine,
    provider: ReplayServer,
    f: Fixture,
    /// `gpt-4o` (the default), `gpt-4.1`, `gpt-4o-mini` on the stand-in (central key), and
    /// `claude-sonnet-4` on an Anthropic provider that requires users' own keys.
    models: Vec<ChatModelConfig>,
}

async fn setup(store: &Store) -> Setup {
    setup_with(store, |c| c).await
}

/// [`setup`] with the engine's configuration adjusted by `adjust`.
async fn setup_with(store: &Store, adjust: impl FnOnce(EngineConfig) -> EngineConfig) -> Setup {
    let provider = ReplayServer::start_with_responder(Vec::new(), complete).await;
    let base_url = provider.url("/v1");
    let keyring = Arc::new(Keyring::new("k1", SecretKey::from_bytes([7; 32])).unwrap());
    let keys = ProviderApiKeys::new();
    let openai = CreateChatProviderConfigRequest {
        provider: "openai-compat".into(),
        api_key: Some(SecretString::new("sk-test-not-a-key")),
        base_url: Some(base_url),
        ..Default::default()
    };
    // Users must bring their own key, and nobody has: unusable for every owner.
    let anthropic = CreateChatProviderConfigRequest {
        provider: "anthropic".into(),
        central_api_key_enabled: Some(false),
        allow_user_api_key: Some(true),
        ..Default::default()
    };
    for req in [openai, anthropic] {
        let valid = chatprovider::validate_create_provider_request(&req, &keys).unwrap();
        store
            .create_provider_config(&valid, &keyring)
            .await
            .unwrap();
    }
    let mut models = Vec::new();
    for (p, m) in [
        ("openai-compat", "gpt-4o"),
        ("openai-compat", "gpt-4.1"),
        ("openai-compat", TITLE_MODEL),
        ("anthropic", "claude-sonnet-4"),
    ] {
        let req = CreateChatModelConfigRequest {
            provider: p.into(),
            model: m.into(),
            context_limit: Some(128_000),
            ..Default::default()
        };
        let valid = codersdk::validate_create_model_config(&req).unwrap();
        models.push(store.create_model_config(&valid, &keys).await.unwrap());
    }
    assert!(models[0].is_default);
    let resolver = StoreModelResolver::new(store.clone(), keyring, keys);
    let mut settings = EngineSettings::default();
    settings.acquire_interval = Duration::from_millis(50);
    settings.turn_summary_delay = Duration::ZERO;
    let config = EngineConfig::new(StoreOptions::new("unused"), Arc::new(resolver))
        .with_settings(settings)
        .with_generated_titles(true);
    let engine = Engine::with_store(store.clone(), adjust(config))
        .await
        .unwrap();
    let f = fixture(store).await;
    Setup {
        engine,
        provider,
        f,
        models,
    }
}

fn create(f: &Fixture, text: &str, model: Option<Uuid>) -> CreateChatRequest {
    CreateChatRequest {
        organization_id: Some(f.org),
        content: vec![ChatInputPart::text(text)],
        model_config_id: model,
        ..Default::default()
    }
}

/// Polls until `check` holds for the chat (or panics after 10 s).
async fn wait_for(
    engine: &Engine,
    actor: &Actor,
    chat_id: Uuid,
    what: &str,
    check: impl Fn(&codersdk::Chat) -> bool,
) -> codersdk::Chat {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chat = engine.get_chat(actor, chat_id).await.unwrap();
        if check(&chat) {
            return chat;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {chat:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The models the turns (not the titles or summaries) were sent to, in order.
fn turn_models(provider: &ReplayServer) -> Vec<String> {
    let seen: Vec<Seen> = provider.requests().iter().map(seen_in).collect();
    seen.iter()
        .filter(|s| !s.title && !s.summary)
        .map(|s| s.model.clone())
        .collect()
}

fn summary_models(provider: &ReplayServer) -> Vec<String> {
    let seen: Vec<Seen> = provider.requests().iter().map(seen_in).collect();
    seen.iter()
        .filter(|s| s.summary)
        .map(|s| s.model.clone())
        .collect()
}

fn title_models(provider: &ReplayServer) -> Vec<String> {
    let seen: Vec<Seen> = provider.requests().iter().map(seen_in).collect();
    seen.iter()
        .filter(|s| s.title)
        .map(|s| s.model.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_general_override_is_the_model_of_new_chats_that_name_none() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let actor = Actor::user(s.f.user);
        let general = ChatModelOverrideContext::General;
        store
            .set_model_override(&general, &s.models[1].id.to_string())
            .await
            .unwrap();

        let chat = s
            .engine
            .create_chat(&actor, create(&s.f, "first", None))
            .await
            .unwrap();
        assert_eq!(chat.last_model_config_id, s.models[1].id);
        wait_for(&s.engine, &actor, chat.id, "turn", |c| {
            c.status == ChatStatus::Waiting
        })
        .await;
        assert_eq!(turn_models(&s.provider), ["gpt-4.1"]);

        // A chat that names its model gets that model.
        let named = s
            .engine
            .create_chat(&actor, create(&s.f, "second", Some(s.models[2].id)))
            .await
            .unwrap();
        assert_eq!(named.last_model_config_id, s.models[2].id);

        // Disabled: ignored, new chats get the default; the override is still reported.
        let disable = UpdateChatModelConfigRequest {
            enabled: Some(false),
            ..Default::default()
        };
        store
            .update_model_config(s.models[1].id, &disable, &ProviderApiKeys::new())
            .await
            .unwrap();
        let fallback = s
            .engine
            .create_chat(&actor, create(&s.f, "third", None))
            .await
            .unwrap();
        assert_eq!(fallback.last_model_config_id, s.models[0].id);
        let view = store.model_override(&general).await.unwrap();
        assert_eq!(view.model_config_id, s.models[1].id.to_string());

        // Cleared: the default again.
        store.set_model_override(&general, "").await.unwrap();
        let cleared = s
            .engine
            .create_chat(&actor, create(&s.f, "fourth", None))
            .await
            .unwrap();
        assert_eq!(cleared.last_model_config_id, s.models[0].id);
        s.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_title_generation_override_writes_the_automatic_title() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let actor = Actor::user(s.f.user);
        store
            .set_model_override(
                &ChatModelOverrideContext::TitleGeneration,
                &s.models[2].id.to_string(),
            )
            .await
            .unwrap();
        let chat = s
            .engine
            .create_chat(&actor, create(&s.f, "fix the flaky build", None))
            .await
            .unwrap();
        // The chat itself runs on the default; only its title comes from the override.
        assert_eq!(chat.last_model_config_id, s.models[0].id);
        wait_for(&s.engine, &actor, chat.id, "automatic title", |c| {
            c.title == OVERRIDE_TITLE && c.status == ChatStatus::Waiting
        })
        .await;
        assert_eq!(title_models(&s.provider), [TITLE_MODEL]);
        assert_eq!(turn_models(&s.provider), ["gpt-4o"]);
        s.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_titles_use_the_title_override_and_fall_back_when_it_cannot_be_used() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let actor = Actor::user(s.f.user);
        let title = ChatModelOverrideContext::TitleGeneration;
        // No override while the chat starts: its automatic title is the chat model's.
        let chat = s
            .engine
            .create_chat(&actor, create(&s.f, "plan the release", None))
            .await
            .unwrap();
        wait_for(&s.engine, &actor, chat.id, "automatic title", |c| {
            c.title == CHAT_MODEL_TITLE && c.status == ChatStatus::Waiting
        })
        .await;
        assert_eq!(title_models(&s.provider), ["gpt-4o"]);

        store
            .set_model_override(&title, &s.models[2].id.to_string())
            .await
            .unwrap();
        let proposed = s.engine.propose_title(&actor, chat.id).await.unwrap();
        assert_eq!(proposed, OVERRIDE_TITLE);
        let regenerated = s.engine.regenerate_title(&actor, chat.id).await.unwrap();
        assert_eq!(regenerated.title, OVERRIDE_TITLE);
        assert_eq!(
            title_models(&s.provider),
            ["gpt-4o", TITLE_MODEL, TITLE_MODEL]
        );

        // The owner has no key for the override's provider: the chat's model writes it,
        // and the request does not fail.
        store
            .set_model_override(&title, &s.models[3].id.to_string())
            .await
            .unwrap();
        let proposed = s.engine.propose_title(&actor, chat.id).await.unwrap();
        assert_eq!(proposed, CHAT_MODEL_TITLE);

        // The override's model was deleted: the chat's model again.
        store
            .set_model_override(&title, &s.models[2].id.to_string())
            .await
            .unwrap();
        store.delete_model_config(s.models[2].id).await.unwrap();
        let proposed = s.engine.propose_title(&actor, chat.id).await.unwrap();
        assert_eq!(proposed, CHAT_MODEL_TITLE);
        assert_eq!(
            title_models(&s.provider),
            ["gpt-4o", TITLE_MODEL, TITLE_MODEL, "gpt-4o", "gpt-4o"]
        );
        s.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_title_generation_override_writes_the_turn_summary_and_falls_back() {
    on_each_backend(|store| async move {
        let s = setup(&store).await;
        let actor = Actor::user(s.f.user);
        // No override: the turn's model writes the label.
        let chat = s
            .engine
            .create_chat(
                &actor,
                create(&s.f, "tidy the changelog", Some(s.models[1].id)),
            )
            .await
            .unwrap();
        wait_for(&s.engine, &actor, chat.id, "turn summary", |c| {
            c.last_turn_summary.as_deref() == Some(CHAT_MODEL_SUMMARY)
        })
        .await;
        assert_eq!(summary_models(&s.provider), ["gpt-4.1"]);

        // With the override, the title model writes it.
        store
            .set_model_override(
                &ChatModelOverrideContext::TitleGeneration,
                &s.models[2].id.to_string(),
            )
            .await
            .unwrap();
        let next = codersdk::CreateChatMessageRequest {
            content: vec![ChatInputPart::text("and the readme")],
            ..Default::default()
        };
        s.engine.send_message(&actor, chat.id, next).await.unwrap();
        wait_for(&s.engine, &actor, chat.id, "turn summary", |c| {
            c.last_turn_summary.as_deref() == Some(OVERRIDE_SUMMARY)
        })
        .await;
        assert_eq!(summary_models(&s.provider), ["gpt-4.1", TITLE_MODEL]);
        assert_eq!(turn_models(&s.provider), ["gpt-4.1", "gpt-4.1"]);
        s.engine.shutdown().await;
    })
    .await;
}

/// Counts the statements sqlx logs (target `sqlx::query`) while [`COUNTING`] is on, in
/// every thread (SQLite runs statements on its own worker threads).
struct StatementCounter;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl tracing::Subscriber for StatementCounter {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("sqlx::query")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        use std::sync::atomic::Ordering;
        if COUNTING.load(Ordering::SeqCst) && event.metadata().target().starts_with("sqlx::query") {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A measurement, not a check of behaviour: the statements of a one-step turn through the
/// real `StoreModelResolver` (send → `waiting`, no titles, no turn summary, no acquire
/// ticker), with the hot-config cache cleared first (cold) and then warm, printed with the
/// cache's loads. It installs a process-wide tracing subscriber, so it runs alone:
///
/// `cargo test -p chatd-core --test it -- --ignored --exact
/// engine_overrides::statements_of_a_one_step_turn --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that installs a process-wide tracing subscriber"]
async fn statements_of_a_one_step_turn() {
    use std::sync::atomic::Ordering;
    let _ = tracing::subscriber::set_global_default(StatementCounter);
    on_each_backend(|store| async move {
        let s = setup_with(&store, |c| {
            let mut settings = EngineSettings::default();
            // Only the wake signal claims: no ticker statements in the count.
            settings.acquire_interval = Duration::from_secs(600);
            c.with_settings(settings)
                .with_generated_titles(false)
                .with_turn_summaries(false)
        })
        .await;
        let actor = Actor::user(s.f.user);
        let chat = s
            .engine
            .create_chat(&actor, create(&s.f, "hello", None))
            .await
            .unwrap();
        wait_for(&s.engine, &actor, chat.id, "first turn", |c| {
            c.status == ChatStatus::Waiting
        })
        .await;
        let mut stream = s.engine.subscribe(&actor, chat.id, None).await.unwrap();
        let backend = store.dialect();
        for (label, clear) in [("cold", true), ("warm", false), ("warm", false)] {
            if clear {
                store.config_cache().clear();
            }
            let loads = store.config_cache().stats().loads;
            STATEMENTS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
            s.engine
                .send_message(
                    &actor,
                    chat.id,
                    codersdk::CreateChatMessageRequest {
                        content: vec![ChatInputPart::text("again")],
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            // Until this turn's `waiting` (the send's own `pending` comes first).
            let mut ran = false;
            loop {
                let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                    .await
                    .unwrap()
                    .unwrap();
                let status = event.status.as_ref().map(|st| st.status.clone());
                match status {
                    Some(ChatStatus::Running) => ran = true,
                    Some(ChatStatus::Waiting) if ran => break,
                    _ => {}
                }
            }
            // The turn's last statements (the lease release) follow its publication.
            tokio::time::sleep(Duration::from_millis(200)).await;
            COUNTING.store(false, Ordering::SeqCst);
            eprintln!(
                "{backend:?} {label}: {} statements from send to waiting, {} configuration loads",
                STATEMENTS.load(Ordering::SeqCst),
                store.config_cache().stats().loads - loads
            );
        }
        s.engine.shutdown().await;
    })
    .await;
}
