//! OpenAI Responses chaining (docs/engine-design.md, "OpenAI Responses chaining"), on both
//! backends: turns through the real `OpenAiResponsesModel` against the mock Responses
//! server of the test kit, which stores responses, resolves `previous_response_id` and
//! refuses the ids it does not hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::tools::{Tool, ToolContext, ToolOutput};
use chatd_core::{
    Actor, Engine, EngineConfig, ModelResolver, ModelSelection, ResolvedModel, TurnModelRequest,
};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::responses::{tokens_sent, MockReply, MockResponses, ResponsesRequest};
use chatd_test_support::scripted::{create_request, fast_settings, wait_status};
use chatprovider::{
    ClientSettings, OpenAiRequestOptions, OpenAiResponsesModel, OpenAiResponsesOptions, Provider,
    ProviderRequestOptions,
};
use codersdk::{
    ChatError, ChatMessage, ChatMessageRole, ChatPlanMode, ChatStatus, CreateChatMessageRequest,
    RawJson, Uuid,
};
use serde_json::json;

use crate::engine::{all_messages, say};

/// A built-in tool that answers with its arguments.
#[derive(Debug)]
struct Echo;

#[async_trait::async_trait]
impl Tool for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "Echoes its arguments"
    }
    fn parameters(&self) -> schemars::Schema {
        schemars::json_schema!({"type": "object"})
    }
    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        ToolOutput::ok(args)
    }
}

/// Every model config is `gpt-5.1` on the mock through the Responses API, storing its
/// responses when `store` is set. The requested model config is used as is, so a test can
/// switch models by naming another id.
#[derive(Debug)]
struct ResponsesAt {
    base_url: String,
    default_model: Uuid,
    store: bool,
    /// The model's context window; `None`: unset (the embedded table's, then the fallback).
    context_limit: Option<i64>,
}

#[async_trait::async_trait]
impl ModelResolver for ResponsesAt {
    async fn select(&self, selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(selection.requested.unwrap_or(self.default_model))
    }

    async fn resolve(&self, turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        let model = OpenAiResponsesModel::new(
            Provider::OpenAi,
            "gpt-5.1",
            "sk-test-not-a-key",
            Some(&self.base_url),
            ClientSettings::default(),
        )
        .map_err(|e| ChatError::generic(e.to_string()))?;
        let options = ProviderRequestOptions {
            openai: Some(OpenAiRequestOptions::Responses(OpenAiResponsesOptions {
                store: self.store,
                ..OpenAiResponsesOptions::default()
            })),
            ..ProviderRequestOptions::default()
        };
        let echo: Arc<dyn Tool> = Arc::new(Echo);
        Ok(
            ResolvedModel::new(turn.requested.unwrap_or(turn.last), Arc::new(model))
                .with_provider_options(Some(options))
                .with_store_response_id(self.store)
                .with_context_limit(self.context_limit)
                .with_tools([echo]),
        )
    }
}

/// One chat's world: the mock, an engine resolving to it, the user.
struct World {
    mock: MockResponses,
    engine: Engine,
    actor: Actor,
    org: Uuid,
    model: Uuid,
}

async fn world(store: &Store, store_responses: bool) -> World {
    world_with(store, store_responses, None).await
}

async fn world_with(store: &Store, store_responses: bool, context_limit: Option<i64>) -> World {
    let mock = MockResponses::start().await;
    let f = fixture(store).await;
    let model = Uuid::new_v4();
    let resolver = Arc::new(ResponsesAt {
        base_url: mock.url(),
        default_model: model,
        store: store_responses,
        context_limit,
    });
    // Titles and turn summaries off: their requests would reach the mock and take
    // scripted replies.
    let config = EngineConfig::new(StoreOptions::new("unused"), resolver)
        .with_settings(fast_settings())
        .with_generated_titles(false)
        .with_turn_summaries(false);
    let engine = Engine::with_store(store.clone(), config).await.unwrap();
    World {
        mock,
        engine,
        actor: Actor::user(f.user),
        org: f.org,
        model,
    }
}

impl World {
    /// Creates a chat with `text` and waits for its first turn.
    async fn chat(&self, text: &str) -> Uuid {
        let chat = self
            .engine
            .create_chat(&self.actor, create_request(self.org, text))
            .await
            .unwrap();
        wait_status(&self.engine, &self.actor, chat.id, ChatStatus::Waiting).await;
        chat.id
    }

    /// Sends `request` and waits for the turn to end.
    async fn send(&self, chat: Uuid, request: CreateChatMessageRequest) {
        self.engine
            .send_message(&self.actor, chat, request)
            .await
            .unwrap();
        let done = wait_status(&self.engine, &self.actor, chat, ChatStatus::Waiting).await;
        assert_eq!(done.last_error, None);
    }

    async fn messages(&self, chat: Uuid) -> Vec<ChatMessage> {
        self.engine
            .list_messages(&self.actor, chat, &all_messages())
            .await
            .unwrap()
            .messages
    }
}

/// The saved response id of each assistant message of `chat`, oldest first.
async fn saved_ids(store: &Store, chat: Uuid) -> Vec<Option<String>> {
    sqlx::query_scalar(
        "SELECT provider_response_id FROM chat_messages \
         WHERE chat_id = $1 AND role = 'assistant' ORDER BY id",
    )
    .bind(chat.to_string())
    .fetch_all(RawSql::pool(store))
    .await
    .unwrap()
}

fn id_of(request: &ResponsesRequest) -> String {
    request.response_id.clone().expect("a streamed response")
}

/// Asserts that `request` chained off `previous` and sent only `types` as input.
fn assert_chained(request: &ResponsesRequest, previous: &ResponsesRequest, types: &[&str]) {
    assert_eq!(
        request.previous_response_id(),
        Some(id_of(previous).as_str()),
        "{:#}",
        request.body
    );
    assert_eq!(request.input_types(), types, "{:#}", request.body);
}

fn assert_full(request: &ResponsesRequest) {
    assert_eq!(request.previous_response_id(), None, "{:#}", request.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_turn_chains_off_the_first_reply_and_sends_only_the_new_message() {
    on_each_backend(|store| async move {
        let w = world(&store, true).await;
        let chat = w.chat("first question").await;
        w.send(chat, say("second question")).await;

        let requests = w.mock.requests();
        assert_eq!(requests.len(), 2, "{requests:#?}");
        let (first, second) = (&requests[0], &requests[1]);
        assert_full(first);
        assert_eq!(first.body["store"], true);
        assert_chained(second, first, &["message"]);
        assert_eq!(second.user_texts(), vec!["second question"]);
        // The system blocks travel with every request.
        assert!(second.instructions().is_some_and(|i| !i.is_empty()));
        assert_eq!(second.instructions(), first.instructions());
        // Each assistant row keeps the id of its own response.
        assert_eq!(
            saved_ids(&store, chat).await,
            vec![Some(id_of(first)), Some(id_of(second))]
        );
        // OpenAI bills the stored context again: the second reply's input is what it sent
        // plus the whole first exchange (without its instructions, which are not carried
        // over), while the request itself stayed small.
        let first_instructions = chatd_test_support::responses::estimate_tokens(
            first.instructions().unwrap().chars().count(),
        );
        let context =
            first.input_tokens.unwrap() - first_instructions + first.output_tokens.unwrap();
        assert_eq!(second.tokens_sent, tokens_sent(&second.body));
        assert_eq!(second.input_tokens, Some(second.tokens_sent + context));
        let messages = w.messages(chat).await;
        let reply = messages.last().unwrap();
        assert_eq!(reply.role, ChatMessageRole::Assistant);
        assert_eq!(
            reply.usage.unwrap().input_tokens,
            second.input_tokens.map(|t| i64::try_from(t).unwrap())
        );
        w.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_step_chains_the_next_step_off_the_id_just_saved() {
    on_each_backend(|store| async move {
        let w = world(&store, true).await;
        // First turn: the tool step replays (nothing to chain off yet); the step after it
        // chains off the tool step's response, sending only the tool result.
        w.mock
            .push_reply(MockReply::function_call("call_1", "echo", json!({"n": 1})));
        let chat = w.chat("use the tool").await;
        // Second turn: chained off the first turn's answer, then off its own tool step.
        w.mock
            .push_reply(MockReply::function_call("call_2", "echo", json!({"n": 2})));
        w.send(chat, say("again")).await;

        let r = w.mock.requests();
        assert_eq!(r.len(), 4, "{r:#?}");
        assert!(r.iter().all(ResponsesRequest::succeeded), "{r:#?}");
        assert_full(&r[0]);
        assert_eq!(r[0].user_texts(), vec!["use the tool"]);
        assert_chained(&r[1], &r[0], &["function_call_output"]);
        assert_eq!(r[1].function_call_outputs(), vec!["call_1"]);
        assert_chained(&r[2], &r[1], &["message"]);
        assert_eq!(r[2].user_texts(), vec!["again"]);
        assert_chained(&r[3], &r[2], &["function_call_output"]);
        assert_eq!(r[3].function_call_outputs(), vec!["call_2"]);
        // Each step's id was saved before the next step chained off it.
        assert_eq!(
            saved_ids(&store, chat).await,
            r.iter().map(|q| Some(id_of(q))).collect::<Vec<_>>()
        );
        // The chained requests are small next to the replay they replace.
        assert!(r[3].tokens_sent < r[3].input_tokens.unwrap());
        w.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switched_model_replays_the_whole_history_then_chains_again() {
    on_each_backend(|store| async move {
        let w = world(&store, true).await;
        let chat = w.chat("first").await;
        let other = Uuid::new_v4();
        w.send(
            chat,
            CreateChatMessageRequest {
                model_config_id: Some(other),
                ..say("second")
            },
        )
        .await;
        // The chat stays on the new model: its next turn chains off the replayed one.
        w.send(chat, say("third")).await;

        let r = w.mock.requests();
        assert_eq!(r.len(), 3, "{r:#?}");
        assert_full(&r[1]);
        assert_eq!(r[1].input_types(), vec!["message", "message", "message"]);
        assert_eq!(r[1].user_texts(), vec!["first", "second"]);
        assert_chained(&r[2], &r[1], &["message"]);
        let models: Vec<Option<Uuid>> = w
            .messages(chat)
            .await
            .iter()
            .filter(|m| m.role == ChatMessageRole::Assistant)
            .map(|m| m.model_config_id)
            .collect();
        assert_eq!(models, vec![Some(w.model), Some(other), Some(other)]);
        w.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_mode_replays_the_whole_history() {
    on_each_backend(|store| async move {
        let w = world(&store, true).await;
        let chat = w.chat("first").await;
        w.send(
            chat,
            CreateChatMessageRequest {
                plan_mode: Some(ChatPlanMode::Plan),
                ..say("plan it")
            },
        )
        .await;

        let r = w.mock.requests();
        assert_eq!(r.len(), 2, "{r:#?}");
        assert_full(&r[1]);
        assert_eq!(r[1].user_texts(), vec!["first", "plan it"]);
        assert_eq!(r[1].input_types(), vec!["message", "message", "message"]);
        // The plan turn's reply is stored all the same.
        assert_eq!(
            saved_ids(&store, chat).await,
            vec![Some(id_of(&r[0])), Some(id_of(&r[1]))]
        );
        w.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_response_is_replayed_once_and_the_turn_succeeds() {
    on_each_backend(|store| async move {
        let w = world(&store, true).await;
        let chat = w.chat("first").await;
        w.mock.forget_responses();
        let started = tokio::time::Instant::now();
        w.send(chat, say("second")).await;
        // No retry backoff (the first retry waits a second): the replay followed at once.
        assert!(started.elapsed() < chaterror::retry::INITIAL_DELAY);

        let r = w.mock.requests();
        assert_eq!(r.len(), 3, "{r:#?}");
        // The chained attempt was refused with OpenAI's answer ...
        assert_eq!(r[1].status, 400);
        assert_eq!(r[1].previous_response_id(), Some(id_of(&r[0]).as_str()));
        // ... and the same step went out again as a full replay.
        assert_full(&r[2]);
        assert!(r[2].succeeded());
        assert_eq!(r[2].user_texts(), vec!["first", "second"]);
        assert_eq!(r[2].input_types(), vec!["message", "message", "message"]);
        let chat_row = w.engine.get_chat(&w.actor, chat).await.unwrap();
        assert_eq!(chat_row.status, ChatStatus::Waiting);
        assert_eq!(chat_row.last_error, None);
        // The new answer's id starts the chain anew.
        assert_eq!(
            saved_ids(&store, chat).await,
            vec![Some(id_of(&r[0])), Some(id_of(&r[2]))]
        );
        w.send(chat, say("third")).await;
        let r = w.mock.requests();
        assert_chained(&r[3], &r[2], &["message"]);
        w.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_store_no_step_is_chained() {
    on_each_backend(|store| async move {
        let w = world(&store, false).await;
        w.mock
            .push_reply(MockReply::function_call("call_1", "echo", json!({"n": 1})));
        let chat = w.chat("first").await;
        w.send(chat, say("second")).await;

        let r = w.mock.requests();
        assert_eq!(r.len(), 3, "{r:#?}");
        for request in &r {
            assert_full(request);
            assert_eq!(request.body["store"], false);
        }
        // The step after the tool call replays the call with its result.
        assert_eq!(
            r[1].input_types(),
            vec!["message", "function_call", "function_call_output"]
        );
        assert_eq!(r[2].user_texts(), vec!["first", "second"]);
        assert_eq!(w.mock.stored_responses(), 0);
        assert_eq!(saved_ids(&store, chat).await, vec![None, None, None]);
        w.engine.shutdown().await;
    })
    .await;
}

/// One scenario of the long-chat measurement: per turn, the tokens the requests carried
/// (the mock's estimate of each body's own input) and the input tokens billed (the mock's
/// `usage.input_tokens`: its own input plus the stored conversation it continues), summary
/// calls included.
struct LongChat {
    sent: Vec<u64>,
    billed: Vec<u64>,
    requests: usize,
    compactions: usize,
}

const LONG_CHAT_TURNS: usize = 50;

/// A user message of about 150 tokens (600 characters); the mock answers each with about as
/// much.
fn long_chat_message(turn: usize) -> String {
    let mut text = format!("Turn {turn}: ");
    while text.len() < 600 {
        text.push_str("please look at the next part of the build log and tell me what failed. ");
    }
    text
}

async fn long_chat(store: &Store, chaining: bool, context_limit: Option<i64>) -> LongChat {
    let w = world_with(store, chaining, context_limit).await;
    let mut sent = Vec::new();
    let mut billed = Vec::new();
    let mut seen = 0;
    let chat = w.chat(&long_chat_message(1)).await;
    for turn in 1..=LONG_CHAT_TURNS {
        if turn > 1 {
            w.send(chat, say(&long_chat_message(turn))).await;
        }
        let requests = w.mock.requests();
        let this_turn = requests.get(seen..).unwrap_or_default();
        sent.push(this_turn.iter().map(|r| r.tokens_sent).sum());
        billed.push(this_turn.iter().filter_map(|r| r.input_tokens).sum());
        seen = requests.len();
    }
    let compactions = w
        .messages(chat)
        .await
        .iter()
        .filter(|m| m.role == ChatMessageRole::Tool)
        .filter(|m| {
            m.content
                .iter()
                .any(|p| p.tool_name == chatd_core::COMPACTION_TOOL_NAME)
        })
        .count();
    w.engine.shutdown().await;
    LongChat {
        sent,
        billed,
        requests: seen,
        compactions,
    }
}

/// Tokens per turn over a 50-turn chat with and without compaction and chaining
/// (docs/compaction.md, "Measurement"). Prints a table; run with
/// `cargo test -p chatd-core --test it long_chat_tokens_per_turn -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints tokens per turn for docs/compaction.md"]
async fn long_chat_tokens_per_turn() {
    // A small window (8 000 tokens) so the 50 turns cross 70 % of it several times; a
    // large one (1 M) so they never do.
    let scenarios = [
        ("full replay", false, Some(1_000_000)),
        ("chaining", true, Some(1_000_000)),
        ("compaction (8k window)", false, Some(8_000)),
        ("compaction + chaining (8k window)", true, Some(8_000)),
    ];
    println!(
        "| scenario | requests | compactions | sent t1 | sent t10 | sent t25 | sent t50 | sent total | billed t50 | billed total |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, chaining, limit) in scenarios {
        // A fresh database per scenario (each starts from the same fixture).
        on_each_backend(move |store| async move {
            let r = long_chat(&store, chaining, limit).await;
            println!(
                "| {name} ({:?}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                store.dialect(),
                r.requests,
                r.compactions,
                r.sent[0],
                r.sent[9],
                r.sent[24],
                r.sent[49],
                r.sent.iter().sum::<u64>(),
                r.billed[49],
                r.billed.iter().sum::<u64>(),
            );
        })
        .await;
    }
}
