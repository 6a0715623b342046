//! Turn summaries (engine.md §10.3) end to end on SQLite and PostgreSQL: a completed turn
//! gets a model-written label in `last_turn_summary` (without bumping `updated_at`, with a
//! `summary_change` watch event and a hidden usage row), a summary begun before a newer
//! message is dropped, and failed turns or a switched-off engine make no summary call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::{Actor, Engine, EngineConfig, ModelResolver, ModelSelection, ResolvedModel};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::scripted::{
    create_request, engine_with_config, fast_settings, is_summary_request, wait_status, Reply,
    ScriptedModel, SCRIPTED_SUMMARY,
};
use chatprovider::{
    FinishReason, LanguageModel, ModelRequest, ModelStream, Part, Provider, Role, StreamPart,
};
use codersdk::{Chat, ChatError, ChatMessageUsage, ChatStatus, ChatWatchEventKind, Uuid};
use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::engine::{all_messages, say};

/// The word whose summary requests [`LabelModel`] holds until its gate opens.
const HELD: &str = "alpha";

/// Answers a turn "answer to <message>", and a summary request "<first word> turn label"
/// (the first word of the turn's user message), holding the summary of [`HELD`] turns at
/// a gate. Every call reports the same usage, so every call costs the same.
#[derive(Debug, Default)]
struct LabelModel {
    /// Signalled when a held summary request arrives.
    held: Arc<Notify>,
    /// Releases the held summary request.
    gate: Arc<Notify>,
    /// Summary requests received.
    summaries: AtomicUsize,
}

fn usage() -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: Some(100),
        output_tokens: Some(20),
        total_tokens: Some(120),
        ..Default::default()
    }
}

fn last_user_text(request: &ModelRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
        .flat_map(|m| m.content.iter())
        .find_map(|p| match p {
            Part::Text { text } => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn label_for(word: &str) -> String {
    format!("{word} turn label")
}

#[async_trait::async_trait]
impl LanguageModel for LabelModel {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn model_id(&self) -> &str {
        "gpt-4o-mini"
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        let input = last_user_text(&request);
        let mut gate = None;
        let text = if is_summary_request(&request) {
            self.summaries.fetch_add(1, Ordering::SeqCst);
            // The transcript: "User: <message>\n\nAssistant: <reply>".
            let word = input
                .strip_prefix("User: ")
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or_default()
                .to_owned();
            if word == HELD {
                self.held.notify_one();
                gate = Some(self.gate.clone());
            }
            label_for(&word)
        } else {
            format!("answer to {input}")
        };
        let wait = futures_util::stream::once(async move {
            if let Some(gate) = gate {
                gate.notified().await;
            }
        })
        .filter_map(|()| async { None });
        let parts = vec![
            StreamPart::TextDelta {
                block: 0,
                delta: text,
            },
            StreamPart::Finish {
                reason: FinishReason::Stop,
                usage: usage(),
            },
        ];
        wait.chain(futures_util::stream::iter(parts.into_iter().map(Ok)))
            .boxed()
    }
}

#[derive(Debug)]
struct LabelResolver {
    model_config_id: Uuid,
    model: Arc<LabelModel>,
}

#[async_trait::async_trait]
impl ModelResolver for LabelResolver {
    async fn select(&self, selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(selection.requested.unwrap_or(self.model_config_id))
    }

    async fn resolve(
        &self,
        _turn: chatd_core::TurnModelRequest,
    ) -> Result<ResolvedModel, ChatError> {
        Ok(ResolvedModel::new(self.model_config_id, self.model.clone()))
    }
}

/// An engine on `model`, titles off (so every hidden usage row is a summary's), turn
/// summaries as `summaries` says.
async fn label_engine(store: &Store, model: Arc<LabelModel>, summaries: bool) -> Engine {
    let resolver = Arc::new(LabelResolver {
        model_config_id: Uuid::new_v4(),
        model,
    });
    let config = EngineConfig::new(StoreOptions::new("unused"), resolver)
        .with_settings(fast_settings())
        .with_generated_titles(false)
        .with_turn_summaries(summaries);
    Engine::with_store(store.clone(), config).await.unwrap()
}

/// Polls until `check` holds for the chat (or panics after 10 s).
async fn wait_chat(
    engine: &Engine,
    actor: &Actor,
    chat_id: Uuid,
    what: &str,
    check: impl Fn(&Chat) -> bool,
) -> Chat {
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

/// The chat's hidden usage rows (soft-deleted, model-only): how many, and their cost.
async fn hidden_usage(store: &Store, chat_id: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(total_cost_micros), 0) AS BIGINT) FROM chat_messages \
         WHERE chat_id = $1 AND deleted = 1 AND visibility = 'model'",
    )
    .bind(chat_id.to_string())
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// The cost of the chat's visible assistant rows.
async fn reply_cost(store: &Store, chat_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(total_cost_micros), 0) AS BIGINT) FROM chat_messages \
         WHERE chat_id = $1 AND deleted = 0 AND role = 'assistant'",
    )
    .bind(chat_id.to_string())
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// Polls until the chat has `n` hidden usage rows (or panics after 10 s).
async fn wait_hidden_rows(store: &Store, chat_id: Uuid, n: i64) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hidden = hidden_usage(store, chat_id).await;
        if hidden.0 == n {
            return hidden;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hidden usage rows: {hidden:?}, wanted {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_turn_gets_a_label_without_bumping_updated_at() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = Arc::new(LabelModel::default());
        let engine = label_engine(&store, model.clone(), true).await;
        let mut watch = engine.watch(&actor).unwrap();
        let chat = engine
            .create_chat(&actor, create_request(f.org, &format!("{HELD} question")))
            .await
            .unwrap();
        // The turn ends while its summary is held: the label arrives after the finish.
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        model.held.notified().await;
        assert_eq!(done.last_turn_summary, None);
        let before = engine.get_chat(&actor, chat.id).await.unwrap();
        model.gate.notify_one();

        let label = label_for(HELD);
        let after = wait_chat(&engine, &actor, chat.id, "the label", |c| {
            c.last_turn_summary.as_deref() == Some(label.as_str())
        })
        .await;
        assert_eq!(after.updated_at, before.updated_at, "updated_at untouched");
        assert_eq!(after.status, ChatStatus::Waiting);
        assert_eq!(model.summaries.load(Ordering::SeqCst), 1);

        // Announced to the owner's watchers, carrying the label.
        let saw = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let e = watch.recv().await.unwrap();
                if e.kind == ChatWatchEventKind::SummaryChange {
                    break e.chat.last_turn_summary.clone();
                }
            }
        })
        .await
        .expect("a summary_change watch event");
        assert_eq!(saw.as_deref(), Some(label.as_str()));

        // The call is billed as a hidden row: spend counts it, history does not show it.
        let (rows, cost) = wait_hidden_rows(&store, chat.id, 1).await;
        assert_eq!(rows, 1);
        let reply = reply_cost(&store, chat.id).await;
        assert!(cost > 0, "the summary call is priced");
        assert_eq!(cost, reply, "same model, same usage, same price");
        let page = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 2, "{:?}", page.messages);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_begun_before_a_newer_message_is_dropped() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = Arc::new(LabelModel::default());
        let engine = label_engine(&store, model.clone(), true).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, &format!("{HELD} question")))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        // The first turn's summary has started (its newest message captured) and waits.
        model.held.notified().await;

        // A newer message and its turn: their summary lands first.
        engine
            .send_message(&actor, chat.id, say("beta question"))
            .await
            .unwrap();
        let fresh = label_for("beta");
        wait_chat(&engine, &actor, chat.id, "the newer label", |c| {
            c.last_turn_summary.as_deref() == Some(fresh.as_str())
        })
        .await;

        // The stale one finishes now: billed (its row follows its write attempt), not
        // stored.
        model.gate.notify_one();
        wait_hidden_rows(&store, chat.id, 2).await;
        let chat = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(chat.last_turn_summary.as_deref(), Some(fresh.as_str()));
        assert_eq!(model.summaries.load(Ordering::SeqCst), 2);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turned_off_there_is_no_summary_call() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = Arc::new(LabelModel::default());
        let engine = label_engine(&store, model.clone(), false).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "gamma question"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine
            .send_message(&actor, chat.id, say("delta question"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let page = engine
                .list_messages(&actor, chat.id, &all_messages())
                .await
                .unwrap();
            let status = engine.get_chat(&actor, chat.id).await.unwrap().status;
            if page.messages.len() == 4 && status == ChatStatus::Waiting {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{status:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A summary would have been spawned at the first finish, long done by now.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(model.summaries.load(Ordering::SeqCst), 0);
        let chat = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(chat.last_turn_summary, None);
        assert_eq!(hidden_usage(&store, chat.id).await, (0, 0));
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_turn_gets_no_summary_and_the_next_completed_one_does() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // An auth failure is not retried: the turn fails at once.
        let model = ScriptedModel::new([Reply::Fail(401)]);
        let engine = engine_with_config(&store, model.clone(), fast_settings(), |c| {
            c.with_generated_titles(false)
        })
        .await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "this fails"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(model.summaries.load(Ordering::SeqCst), 0);

        engine
            .send_message(&actor, chat.id, say("try again"))
            .await
            .unwrap();
        wait_chat(&engine, &actor, chat.id, "the scripted label", |c| {
            c.last_turn_summary.as_deref() == Some(SCRIPTED_SUMMARY)
        })
        .await;
        assert_eq!(model.summaries.load(Ordering::SeqCst), 1);
        // Summary requests are answered aside: only the two turns count as calls.
        assert_eq!(model.calls.load(Ordering::SeqCst), 2);
        engine.shutdown().await;
    })
    .await;
}

/// With a delay (the server's default is 2 s), a turn answered at once gets no label of
/// its own: only the last turn of a quick exchange is summarized, after the chat stayed
/// `waiting` for the delay — one model call, not one per turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_sent_back_to_back_pay_for_one_label() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = Arc::new(LabelModel::default());
        let resolver = Arc::new(LabelResolver {
            model_config_id: Uuid::new_v4(),
            model: model.clone(),
        });
        let mut settings = fast_settings();
        let delay = Duration::from_millis(400);
        settings.turn_summary_delay = delay;
        let config = EngineConfig::new(StoreOptions::new("unused"), resolver)
            .with_settings(settings)
            .with_generated_titles(false);
        let engine = Engine::with_store(store.clone(), config).await.unwrap();
        let chat = engine
            .create_chat(&actor, create_request(f.org, "alpha question"))
            .await
            .unwrap();
        for word in ["beta", "gamma"] {
            wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
            engine
                .send_message(&actor, chat.id, say(&format!("{word} question")))
                .await
                .unwrap();
        }
        let last = label_for("gamma");
        wait_chat(&engine, &actor, chat.id, "the last turn's label", |c| {
            c.last_turn_summary.as_deref() == Some(last.as_str())
        })
        .await;
        // The earlier turns' summaries were dropped before their calls; none comes later.
        tokio::time::sleep(delay * 2).await;
        assert_eq!(model.summaries.load(Ordering::SeqCst), 1);
        assert_eq!(wait_hidden_rows(&store, chat.id, 1).await.0, 1);
        engine.shutdown().await;
    })
    .await;
}
