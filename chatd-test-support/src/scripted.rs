//! A scripted model and helpers for engine tests: deterministic replies, failures on
//! demand, and gates that hold a stream mid-step.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::{
    Actor, Engine, EngineConfig, EngineSettings, ModelResolver, ModelSelection, ResolvedModel,
    TurnModelRequest,
};
use chaterror::ProviderError;
use chatprovider::{
    FinishReason, LanguageModel, ModelRequest, ModelStream, Part, Provider, Role, StreamPart,
    ToolCall,
};
use codersdk::{
    Chat, ChatError, ChatInputPart, ChatMessageUsage, ChatStatus, CreateChatRequest, Uuid,
};
use futures_util::StreamExt;
use tokio::sync::Notify;

/// What a [`ScriptedModel`] answers every title request with.
pub const SCRIPTED_TITLE: &str = "Scripted Title";

/// What a [`ScriptedModel`] answers every compaction summary request with.
pub const SCRIPTED_COMPACTION_SUMMARY: &str = "Scripted summary of the conversation";

/// Usage a [`ScriptedModel`] reports for each compaction summary request.
pub const SCRIPTED_COMPACTION_USAGE: ChatMessageUsage = ChatMessageUsage {
    input_tokens: Some(300),
    output_tokens: Some(40),
    total_tokens: Some(340),
    reasoning_tokens: None,
    cache_creation_tokens: None,
    cache_read_tokens: None,
    context_limit: None,
};

/// What a [`ScriptedModel`] answers every turn summary request with.
pub const SCRIPTED_SUMMARY: &str = "Scripted turn summary";

/// Whether `request` is the engine's automatic title request.
pub fn is_title_request(request: &ModelRequest) -> bool {
    request.system.first().map(String::as_str) == Some(chatd_core::title::TITLE_SYSTEM_PROMPT)
}

/// Whether `request` is the engine's turn summary request.
pub fn is_summary_request(request: &ModelRequest) -> bool {
    request.system.first().map(String::as_str) == Some(chatd_core::TURN_SUMMARY_SYSTEM_PROMPT)
}

/// One scripted model call.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Streams the text in word-sized deltas, then finishes with `stop`.
    Text(String),
    /// Calls these tools `(id, name, args)` and finishes with `tool_calls`.
    ToolCalls(Vec<(String, String, String)>),
    /// Fails with this HTTP status before streaming anything.
    Fail(u16),
    /// Fails with this HTTP status and response body before streaming anything.
    FailWith(u16, String),
    /// Streams the text like [`Reply::Text`], reporting this usage.
    TextWithUsage(String, ChatMessageUsage),
    /// Streams `before` as text deltas, waits for the gate, then streams `after` and stops.
    Gated {
        /// Text deltas streamed before the gate.
        before: Vec<String>,
        /// Released by `notify_one` / `notify_waiters`.
        gate: Arc<Notify>,
        /// Text deltas streamed after the gate, before `stop`.
        after: Vec<String>,
    },
}

/// A model that answers from a script; with the script empty it says "ok".
#[derive(Debug, Default)]
pub struct ScriptedModel {
    script: Mutex<VecDeque<Reply>>,
    /// Turn calls so far (title, turn summary and compaction summary requests are not
    /// counted).
    pub calls: AtomicUsize,
    /// Compaction summary requests so far (answered with [`SCRIPTED_COMPACTION_SUMMARY`]).
    pub compactions: AtomicUsize,
    /// Turn summary requests answered (with [`SCRIPTED_SUMMARY`]).
    pub summaries: AtomicUsize,
    /// The requests of those calls, in order.
    pub requests: Mutex<Vec<ModelRequest>>,
}

impl ScriptedModel {
    /// A model answering with `replies`, one per call, then "ok".
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Arc<Self> {
        Arc::new(ScriptedModel {
            script: Mutex::new(replies.into_iter().collect()),
            ..Default::default()
        })
    }

    /// Appends `reply` to the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.script).push_back(reply);
    }
}

fn usage() -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: Some(100),
        output_tokens: Some(20),
        total_tokens: Some(120),
        ..Default::default()
    }
}

fn text_parts(words: &[String]) -> Vec<StreamPart> {
    words
        .iter()
        .map(|w| StreamPart::TextDelta {
            block: 0,
            delta: w.clone(),
        })
        .collect()
}

fn finish(reason: FinishReason) -> StreamPart {
    StreamPart::Finish {
        reason,
        usage: usage(),
    }
}

/// Splits text into deltas that concatenate back to it.
pub fn deltas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[async_trait::async_trait]
impl LanguageModel for ScriptedModel {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn model_id(&self) -> &str {
        "gpt-4o-mini"
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        // Title and summary requests are answered aside, so they never take a scripted
        // turn reply.
        let aside = if is_title_request(&request) {
            Some(SCRIPTED_TITLE)
        } else if is_summary_request(&request) {
            self.summaries.fetch_add(1, Ordering::SeqCst);
            Some(SCRIPTED_SUMMARY)
        } else {
            None
        };
        if let Some(label) = aside {
            let parts = vec![
                StreamPart::TextDelta {
                    block: 0,
                    delta: label.into(),
                },
                finish(FinishReason::Stop),
            ];
            return futures_util::stream::iter(parts.into_iter().map(Ok)).boxed();
        }
        // Compaction summaries too: the request ends with the summary instruction.
        let compaction_request = request.messages.last().is_some_and(|m| {
            m.content.iter().any(|p| {
                matches!(p, Part::Text { text } if text == chatd_core::COMPACTION_SUMMARY_PROMPT)
            })
        });
        if compaction_request {
            self.compactions.fetch_add(1, Ordering::SeqCst);
            let parts = vec![
                StreamPart::TextDelta {
                    block: 0,
                    delta: SCRIPTED_COMPACTION_SUMMARY.into(),
                },
                StreamPart::Finish {
                    reason: FinishReason::Stop,
                    usage: SCRIPTED_COMPACTION_USAGE,
                },
            ];
            return futures_util::stream::iter(parts.into_iter().map(Ok)).boxed();
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.requests).push(request);
        let reply = lock(&self.script)
            .pop_front()
            .unwrap_or_else(|| Reply::Text("ok".into()));
        let meta = StreamPart::ResponseMetadata {
            id: Some("resp_1".into()),
            model: Some("gpt-4o-mini".into()),
        };
        match reply {
            Reply::Text(text) => {
                let mut parts = vec![meta];
                parts.extend(text_parts(&deltas(&text)));
                parts.push(finish(FinishReason::Stop));
                futures_util::stream::iter(parts.into_iter().map(Ok)).boxed()
            }
            Reply::ToolCalls(calls) => {
                let mut parts = vec![meta];
                for ((id, name, args), block) in calls.into_iter().zip(0u32..) {
                    parts.push(StreamPart::ToolCallStart {
                        block,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    parts.push(StreamPart::ToolCall(ToolCall {
                        id,
                        name,
                        arguments: args,
                        arguments_valid: true,
                        provider_executed: false,
                    }));
                }
                parts.push(finish(FinishReason::ToolCalls));
                futures_util::stream::iter(parts.into_iter().map(Ok)).boxed()
            }
            Reply::TextWithUsage(text, usage) => {
                let mut parts = vec![meta];
                parts.extend(text_parts(&deltas(&text)));
                parts.push(StreamPart::Finish {
                    reason: FinishReason::Stop,
                    usage,
                });
                futures_util::stream::iter(parts.into_iter().map(Ok)).boxed()
            }
            Reply::FailWith(status, body) => {
                let err = ProviderError::new(format!("HTTP {status}"))
                    .with_status(status)
                    .with_provider("openai")
                    .with_body(body);
                futures_util::stream::iter(vec![Err(err)]).boxed()
            }
            Reply::Fail(status) => {
                let err = ProviderError::new(format!("HTTP {status}"))
                    .with_status(status)
                    .with_provider("openai")
                    .with_body(
                        r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#,
                    );
                futures_util::stream::iter(vec![Err(err)]).boxed()
            }
            Reply::Gated {
                before,
                gate,
                after,
            } => {
                let head = futures_util::stream::iter(
                    std::iter::once(meta)
                        .chain(text_parts(&before))
                        .map(Ok)
                        .collect::<Vec<_>>(),
                );
                let wait = futures_util::stream::once(async move {
                    gate.notified().await;
                })
                .filter_map(|()| async { None });
                let mut tail = text_parts(&after);
                tail.push(finish(FinishReason::Stop));
                head.chain(wait)
                    .chain(futures_util::stream::iter(tail.into_iter().map(Ok)))
                    .boxed()
            }
        }
    }
}

/// Resolves every chat to one model config backed by one scripted model.
#[derive(Debug)]
pub struct ScriptedResolver {
    /// The model config every chat gets unless it asks for another.
    pub model_config_id: Uuid,
    /// The model of every turn.
    pub model: Arc<ScriptedModel>,
}

impl ScriptedResolver {
    /// A resolver with a new model config id.
    pub fn new(model: Arc<ScriptedModel>) -> Arc<Self> {
        Arc::new(ScriptedResolver {
            model_config_id: Uuid::new_v4(),
            model,
        })
    }
}

#[async_trait::async_trait]
impl ModelResolver for ScriptedResolver {
    async fn select(&self, selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(selection.requested.unwrap_or(self.model_config_id))
    }

    async fn resolve(&self, _turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        Ok(ResolvedModel::new(self.model_config_id, self.model.clone())
            .with_context_limit(Some(128_000)))
    }
}

/// One reply of a chat's script: fixed, or computed from the request.
pub enum Step {
    /// This reply.
    Fixed(Reply),
    /// The reply computed from the request (its tool results, say).
    Computed(Box<dyn Fn(&ModelRequest) -> Reply + Send + Sync>),
}

/// A model answering each chat from its own script, keyed by the first word of the
/// chat's first user message (so parent and sub-agents sharing one model each get their
/// own replies). Every request is recorded under its key.
#[derive(Default)]
pub struct RoutedModel {
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    requests: Mutex<Vec<(String, ModelRequest)>>,
    /// Streams the chosen reply; locked so a push and its stream are one step.
    player: Mutex<Arc<ScriptedModel>>,
}

impl std::fmt::Debug for RoutedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoutedModel")
    }
}

impl RoutedModel {
    /// A model with no scripts: every chat is answered "<key> ok".
    pub fn new() -> Arc<Self> {
        Arc::new(RoutedModel {
            player: Mutex::new(ScriptedModel::new([])),
            ..Default::default()
        })
    }

    /// Sets the replies of the chats whose first user message starts with `key`.
    pub fn script(&self, key: &str, steps: Vec<Step>) {
        self.scripts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), steps.into());
    }

    /// The requests of the chats keyed `key`, in order.
    pub fn requests_of(&self, key: &str) -> Vec<ModelRequest> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// The key of a request: the first word of its first user text.
pub fn key_of(request: &ModelRequest) -> String {
    request
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .flat_map(|m| m.content.iter())
        .find_map(|p| match p {
            Part::Text { text } => text.split_whitespace().next().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl LanguageModel for RoutedModel {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn model_id(&self) -> &str {
        "gpt-4o-mini"
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        // Title and summary requests are answered aside (by the player), taking no chat's
        // reply.
        if is_title_request(&request) || is_summary_request(&request) {
            return lock(&self.player).stream(request);
        }
        let key = key_of(&request);
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((key.clone(), request.clone()));
        let step = self
            .scripts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&key)
            .and_then(VecDeque::pop_front);
        let reply = match step {
            Some(Step::Fixed(reply)) => reply,
            Some(Step::Computed(f)) => f(&request),
            None => Reply::Text(format!("{key} ok")),
        };
        let player = lock(&self.player);
        player.push(reply);
        player.stream(request)
    }
}

/// Every chat runs on one [`RoutedModel`] under one model config.
#[derive(Debug)]
pub struct RoutedResolver {
    /// The model config of every chat that names none.
    pub model_config_id: Uuid,
    /// The model.
    pub model: Arc<RoutedModel>,
}

impl RoutedResolver {
    /// A resolver with a new model config id.
    pub fn new(model: Arc<RoutedModel>) -> Arc<Self> {
        Arc::new(RoutedResolver {
            model_config_id: Uuid::new_v4(),
            model,
        })
    }
}

#[async_trait::async_trait]
impl ModelResolver for RoutedResolver {
    async fn select(&self, selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(selection.requested.unwrap_or(self.model_config_id))
    }

    async fn resolve(&self, _turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        Ok(ResolvedModel::new(self.model_config_id, self.model.clone()))
    }
}

/// The successful tool results named `tool` the request carries, in order.
pub fn results_of(request: &ModelRequest, tool: &str) -> Vec<serde_json::Value> {
    request
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|p| match p {
            Part::ToolResult {
                name,
                output,
                is_error,
                ..
            } if name == tool && !is_error => output.parse::<serde_json::Value>().ok(),
            _ => None,
        })
        .collect()
}

/// The ids of the children spawned so far (successful `spawn_subagent` results), in call
/// order.
pub fn spawned(request: &ModelRequest) -> Vec<String> {
    results_of(request, "spawn_subagent")
        .iter()
        .filter_map(|v| v["chat_id"].as_str().map(str::to_owned))
        .collect()
}

/// Settings with intervals short enough for tests.
pub fn fast_settings() -> EngineSettings {
    let mut s = EngineSettings::default();
    s.acquire_interval = Duration::from_millis(50);
    s.heartbeat_interval = Duration::from_millis(100);
    s.stale_after = Duration::from_millis(400);
    s.recovery_interval = Duration::from_millis(100);
    s.shutdown_timeout = Duration::from_secs(5);
    // Summaries follow their turn at once, so tests need not wait for the delay.
    s.turn_summary_delay = Duration::ZERO;
    s
}

/// An engine on `store` whose turns use `model`, with [`fast_settings`].
pub async fn engine(store: &Store, model: Arc<ScriptedModel>) -> Engine {
    engine_with(store, model, fast_settings()).await
}

/// An engine whose every model call is `model`'s, with automatic titles off (they would
/// take replies from the script).
pub async fn engine_with(
    store: &Store,
    model: Arc<ScriptedModel>,
    settings: EngineSettings,
) -> Engine {
    engine_with_config(store, model, settings, |c| c.with_generated_titles(false)).await
}

/// Like [`engine_with`], with `adjust` applied to the configuration last (titles are on
/// unless `adjust` turns them off).
pub async fn engine_with_config(
    store: &Store,
    model: Arc<ScriptedModel>,
    settings: EngineSettings,
    adjust: impl FnOnce(EngineConfig) -> EngineConfig,
) -> Engine {
    let config = EngineConfig::new(StoreOptions::new("unused"), ScriptedResolver::new(model))
        .with_settings(settings);
    Engine::with_store(store.clone(), adjust(config))
        .await
        .expect("start a scripted engine")
}

/// A chat creation request in `org` whose first message is `text`.
pub fn create_request(org: Uuid, text: &str) -> CreateChatRequest {
    CreateChatRequest {
        organization_id: Some(org),
        content: vec![ChatInputPart::text(text)],
        ..Default::default()
    }
}

/// Polls until the chat has `status` (or panics after 10 s).
pub async fn wait_status(
    engine: &Engine,
    actor: &Actor,
    chat_id: Uuid,
    status: ChatStatus,
) -> Chat {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chat = engine
            .get_chat(actor, chat_id)
            .await
            .expect("read the awaited chat");
        if chat.status == status {
            return chat;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat {chat_id} stayed {:?}, wanted {status:?}",
            chat.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Locks `mutex`, taking the data of a poisoned one: a panic elsewhere already fails the
/// test, and the script must stay usable for the assertion that reports it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
