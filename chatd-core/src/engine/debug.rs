//! Debug runs (docs/debug-runs.md): when debug logging is on for a chat
//! ([`Store::debug_logging_on`](crate::store::Store::debug_logging_on)), every model call
//! of a turn — and of a compaction — is recorded as a step of a run: the provider-neutral
//! request, the response, usage, timings, the retried attempts and the error.
//!
//! Secrets never reach the store: the documents are built from the provider-neutral
//! request (no API key or header travels in it; keys live in the model client), every
//! string and object key of them goes through the model's [`Redactor`] (its credentials
//! and the chat's MCP secrets in every echoed form, plus key-shaped text), the value of a
//! credential-named field is dropped whole, and file bytes and opaque provider blobs
//! (signatures, encrypted reasoning) are reduced to their size.
//!
//! Recording never fails the operation it records: a write that fails is logged and the
//! run goes on without it. A turn that records nothing pays one check of cached settings.

use std::sync::{Arc, Mutex};

use chaterror::Redactor;
use chatprovider::{LanguageModel, ModelRequest, ModelResponse, Part, Role, ToolChoice};
use codersdk::{
    Chat, ChatDebugRunKind, ChatDebugStatus, ChatDebugStepOperation, ChatError, ChatStreamRetry,
    RawJson, Uuid,
};
use serde_json::{json, Map, Value};

use super::models::ResolvedModel;
use super::{lock, Inner};
use crate::store::{DebugStepEnd, NewDebugRun, NewDebugStep, MAX_DEBUG_STEPS_PER_RUN};

/// Object keys whose value is a credential, compared case-insensitively after `-` became
/// `_`: their value is replaced by [`chaterror::REDACTED`] whatever it looks like.
const CREDENTIAL_KEYS: &[&str] = &[
    "authorization",
    "proxy_authorization",
    "x_api_key",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
    "secret",
    "token",
];

/// The chat a run belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DebugChat {
    /// The chat.
    pub(crate) id: Uuid,
    /// Its owner, whose settings decide whether it is recorded.
    pub(crate) owner_id: Uuid,
    /// Its root chat (sub-agents).
    pub(crate) root_chat_id: Option<Uuid>,
    /// Its parent chat (sub-agents).
    pub(crate) parent_chat_id: Option<Uuid>,
}

impl From<&Chat> for DebugChat {
    fn from(chat: &Chat) -> Self {
        DebugChat {
            id: chat.id,
            owner_id: chat.owner_id,
            root_chat_id: chat.root_chat_id,
            parent_chat_id: chat.parent_chat_id,
        }
    }
}

/// What a run knows when it starts, beside its chat and model.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunLinks {
    /// The message that triggered the run.
    pub(crate) trigger_message_id: Option<i64>,
    /// The newest message of the history.
    pub(crate) history_tip_message_id: Option<i64>,
}

/// The model that serves a run: its config, the client, and the secrets to remove.
pub(crate) struct Served<'a> {
    /// The model config.
    pub(crate) model_config_id: Uuid,
    /// The client.
    pub(crate) model: &'a dyn LanguageModel,
    /// Its credentials and the chat's MCP secrets.
    pub(crate) redactor: &'a Redactor,
}

/// One recorded run, while it lasts. Built only when debug logging is on for the chat.
pub(crate) struct DebugRun {
    store: crate::store::Store,
    clock: Arc<dyn crate::Clock>,
    run_id: Uuid,
    chat_id: Uuid,
    redactor: Redactor,
    steps: i32,
    dropped: i64,
    usage: codersdk::ChatMessageUsage,
    open: Option<OpenStep>,
}

/// A step started and not yet finished.
struct OpenStep {
    id: Uuid,
    started_at: i64,
    started: std::time::Instant,
}

/// The failed attempts of one model call that were retried, collected by the retry
/// callback while the call runs.
#[derive(Default)]
pub(crate) struct Attempts(Mutex<Vec<RawJson>>);

impl Attempts {
    /// Records a retried attempt: the retry event as clients see it (already redacted with
    /// the model's secrets), redacted once more here.
    pub(crate) fn push(&self, retry: &ChatStreamRetry, redactor: &Redactor) {
        let value = serde_json::to_value(retry).unwrap_or(Value::Null);
        let doc = scrub(value, redactor);
        let mut list = lock(&self.0);
        if list.len() < crate::store::MAX_DEBUG_ATTEMPTS_PER_STEP {
            list.push(doc);
        }
    }

    fn take(&self) -> Vec<RawJson> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl DebugRun {
    /// Starts a run of `kind` for `chat` on `model` when debug logging is on for the chat's
    /// owner; `None` when it is off (or the settings or the run could not be read or
    /// written: logged, and the operation runs unrecorded).
    pub(crate) async fn start(
        inner: &Inner,
        kind: ChatDebugRunKind,
        chat: impl Into<DebugChat>,
        model: &ResolvedModel,
        links: RunLinks,
    ) -> Option<DebugRun> {
        let served = Served {
            model_config_id: model.model_config_id,
            model: model.model.as_ref(),
            redactor: &model.redactor,
        };
        DebugRun::start_with(inner, kind, chat.into(), served, links).await
    }

    /// [`DebugRun::start`] for a model that is not a whole [`ResolvedModel`] (a title's).
    pub(crate) async fn start_with(
        inner: &Inner,
        kind: ChatDebugRunKind,
        chat: DebugChat,
        model: Served<'_>,
        links: RunLinks,
    ) -> Option<DebugRun> {
        match inner.store.debug_logging_on(chat.owner_id).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::warn!(chat_id = %chat.id, error = %e, "reading the debug-logging settings failed; not recording");
                return None;
            }
        }
        let run = NewDebugRun {
            id: Uuid::new_v4(),
            chat_id: chat.id,
            root_chat_id: chat.root_chat_id,
            parent_chat_id: chat.parent_chat_id,
            model_config_id: Some(model.model_config_id),
            trigger_message_id: links.trigger_message_id,
            history_tip_message_id: links.history_tip_message_id,
            kind,
            provider: Some(model.model.provider().as_str().to_owned()),
            model: Some(model.model.model_id().to_owned()),
            started_at: inner.clock.now_micros(),
        };
        if let Err(e) = inner.store.insert_debug_run(&run).await {
            tracing::warn!(chat_id = %chat.id, error = %e, "starting a debug run failed; not recording");
            return None;
        }
        Some(DebugRun {
            store: inner.store.clone(),
            clock: inner.clock.clone(),
            run_id: run.id,
            chat_id: chat.id,
            redactor: model.redactor.clone(),
            steps: 0,
            dropped: 0,
            usage: codersdk::ChatMessageUsage::default(),
            open: None,
        })
    }

    /// Starts the next step with `request` (the request as built; a chained request's
    /// fallback replay is the same step). A step still open is closed first as
    /// interrupted. Past [`MAX_DEBUG_STEPS_PER_RUN`] the step is counted, not recorded.
    pub(crate) async fn step(
        &mut self,
        operation: ChatDebugStepOperation,
        request: &ModelRequest,
        history_tip_message_id: Option<i64>,
    ) {
        self.close_open(ChatDebugStatus::Interrupted).await;
        if self.steps >= MAX_DEBUG_STEPS_PER_RUN {
            self.dropped += 1;
            return;
        }
        self.steps += 1;
        let step = NewDebugStep {
            id: Uuid::new_v4(),
            run_id: self.run_id,
            chat_id: self.chat_id,
            step_number: self.steps,
            operation,
            history_tip_message_id,
            normalized_request: scrub(request_json(request), &self.redactor),
            started_at: self.clock.now_micros(),
        };
        match self.store.insert_debug_step(&step).await {
            Ok(true) => {
                self.open = Some(OpenStep {
                    id: step.id,
                    started_at: step.started_at,
                    started: std::time::Instant::now(),
                });
            }
            Ok(false) => self.dropped += 1,
            Err(e) => {
                tracing::warn!(chat_id = %self.chat_id, error = %e, "recording a debug step failed");
            }
        }
    }

    /// Ends the open step: `response` (whole, or what streamed before a stop), the
    /// retried `attempts`, the `error` that ended it, the assistant message it persisted.
    pub(crate) async fn end_step(
        &mut self,
        status: ChatDebugStatus,
        response: Option<&ModelResponse>,
        attempts: &Attempts,
        error: Option<&ChatError>,
        assistant_message_id: Option<i64>,
    ) {
        let Some(open) = self.open.take() else {
            return;
        };
        if let Some(r) = response {
            self.usage = add_usage(self.usage, r.usage);
        }
        let end = DebugStepEnd {
            status,
            assistant_message_id,
            normalized_response: response.map(|r| scrub(response_json(r), &self.redactor)),
            usage: response.map(|r| scrub(json!(r.usage), &self.redactor)),
            attempts: attempts.take(),
            error: error.map(|e| scrub(json!(e), &self.redactor)),
            metadata: scrub(
                json!({
                    "duration_ms": elapsed_ms(open.started),
                    "started_at_micros": open.started_at,
                }),
                &self.redactor,
            ),
            finished_at: self.clock.now_micros(),
        };
        if let Err(e) = self.store.finish_debug_step(open.id, &end).await {
            tracing::warn!(chat_id = %self.chat_id, error = %e, "finishing a debug step failed");
        }
    }

    /// Ends the run with `status` (a step still open ends with it) and a summary: steps
    /// recorded and dropped, the summed usage, the error.
    pub(crate) async fn finish(mut self, status: ChatDebugStatus, error: Option<&ChatError>) {
        self.finish_in_place(status, error).await;
    }

    /// Ends the open step and the run with the outcome of a non-streaming call under a
    /// timeout (a compaction's summary call).
    pub(crate) async fn record_outcome(
        mut self,
        outcome: &Result<
            Result<ModelResponse, chaterror::ProviderError>,
            tokio::time::error::Elapsed,
        >,
        redactor: &Redactor,
        provider: &str,
    ) {
        let none = Attempts::default();
        let error = match outcome {
            Ok(Ok(response)) => {
                let status = ChatDebugStatus::Completed;
                self.end_step(status, Some(response), &none, None, None)
                    .await;
                self.finish(ChatDebugStatus::Completed, None).await;
                return;
            }
            Ok(Err(e)) => provider_chat_error(e, redactor, provider),
            Err(_) => ChatError::generic("The model call timed out."),
        };
        self.end_step(ChatDebugStatus::Error, None, &none, Some(&error), None)
            .await;
        self.finish(ChatDebugStatus::Error, Some(&error)).await;
    }

    async fn finish_in_place(&mut self, status: ChatDebugStatus, error: Option<&ChatError>) {
        self.close_open(status.clone()).await;
        let mut summary = json!({
            "step_count": self.steps,
            "steps_dropped": self.dropped,
            "usage": self.usage,
        });
        if let (Some(e), Some(map)) = (error, summary.as_object_mut()) {
            map.insert("error".to_owned(), json!(e));
        }
        let summary = scrub(summary, &self.redactor);
        let now = self.clock.now_micros();
        if let Err(e) = self
            .store
            .finish_debug_run(self.run_id, &status, &summary, now)
            .await
        {
            tracing::warn!(chat_id = %self.chat_id, error = %e, "finishing a debug run failed");
        }
    }

    async fn close_open(&mut self, status: ChatDebugStatus) {
        if self.open.is_some() {
            self.end_step(status, None, &Attempts::default(), None, None)
                .await;
        }
    }
}

/// A model whose non-streaming calls (`generate`) are recorded as `generate` steps of a
/// run: what a title or a turn summary calls through `title::quick_generate`, which
/// builds its request and retries itself (each attempt is a step of its own).
pub(crate) struct RecordingModel {
    model: Arc<dyn LanguageModel>,
    run: tokio::sync::Mutex<Option<DebugRun>>,
}

impl std::fmt::Debug for RecordingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingModel")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl RecordingModel {
    /// `model` itself when `run` is `None` (nothing is recorded), else `model` wrapped.
    pub(crate) fn wrap(
        model: Arc<dyn LanguageModel>,
        run: Option<DebugRun>,
    ) -> (Arc<dyn LanguageModel>, Option<Arc<RecordingModel>>) {
        match run {
            None => (model, None),
            Some(run) => {
                let recording = Arc::new(RecordingModel {
                    model,
                    run: tokio::sync::Mutex::new(Some(run)),
                });
                (recording.clone(), Some(recording))
            }
        }
    }

    /// Ends the run: `error` set means it failed.
    pub(crate) async fn finish(&self, error: Option<&ChatError>) {
        let run = self.run.lock().await.take();
        if let Some(run) = run {
            let status = if error.is_some() {
                ChatDebugStatus::Error
            } else {
                ChatDebugStatus::Completed
            };
            run.finish(status, error).await;
        }
    }
}

#[async_trait::async_trait]
impl LanguageModel for RecordingModel {
    fn provider(&self) -> chatprovider::Provider {
        self.model.provider()
    }

    fn model_id(&self) -> &str {
        self.model.model_id()
    }

    fn stream(&self, request: ModelRequest) -> chatprovider::ModelStream {
        self.model.stream(request)
    }

    fn redactor(&self) -> Redactor {
        self.model.redactor()
    }

    async fn generate(
        &self,
        request: ModelRequest,
    ) -> Result<ModelResponse, chaterror::ProviderError> {
        if let Some(run) = self.run.lock().await.as_mut() {
            run.step(ChatDebugStepOperation::Generate, &request, None)
                .await;
        }
        let result = self.model.generate(request).await;
        if let Some(run) = self.run.lock().await.as_mut() {
            let none = Attempts::default();
            match &result {
                Ok(response) => {
                    run.end_step(
                        ChatDebugStatus::Completed,
                        Some(response),
                        &none,
                        None,
                        None,
                    )
                    .await;
                }
                Err(e) => {
                    let provider = self.model.provider();
                    let error = provider_chat_error(e, &run.redactor, provider.as_str());
                    run.end_step(ChatDebugStatus::Error, None, &none, Some(&error), None)
                        .await;
                }
            }
        }
        result
    }
}

/// A failed model call as the error a step records: classified, redacted.
fn provider_chat_error(
    e: &chaterror::ProviderError,
    redactor: &Redactor,
    provider: &str,
) -> ChatError {
    let e = redactor.redact_provider_error(e.clone());
    let error = chaterror::classify(&e)
        .with_provider(provider)
        .to_chat_error()
        .unwrap_or_else(|| ChatError::generic(redactor.redact(&e.to_string()).into_owned()));
    redactor.redact_chat_error(error)
}

fn elapsed_ms(started: std::time::Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn add_usage(
    a: codersdk::ChatMessageUsage,
    b: codersdk::ChatMessageUsage,
) -> codersdk::ChatMessageUsage {
    let sum = |x: Option<i64>, y: Option<i64>| match (x, y) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0).saturating_add(y.unwrap_or(0))),
    };
    codersdk::ChatMessageUsage {
        input_tokens: sum(a.input_tokens, b.input_tokens),
        output_tokens: sum(a.output_tokens, b.output_tokens),
        total_tokens: sum(a.total_tokens, b.total_tokens),
        reasoning_tokens: sum(a.reasoning_tokens, b.reasoning_tokens),
        cache_creation_tokens: sum(a.cache_creation_tokens, b.cache_creation_tokens),
        cache_read_tokens: sum(a.cache_read_tokens, b.cache_read_tokens),
        context_limit: b.context_limit.or(a.context_limit),
    }
}

/// The provider-neutral request as a JSON object: system blocks, messages, tools, tool
/// choice, settings, options, the chained response id and the correlation headers the
/// request carries (ids, no credentials). File bytes and opaque provider blobs are
/// reduced to their size.
pub(crate) fn request_json(request: &ModelRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
                _ => "other",
            };
            let content: Vec<Value> = m.content.iter().map(part_json).collect();
            json!({ "role": role, "content": content })
        })
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "input_schema": t.input_schema.to_value(),
            })
        })
        .collect();
    let tool_choice = request.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({ "tool": name }),
        _ => json!("other"),
    });
    let s = &request.settings;
    let correlation: Map<String, Value> = request
        .correlation
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    json!({
        "system": request.system,
        "messages": messages,
        "tools": tools,
        "tool_choice": tool_choice,
        "settings": {
            "max_output_tokens": s.max_output_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
        },
        // The normalized options carry no credentials (reasoning effort, service tier, …);
        // they have no JSON form of their own, so their debug text is kept.
        "provider_options": request.provider_options.as_ref().map(|o| format!("{o:?}")),
        "previous_response_id": request.previous_response_id,
        "correlation": correlation,
    })
}

fn part_json(part: &Part) -> Value {
    match part {
        Part::Text { text } => json!({ "type": "text", "text": text }),
        Part::File {
            media_type,
            data,
            filename,
        } => json!({
            "type": "file",
            "media_type": media_type,
            "filename": filename,
            "bytes": data.len(),
        }),
        Part::Reasoning {
            text,
            signature,
            redacted_data,
            item_id,
            encrypted_content,
        } => json!({
            "type": "reasoning",
            "text": text,
            "signature_bytes": signature.as_ref().map(String::len),
            "redacted_data_bytes": redacted_data.as_ref().map(String::len),
            "item_id": item_id,
            "encrypted_content_bytes": encrypted_content.as_ref().map(String::len),
        }),
        Part::ToolCall {
            id,
            name,
            arguments,
            provider_executed,
            ..
        } => json!({
            "type": "tool_call",
            "id": id,
            "name": name,
            "arguments": arguments.to_value(),
            "provider_executed": provider_executed,
        }),
        Part::ToolResult {
            tool_call_id,
            name,
            output,
            is_error,
        } => json!({
            "type": "tool_result",
            "tool_call_id": tool_call_id,
            "name": name,
            "output": output.to_value(),
            "is_error": is_error,
        }),
        _ => json!({ "type": "other" }),
    }
}

/// The response as a JSON object: text, reasoning, tool calls, sources, finish reason,
/// response id and the answering model (usage is stored beside it).
pub(crate) fn response_json(response: &ModelResponse) -> Value {
    let sources: Vec<Value> = response
        .sources
        .iter()
        .map(|(url, title)| json!({ "url": url, "title": title }))
        .collect();
    json!({
        "text": response.text,
        "reasoning": response.reasoning,
        "tool_calls": response.tool_calls,
        "sources": sources,
        "finish_reason": response.finish_reason,
        "response_id": response.response_id,
        "model": response.model,
    })
}

/// `value` with secrets removed (see the module docs), as a document to store.
pub(crate) fn scrub(value: Value, redactor: &Redactor) -> RawJson {
    let clean = scrub_value(value, redactor, 0);
    // A second pass over the whole text catches a secret split across JSON escapes; it is
    // kept only when it is still JSON.
    let text = clean.to_string();
    let redacted = redactor.redact(&text);
    let doc = RawJson::from_json(&redacted).or_else(|_| RawJson::from_json(&text));
    doc.unwrap_or_else(|_| RawJson::empty_object())
}

/// Deepest nesting [`scrub_value`] walks; deeper values are replaced by a marker. Request
/// documents are built here and tool JSON is already bounded by
/// [`codersdk::MAX_RAW_JSON_DEPTH`], so this is only a guard.
const MAX_SCRUB_DEPTH: usize = codersdk::MAX_RAW_JSON_DEPTH + 16;

fn scrub_value(value: Value, redactor: &Redactor, depth: usize) -> Value {
    if depth > MAX_SCRUB_DEPTH {
        return json!("[too deep]");
    }
    match value {
        Value::String(s) => Value::String(redactor.redact(&s).into_owned()),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| scrub_value(v, redactor, depth + 1))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_credential_key(&k) && !v.is_null() {
                        json!(chaterror::REDACTED)
                    } else {
                        scrub_value(v, redactor, depth + 1)
                    };
                    (redactor.redact(&k).into_owned(), v)
                })
                .collect(),
        ),
        other => other,
    }
}

fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    CREDENTIAL_KEYS.contains(&k.as_str())
}

impl super::Engine {
    /// The newest debug runs of `chat_id` (at most
    /// [`MAX_DEBUG_RUNS_LISTED`](crate::store::MAX_DEBUG_RUNS_LISTED)), newest first: its
    /// owner's, or any chat's for an administrator; another user's chat is
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
    pub async fn list_debug_runs(
        &self,
        actor: &super::Actor,
        chat_id: Uuid,
    ) -> crate::Result<Vec<codersdk::ChatDebugRunSummary>> {
        self.authorized_chat(actor, chat_id, super::ops::Access::Read)
            .await?;
        self.inner.store.list_debug_runs(chat_id).await
    }

    /// Debug run `run_id` of `chat_id` with its steps, under the rules of
    /// [`Engine::list_debug_runs`](super::Engine::list_debug_runs);
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when the chat has no such run.
    pub async fn debug_run(
        &self,
        actor: &super::Actor,
        chat_id: Uuid,
        run_id: Uuid,
    ) -> crate::Result<codersdk::ChatDebugRun> {
        self.authorized_chat(actor, chat_id, super::ops::Access::Read)
            .await?;
        self.inner
            .store
            .debug_run(chat_id, run_id)
            .await?
            .ok_or_else(|| {
                crate::Error::new(
                    crate::ErrorKind::NotFound,
                    format!("Debug run {run_id} not found."),
                )
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_key_shaped_text_are_removed() {
        let key = "provider-secret-value-123";
        let redactor = Redactor::new().with_secret(key);
        let request = ModelRequest {
            system: vec![format!("system with {key}")],
            messages: vec![chatprovider::Message::user_text(
                "my key is sk-abcdefghijklmnopqrstuvwxyz0123 ok",
            )],
            ..Default::default()
        };
        let doc = scrub(request_json(&request), &redactor);
        assert!(!doc.get().contains(key), "{}", doc.get());
        assert!(!doc.get().contains("sk-abcdefghijklmnop"), "{}", doc.get());
        assert!(doc.get().contains(chaterror::REDACTED));
        // Credential-named fields lose their value whatever it is.
        let doc = scrub(
            json!({"headers": {"X-Api-Key": "short", "Authorization": "Bearer x"}, "n": 1}),
            &redactor,
        );
        assert!(!doc.get().contains("short"));
        assert!(!doc.get().contains("Bearer x"));
        assert!(doc.get().contains("\"n\":1"));
    }

    #[test]
    fn file_bytes_are_reduced_to_their_size() {
        let request = ModelRequest {
            messages: vec![chatprovider::Message {
                role: Role::User,
                content: vec![Part::File {
                    media_type: "image/png".into(),
                    data: vec![7; 1000],
                    filename: Some("a.png".into()),
                }],
            }],
            ..Default::default()
        };
        let v = request_json(&request);
        assert_eq!(v["messages"][0]["content"][0]["bytes"], 1000);
    }
}
