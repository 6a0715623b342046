//! Store tests of the status-changing chat operations: pending dynamic tool calls, tool
//! results, interrupt, message edit and archiving. Every test runs on SQLite (a fresh temp
//! file) and, when `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on
//! PostgreSQL (a fresh schema that is dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::time::Duration;

use chatd_core::store::{
    now_micros, timestamp_from_micros, EditMessage, Lease, LeaseState, MessageVisibility, NewChat,
    NewMessage, SendMessage, SendOutcome, Step, Store, TurnOutcome, DYNAMIC_TOOL_TIMEOUT_MESSAGE,
    NOT_AWAITING_TOOL_RESULTS_MESSAGE, ONLY_USER_MESSAGES_EDITABLE_MESSAGE,
    PARENT_ARCHIVED_MESSAGE, TOOL_INTERRUPTED_MESSAGE,
};
use chatd_core::ErrorKind;
use codersdk::{
    validate_submit_tool_results_request, ChatBusyBehavior, ChatError, ChatMessage,
    ChatMessagePart, ChatMessageRole, ChatStatus, ChatStreamRetry, ChatStreamToolCall,
    ChatWatchEventKind, DynamicTool, MessagePage, RawJson, SubmitToolResultsRequest, ToolResult,
    Uuid, ValidatedToolResult,
};
use sqlx::Row;

use chatd_test_support::db::*;

/// The client-executed tools of [`dynamic_chat`].
const CLIENT_TOOLS: [&str; 2] = ["ask_user", "open_page"];

fn json(text: &str) -> RawJson {
    RawJson::from_json(text).unwrap()
}

fn dynamic_chat(f: &Fixture) -> NewChat {
    let mut chat = new_chat(f, "first");
    chat.dynamic_tools = CLIENT_TOOLS
        .iter()
        .map(|name| DynamicTool {
            name: (*name).to_owned(),
            description: format!("the client's {name}"),
            input_schema: json(r#"{"type":"object"}"#),
        })
        .collect();
    chat
}

/// A step calling the built-in `echo` (answered within the step) and both client tools.
fn mixed_step() -> Step {
    Step {
        assistant_parts: vec![
            ChatMessagePart::text("let me check"),
            ChatMessagePart::tool_call("b1", "echo", json("{}")),
            ChatMessagePart::tool_call("d1", "ask_user", json(r#"{"q":"why?"}"#)),
            ChatMessagePart::tool_call("d2", "open_page", json(r#"{"url":"/x"}"#)),
        ],
        tool_results: vec![vec![ChatMessagePart::tool_result(
            "b1",
            "echo",
            json(r#"{"ok":true}"#),
            false,
        )]],
        runtime_ms: 5,
        ..Step::default()
    }
}

fn text_step(text: &str) -> Step {
    Step {
        assistant_parts: vec![ChatMessagePart::text(text)],
        runtime_ms: 1,
        ..Step::default()
    }
}

fn pending_d1_d2() -> Vec<ChatStreamToolCall> {
    vec![
        ChatStreamToolCall {
            tool_call_id: "d1".into(),
            tool_name: "ask_user".into(),
            args: r#"{"q":"why?"}"#.into(),
        },
        ChatStreamToolCall {
            tool_call_id: "d2".into(),
            tool_name: "open_page".into(),
            args: r#"{"url":"/x"}"#.into(),
        },
    ]
}

fn send(f: &Fixture, text: &str, busy: ChatBusyBehavior) -> SendMessage {
    SendMessage {
        parts: vec![ChatMessagePart::text(text)],
        created_by: Some(f.user),
        model_config_id: None,
        busy_behavior: busy,
        plan_mode: None,
        mcp_server_ids: None,
    }
}

fn edit(text: &str) -> EditMessage {
    EditMessage {
        parts: vec![ChatMessagePart::text(text)],
        created_by: None,
        model_config_id: None,
    }
}

fn all_messages() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 100,
        ascending: true,
    }
}

/// Claims the only pending chat, which must be `chat`.
async fn claim(store: &Store, chat: Uuid) -> Lease {
    let leases = store.claim_pending(Uuid::new_v4(), 1).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].chat_id, chat);
    leases[0]
}

/// A chat with the client tools, left `requires_action` by [`mixed_step`] with `d1` and
/// `d2` pending. It must be the only pending chat when called.
async fn requires_action(store: &Store, f: &Fixture) -> (Uuid, Lease) {
    let (chat, _) = store.create_chat(dynamic_chat(f)).await.unwrap();
    let lease = claim(store, chat.id).await;
    store.persist_step(&lease, mixed_step()).await.unwrap();
    let finished = store
        .finish_turn(&lease, TurnOutcome::RequiresAction)
        .await
        .unwrap();
    assert_eq!(finished.status, ChatStatus::RequiresAction);
    (chat.id, lease)
}

/// A chat moved to `waiting` by a completed turn. It must be the only pending chat.
async fn waiting_chat(store: &Store, f: &Fixture, text: &str) -> Uuid {
    let (chat, _) = store.create_chat(new_chat(f, text)).await.unwrap();
    let lease = claim(store, chat.id).await;
    store
        .finish_turn(&lease, TurnOutcome::Completed)
        .await
        .unwrap();
    chat.id
}

/// Makes `child` a sub-agent chat of `parent` (creating children is not a store
/// operation yet).
async fn adopt(store: &Store, parent: Uuid, child: Uuid) {
    sqlx::query("UPDATE chats SET parent_chat_id = $2, root_chat_id = $2 WHERE id = $1")
        .bind(child.to_string())
        .bind(parent.to_string())
        .execute(store.pool())
        .await
        .unwrap();
}

/// Sets `updated_at` far in the past, so a bump is visible and its absence provable.
async fn age(store: &Store, chat: Uuid) {
    sqlx::query("UPDATE chats SET updated_at = 1 WHERE id = $1")
        .bind(chat.to_string())
        .execute(store.pool())
        .await
        .unwrap();
}

/// Chat columns the operations write, as stored.
#[derive(Debug)]
struct RawChat {
    status: String,
    worker_id: Option<String>,
    started_at: Option<i64>,
    heartbeat_at: Option<i64>,
    lease_epoch: i64,
    last_error: Option<String>,
    retry_state: Option<String>,
    updated_at: i64,
    archived: i64,
    pin_order: i32,
}

async fn raw_chat(store: &Store, chat: Uuid) -> RawChat {
    let row = sqlx::query(
        "SELECT status, worker_id, started_at, heartbeat_at, lease_epoch, last_error, \
         retry_state, updated_at, archived, pin_order FROM chats WHERE id = $1",
    )
    .bind(chat.to_string())
    .fetch_one(store.pool())
    .await
    .unwrap();
    RawChat {
        status: row.try_get("status").unwrap(),
        worker_id: row.try_get("worker_id").unwrap(),
        started_at: row.try_get("started_at").unwrap(),
        heartbeat_at: row.try_get("heartbeat_at").unwrap(),
        lease_epoch: row.try_get("lease_epoch").unwrap(),
        last_error: row.try_get("last_error").unwrap(),
        retry_state: row.try_get("retry_state").unwrap(),
        updated_at: row.try_get("updated_at").unwrap(),
        archived: row.try_get("archived").unwrap(),
        pin_order: row.try_get("pin_order").unwrap(),
    }
}

/// Every stored message row of the chat, deleted ones too: (id, role, deleted).
async fn all_rows(store: &Store, chat: Uuid) -> Vec<(i64, String, i64)> {
    sqlx::query("SELECT id, role, deleted FROM chat_messages WHERE chat_id = $1 ORDER BY id")
        .bind(chat.to_string())
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get("id").unwrap(),
                r.try_get("role").unwrap(),
                r.try_get("deleted").unwrap(),
            )
        })
        .collect()
}

async fn history(store: &Store, chat: Uuid) -> Vec<ChatMessage> {
    store.list_messages(chat, &all_messages()).await.unwrap().0
}

fn interrupted_results(calls: &[(&str, &str)], message: &str) -> Vec<Vec<ChatMessagePart>> {
    calls
        .iter()
        .map(|(id, name)| vec![ChatMessagePart::tool_error(*id, *name, message)])
        .collect()
}

fn contents(messages: &[ChatMessage]) -> Vec<Vec<ChatMessagePart>> {
    messages.iter().map(|m| m.content.clone()).collect()
}

fn validated(results: &[(&str, &str, bool)]) -> Vec<ValidatedToolResult> {
    results
        .iter()
        .map(|(id, output, is_error)| ValidatedToolResult {
            tool_call_id: (*id).to_owned(),
            output: json(output),
            is_error: *is_error,
        })
        .collect()
}

// ----- pending dynamic calls -----

#[tokio::test]
async fn pending_calls_are_the_unanswered_client_calls_of_the_last_step() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(dynamic_chat(&f)).await.unwrap();
        // No assistant message yet.
        assert!(store.pending_tool_calls(chat.id).await.unwrap().is_empty());
        let lease = claim(&store, chat.id).await;
        store.persist_step(&lease, mixed_step()).await.unwrap();
        // The built-in call b1 was answered within the step; only the client calls wait.
        assert_eq!(
            store.pending_tool_calls(chat.id).await.unwrap(),
            pending_d1_d2()
        );
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.pending_tool_calls().await.unwrap(), pending_d1_d2());
        tx.rollback().await.unwrap();
        // Only the last assistant message counts: a later step without calls leaves
        // nothing pending.
        store
            .persist_step(&lease, text_step("never mind"))
            .await
            .unwrap();
        assert!(store.pending_tool_calls(chat.id).await.unwrap().is_empty());
        // A built-in that shares a client tool's name wins and answers the call in the
        // same step: not pending.
        let collision = Step {
            assistant_parts: vec![
                ChatMessagePart::tool_call("c1", "ask_user", json("{}")),
                ChatMessagePart::tool_call("c2", "open_page", json("{}")),
            ],
            tool_results: vec![vec![ChatMessagePart::tool_result(
                "c1",
                "ask_user",
                json("1"),
                false,
            )]],
            ..Step::default()
        };
        store.persist_step(&lease, collision).await.unwrap();
        let pending = store.pending_tool_calls(chat.id).await.unwrap();
        let ids: Vec<_> = pending.iter().map(|c| c.tool_call_id.as_str()).collect();
        assert_eq!(ids, ["c2"]);

        // A chat without client tools has no pending calls, whatever the names.
        store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        let (plain, _) = store.create_chat(new_chat(&f, "plain")).await.unwrap();
        let lease = claim(&store, plain.id).await;
        store.persist_step(&lease, mixed_step()).await.unwrap();
        assert!(store.pending_tool_calls(plain.id).await.unwrap().is_empty());

        let err = store.pending_tool_calls(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

// ----- tool results -----

#[tokio::test]
async fn tool_results_are_checked_against_the_pending_calls() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = requires_action(&store, &f).await;
        let rows_before = all_rows(&store, chat).await;
        let cases: &[(&[&str], &str)] = &[
            (&["d1", "d1", "d2"], "Duplicate tool_call_id in results."),
            (&["d1"], "Missing tool result."),
            (&[], "Missing tool result."),
            (&["d1", "d2", "zz"], "Unexpected tool result."),
            // b1 was answered by its built-in result: not pending, so unexpected.
            (&["d1", "d2", "b1"], "Unexpected tool result."),
            (&["d1", "b1"], "Missing tool result."),
        ];
        for (ids, message) in cases {
            let results: Vec<_> = ids.iter().map(|id| (*id, "{}", false)).collect();
            let err = store
                .submit_tool_results(chat, validated(&results))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{ids:?}");
            assert_eq!(err.http_status(), 400);
            let response = err.to_response();
            assert_eq!(response.message, *message, "{ids:?}");
            assert!(!response.validations.is_empty(), "{ids:?}");
            // A refusal writes nothing.
            assert_eq!(all_rows(&store, chat).await, rows_before);
            assert_eq!(raw_chat(&store, chat).await.status, "requires_action");
        }

        // The HTTP layer's validator runs first; it unwraps double-encoded JSON.
        let request = SubmitToolResultsRequest {
            results: vec![
                ToolResult {
                    tool_call_id: "d2".into(),
                    output: Some(json(r#""{\"error\":\"denied\"}""#)),
                    is_error: true,
                },
                ToolResult {
                    tool_call_id: "d1".into(),
                    output: Some(json(r#"{"answer":42}"#)),
                    is_error: false,
                },
            ],
        };
        let results = validate_submit_tool_results_request(&request).unwrap();
        sqlx::query("UPDATE chats SET last_error = '{\"message\":\"old\"}' WHERE id = $1")
            .bind(chat.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        age(&store, chat).await;
        let submitted = store.submit_tool_results(chat, results).await.unwrap();
        assert_eq!(submitted.status, ChatStatus::Pending);
        // One tool message per result, in request order, named after the pending call.
        assert_eq!(
            contents(&submitted.messages),
            vec![
                vec![ChatMessagePart::tool_result(
                    "d2",
                    "open_page",
                    json(r#"{"error":"denied"}"#),
                    true
                )],
                vec![ChatMessagePart::tool_result(
                    "d1",
                    "ask_user",
                    json(r#"{"answer":42}"#),
                    false
                )],
            ]
        );
        assert!(submitted
            .messages
            .iter()
            .all(|m| m.role == ChatMessageRole::Tool));
        assert!(submitted.messages[0].id < submitted.messages[1].id);
        // Visible to the user (visibility `both`), answered, and the chat runs again.
        let shown = history(&store, chat).await;
        assert_eq!(shown[shown.len() - 2..], submitted.messages[..]);
        assert!(store.pending_tool_calls(chat).await.unwrap().is_empty());
        let raw = raw_chat(&store, chat).await;
        assert_eq!(raw.status, "pending");
        assert_eq!(raw.last_error, None);
        assert!(raw.updated_at > 1);

        // A repeated submission is a conflict and writes nothing.
        let rows = all_rows(&store, chat).await;
        let err = store
            .submit_tool_results(chat, validated(&[("d1", "1", false), ("d2", "2", false)]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.http_status(), 409);
        assert_eq!(err.to_response().message, NOT_AWAITING_TOOL_RESULTS_MESSAGE);
        assert_eq!(all_rows(&store, chat).await, rows);
    })
    .await;
}

#[tokio::test]
async fn tool_results_refuse_archived_chats_before_checking_the_status() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let chat = waiting_chat(&store, &f, "idle").await;
        let err = store
            .submit_tool_results(chat, validated(&[("d1", "1", false)]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        store.set_archived(chat, true).await.unwrap();
        let err = store
            .submit_tool_results(chat, validated(&[("d1", "1", false)]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.http_status(), 400);
        let err = store
            .submit_tool_results(Uuid::new_v4(), validated(&[("d1", "1", false)]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

// ----- interrupt -----

#[tokio::test]
async fn interrupting_a_running_turn_keeps_its_partial_step() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let lease = claim(&store, chat.id).await;
        store
            .send_message(chat.id, send(&f, "next", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let interrupted = store.interrupt(chat.id).await.unwrap();
        assert_eq!(interrupted.previous_status, ChatStatus::Running);
        assert_eq!(interrupted.status, ChatStatus::Waiting);
        assert!(interrupted.changed());
        assert!(interrupted.tool_results().is_empty());
        // The running turn's lease ended: its worker is the one to stop.
        assert_eq!(interrupted.ended_turn, Some(lease));
        // The worker's finish routine promotes the queue, not the interrupt.
        assert_eq!(interrupted.user_message(), None);
        assert!(interrupted.queue.is_none(), "the queue is unchanged");
        assert_eq!(store.list_queue(chat.id).await.unwrap().len(), 1);
        let raw = raw_chat(&store, chat.id).await;
        assert_eq!(raw.status, "waiting");
        assert_eq!(raw.worker_id, None);
        assert_eq!(raw.started_at, None);
        assert_eq!(raw.heartbeat_at, None);
        assert_eq!(raw.lease_epoch, lease.epoch);
        // The interrupted worker still persists its partial step, then finishes.
        let partial = store
            .persist_step(&lease, text_step("half an ans"))
            .await
            .unwrap();
        assert_eq!(partial.lease, LeaseState::Interrupted);
        let finished = store
            .finish_turn(&lease, TurnOutcome::Interrupted)
            .await
            .unwrap();
        assert_eq!(finished.status, ChatStatus::Pending);
        assert_eq!(
            finished.ended_turn, None,
            "the finishing worker ends no other turn"
        );
        let promoted = finished.user_message().cloned().unwrap();
        assert_eq!(promoted.content, vec![ChatMessagePart::text("next")]);
        let shown = history(&store, chat.id).await;
        assert_eq!(shown[1], partial.transition.messages[0]);
        assert_eq!(shown[2], promoted);
    })
    .await;
}

#[tokio::test]
async fn interrupting_requires_action_answers_the_pending_calls() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        // Without a queue: synthetic results, then waiting.
        let (chat, lease) = requires_action(&store, &f).await;
        let before = raw_chat(&store, chat).await;
        let interrupted = store.interrupt(chat).await.unwrap();
        assert_eq!(interrupted.previous_status, ChatStatus::RequiresAction);
        assert_eq!(interrupted.status, ChatStatus::Waiting);
        assert_eq!(interrupted.user_message(), None);
        assert_eq!(interrupted.ended_turn, None, "no turn ran the chat");
        assert_eq!(
            contents(&interrupted.tool_results()),
            interrupted_results(
                &[("d1", "ask_user"), ("d2", "open_page")],
                TOOL_INTERRUPTED_MESSAGE
            )
        );
        assert!(interrupted
            .tool_results()
            .iter()
            .all(|m| m.role == ChatMessageRole::Tool));
        assert!(store.pending_tool_calls(chat).await.unwrap().is_empty());
        let shown = history(&store, chat).await;
        assert_eq!(shown[shown.len() - 2..], interrupted.tool_results()[..]);
        let raw = raw_chat(&store, chat).await;
        assert_eq!(raw.status, "waiting");
        assert!(raw.lease_epoch > before.lease_epoch);
        // The finished turn's lease stays dead.
        let err = store
            .persist_step(&lease, text_step("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);

        // With a queue: the head is promoted at once, after the synthetic results.
        let (chat, _) = requires_action(&store, &f).await;
        store
            .send_message(chat, send(&f, "next", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let interrupted = store.interrupt(chat).await.unwrap();
        assert_eq!(interrupted.status, ChatStatus::Pending);
        assert_eq!(interrupted.tool_results().len(), 2);
        assert_eq!(interrupted.queue, Some(Vec::new()));
        let promoted = interrupted.user_message().cloned().unwrap();
        assert_eq!(promoted.role, ChatMessageRole::User);
        assert_eq!(promoted.content, vec![ChatMessagePart::text("next")]);
        assert!(promoted.id > interrupted.tool_results()[1].id);
        assert_eq!(history(&store, chat).await.last(), Some(&promoted));
        assert_eq!(raw_chat(&store, chat).await.status, "pending");
        assert!(store.list_queue(chat).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn interrupting_a_pending_chat_never_leaves_a_queue_waiting() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "a")).await.unwrap();
        let interrupted = store.interrupt(chat.id).await.unwrap();
        assert_eq!(interrupted.previous_status, ChatStatus::Pending);
        assert_eq!(interrupted.status, ChatStatus::Waiting);
        assert!(interrupted.changed());
        assert_eq!(raw_chat(&store, chat.id).await.status, "waiting");

        let (chat, _) = store.create_chat(new_chat(&f, "b")).await.unwrap();
        store
            .send_message(chat.id, send(&f, "queued", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let interrupted = store.interrupt(chat.id).await.unwrap();
        assert_eq!(interrupted.previous_status, ChatStatus::Pending);
        assert_eq!(interrupted.status, ChatStatus::Pending);
        assert!(interrupted.changed() && interrupted.status_set);
        assert_eq!(
            interrupted.user_message().unwrap().content,
            vec![ChatMessagePart::text("queued")]
        );
        assert_eq!(interrupted.queue, Some(Vec::new()));
        assert_eq!(raw_chat(&store, chat.id).await.status, "pending");
    })
    .await;
}

#[tokio::test]
async fn interrupt_after_a_promote_does_not_revive_the_old_lease() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let lease = claim(&store, chat.id).await;
        let sent = store
            .send_message(chat.id, send(&f, "now", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let SendOutcome::Queued { queued, .. } = sent.outcome else {
            panic!("expected a queued message");
        };
        // Promote discards the running turn (pending, worker cleared)...
        store.promote_queued(chat.id, queued.id).await.unwrap();
        // ...and an interrupt before the next claim must not hand the chat back to it.
        let interrupted = store.interrupt(chat.id).await.unwrap();
        assert_eq!(interrupted.status, ChatStatus::Waiting);
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.check_lease(&lease).await.unwrap(), LeaseState::Lost);
        tx.rollback().await.unwrap();
        let err = store
            .persist_step(&lease, text_step("stale"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        let finished = store
            .finish_turn(&lease, TurnOutcome::Interrupted)
            .await
            .unwrap();
        assert!(!finished.changed());
    })
    .await;
}

#[tokio::test]
async fn interrupting_an_idle_chat_changes_nothing() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let waiting = waiting_chat(&store, &f, "done").await;
        let (failed, _) = store.create_chat(new_chat(&f, "fails")).await.unwrap();
        let lease = claim(&store, failed.id).await;
        store
            .finish_turn(&lease, TurnOutcome::Failed(ChatError::generic("boom")))
            .await
            .unwrap();
        for (chat, status) in [
            (waiting, ChatStatus::Waiting),
            (failed.id, ChatStatus::Error),
        ] {
            age(&store, chat).await;
            let before = raw_chat(&store, chat).await;
            let interrupted = store.interrupt(chat).await.unwrap();
            assert!(!interrupted.changed());
            assert_eq!(interrupted.previous_status, status);
            assert_eq!(interrupted.status, status);
            assert!(interrupted.tool_results().is_empty() && interrupted.user_message().is_none());
            let after = raw_chat(&store, chat).await;
            assert_eq!(after.status, before.status);
            assert_eq!(after.updated_at, 1);
            assert_eq!(after.lease_epoch, before.lease_epoch);
            assert_eq!(after.last_error, before.last_error);
        }
        let err = store.interrupt(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn interrupting_send_over_requires_action_promotes_at_once() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        // Empty queue: the new message is the head and runs next.
        let (chat, _) = requires_action(&store, &f).await;
        let sent = store
            .send_message(chat, send(&f, "new", ChatBusyBehavior::Interrupt))
            .await
            .unwrap();
        assert!(matches!(
            sent.outcome,
            SendOutcome::Queued {
                interrupted: true,
                ..
            }
        ));
        let sent = sent.transition;
        assert_eq!(sent.status, ChatStatus::Pending);
        assert_eq!(
            contents(&sent.tool_results()),
            interrupted_results(
                &[("d1", "ask_user"), ("d2", "open_page")],
                TOOL_INTERRUPTED_MESSAGE
            )
        );
        let promoted = sent.user_message().cloned().unwrap();
        assert_eq!(promoted.content, vec![ChatMessagePart::text("new")]);
        assert_eq!(promoted.created_by, Some(f.user));
        assert_eq!(sent.queue, Some(Vec::new()));
        let shown = history(&store, chat).await;
        assert_eq!(
            shown[shown.len() - 3..shown.len() - 1],
            sent.tool_results()[..]
        );
        assert_eq!(shown.last(), Some(&promoted));
        assert_eq!(raw_chat(&store, chat).await.status, "pending");
        // Out of the way of the next claim.
        store.interrupt(chat).await.unwrap();

        // A non-empty queue keeps FIFO order: the older entry is promoted.
        let (chat, _) = requires_action(&store, &f).await;
        store
            .send_message(chat, send(&f, "older", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let sent = store
            .send_message(chat, send(&f, "newer", ChatBusyBehavior::Interrupt))
            .await
            .unwrap();
        let sent = sent.transition;
        assert_eq!(sent.status, ChatStatus::Pending);
        assert_eq!(
            sent.user_message().unwrap().content,
            vec![ChatMessagePart::text("older")]
        );
        let queue = sent.queue.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].content, vec![ChatMessagePart::text("newer")]);
    })
    .await;
}

#[tokio::test]
async fn interrupting_send_over_an_error_with_a_queue_promotes_the_head() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let lease = claim(&store, chat.id).await;
        store
            .send_message(chat.id, send(&f, "queued", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        store
            .finish_turn(&lease, TurnOutcome::Failed(ChatError::generic("boom")))
            .await
            .unwrap();
        assert_eq!(raw_chat(&store, chat.id).await.status, "error");
        let sent = store
            .send_message(chat.id, send(&f, "retry", ChatBusyBehavior::Interrupt))
            .await
            .unwrap();
        assert!(matches!(
            sent.outcome,
            SendOutcome::Queued {
                interrupted: true,
                ..
            }
        ));
        let sent = sent.transition;
        assert_eq!(sent.status, ChatStatus::Pending);
        assert!(sent.tool_results().is_empty());
        assert_eq!(
            sent.user_message().unwrap().content,
            vec![ChatMessagePart::text("queued")]
        );
        assert_eq!(sent.queue.map(|q| q.len()), Some(1));
        let raw = raw_chat(&store, chat.id).await;
        assert_eq!(raw.status, "pending");
        assert_eq!(raw.last_error, None);
    })
    .await;
}

#[tokio::test]
async fn promoting_over_requires_action_answers_the_pending_calls() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = requires_action(&store, &f).await;
        let sent = store
            .send_message(chat, send(&f, "go on", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        assert_eq!(sent.transition.status, ChatStatus::RequiresAction);
        let SendOutcome::Queued { queued, .. } = sent.outcome else {
            panic!("expected a queued message");
        };
        let promoted = store.promote_queued(chat, queued.id).await.unwrap();
        assert_eq!(
            contents(&promoted.transition.tool_results()),
            interrupted_results(
                &[("d1", "ask_user"), ("d2", "open_page")],
                TOOL_INTERRUPTED_MESSAGE
            )
        );
        assert!(promoted.message.id > promoted.transition.tool_results()[1].id);
        assert!(store.pending_tool_calls(chat).await.unwrap().is_empty());
        assert_eq!(raw_chat(&store, chat).await.status, "pending");
    })
    .await;
}

// ----- stale recovery -----

#[tokio::test]
async fn a_timed_out_requires_action_gets_error_results() {
    on_each_backend(|store| async move {
        const STALE_AFTER: Duration = Duration::from_secs(300);
        let f = fixture(&store).await;
        let (chat, _) = requires_action(&store, &f).await;
        let now = timestamp_from_micros(now_micros()).unwrap();
        // Fresh: left alone.
        let recovered = store.recover_stale(now, STALE_AFTER).await.unwrap();
        assert!(recovered.timed_out().is_empty() && recovered.tool_results().is_empty());
        age(&store, chat).await;
        let recovered = store.recover_stale(now, STALE_AFTER).await.unwrap();
        assert_eq!(recovered.timed_out(), vec![chat]);
        assert_eq!(
            contents(&recovered.tool_results()),
            interrupted_results(
                &[("d1", "ask_user"), ("d2", "open_page")],
                DYNAMIC_TOOL_TIMEOUT_MESSAGE
            )
        );
        let shown = history(&store, chat).await;
        assert_eq!(shown[shown.len() - 2..], recovered.tool_results()[..]);
        assert!(store.pending_tool_calls(chat).await.unwrap().is_empty());
        let read = store.get_chat(chat).await.unwrap().unwrap();
        assert_eq!(read.status, ChatStatus::Error);
        assert_eq!(
            read.last_error.unwrap().message,
            DYNAMIC_TOOL_TIMEOUT_MESSAGE
        );
        let again = store.recover_stale(now, STALE_AFTER).await.unwrap();
        assert!(again.timed_out().is_empty() && again.tool_results().is_empty());
    })
    .await;
}

// ----- edit -----

#[tokio::test]
async fn edit_truncates_history_and_discards_the_running_turn() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, first) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let lease = claim(&store, chat.id).await;
        let step1 = store.persist_step(&lease, mixed_step()).await.unwrap();
        store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        let model = Uuid::new_v4();
        let mut second = send(&f, "second", ChatBusyBehavior::Queue);
        second.model_config_id = Some(model);
        let SendOutcome::Inserted(second) =
            store.send_message(chat.id, second).await.unwrap().outcome
        else {
            panic!("expected an inserted message");
        };
        let lease = claim(&store, chat.id).await;
        let step2 = store
            .persist_step(&lease, text_step("partial"))
            .await
            .unwrap();
        let retry = ChatStreamRetry {
            attempt: 1,
            delay_ms: 1000,
            error: "overloaded".into(),
            kind: None,
            provider: String::new(),
            status_code: 0,
            retrying_at: timestamp_from_micros(now_micros()).unwrap(),
        };
        store.record_retry(&lease, Some(retry)).await.unwrap();
        for text in ["q1", "q2"] {
            store
                .send_message(chat.id, send(&f, text, ChatBusyBehavior::Queue))
                .await
                .unwrap();
        }
        sqlx::query("UPDATE chats SET last_error = '{\"message\":\"old\"}' WHERE id = $1")
            .bind(chat.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        age(&store, chat.id).await;

        let edited = store
            .edit_message(chat.id, second.id, edit("second, better"))
            .await
            .unwrap();
        assert_eq!(edited.transition.status, ChatStatus::Pending);
        assert_eq!(edited.transition.queue, Some(Vec::new()));
        assert!(edited.transition.preview_reset);
        assert_eq!(edited.transition.ended_turn, Some(lease));
        assert_eq!(
            edited.deleted_message_ids,
            vec![second.id, step2.transition.messages[0].id]
        );
        // The replacement keeps the author and the model of the edited message.
        let message = &edited.message;
        assert_eq!(message.role, ChatMessageRole::User);
        assert_eq!(
            message.content,
            vec![ChatMessagePart::text("second, better")]
        );
        assert_eq!(message.created_by, Some(f.user));
        assert_eq!(message.model_config_id, Some(model));
        assert!(message.id > step2.transition.messages[0].id);
        let mut expected = vec![first.clone()];
        expected.extend(step1.transition.messages.clone());
        expected.push(message.clone());
        assert_eq!(history(&store, chat.id).await, expected);
        assert!(store.list_queue(chat.id).await.unwrap().is_empty());
        let read = store.get_chat(chat.id).await.unwrap().unwrap();
        assert_eq!(read.last_model_config_id, model);
        let raw = raw_chat(&store, chat.id).await;
        assert_eq!(raw.status, "pending");
        assert_eq!(raw.worker_id, None);
        assert_eq!(raw.started_at, None);
        assert_eq!(raw.heartbeat_at, None);
        assert_eq!(raw.retry_state, None);
        assert_eq!(raw.last_error, None);
        assert!(raw.updated_at > 1);
        assert!(raw.lease_epoch > lease.epoch);
        // The running turn's lease is lost: its partial step is refused, even after an
        // interrupt would have made an unchanged epoch look interrupted.
        let err = store
            .persist_step(&lease, text_step("late"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        store.interrupt(chat.id).await.unwrap();
        let err = store
            .persist_step(&lease, text_step("late"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);

        // An explicit model and author win; only the edited message is deleted now.
        let other_model = Uuid::new_v4();
        let again = store
            .edit_message(
                chat.id,
                message.id,
                EditMessage {
                    parts: vec![ChatMessagePart::text("third")],
                    created_by: Some(f.user),
                    model_config_id: Some(other_model),
                },
            )
            .await
            .unwrap();
        assert_eq!(again.deleted_message_ids, vec![message.id]);
        assert_eq!(again.message.model_config_id, Some(other_model));
    })
    .await;
}

#[tokio::test]
async fn edit_refuses_what_cannot_be_edited() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, first) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let lease = claim(&store, chat.id).await;
        let step = store
            .persist_step(&lease, text_step("reply"))
            .await
            .unwrap();
        store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        let (other, other_first) = store.create_chat(new_chat(&f, "other")).await.unwrap();
        // A model-only user row, as compaction writes: never shown, never editable.
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        let hidden = tx
            .insert_message(NewMessage {
                role: ChatMessageRole::User,
                parts: vec![ChatMessagePart::text("summary")],
                visibility: MessageVisibility::Model,
                created_by: None,
                model_config_id: None,
                usage: None,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rows = all_rows(&store, chat.id).await;
        let before = raw_chat(&store, chat.id).await;

        for id in [i64::MAX, other_first.id, hidden.id] {
            let err = store
                .edit_message(chat.id, id, edit("x"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{id}");
        }
        let err = store
            .edit_message(chat.id, step.transition.messages[0].id, edit("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_string(), ONLY_USER_MESSAGES_EDITABLE_MESSAGE);
        let err = store
            .edit_message(Uuid::new_v4(), first.id, edit("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(all_rows(&store, chat.id).await, rows);
        let after = raw_chat(&store, chat.id).await;
        assert_eq!(after.status, before.status);
        assert_eq!(after.updated_at, before.updated_at);

        // A deleted message is gone.
        store
            .edit_message(chat.id, first.id, edit("again"))
            .await
            .unwrap();
        let err = store
            .edit_message(chat.id, first.id, edit("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);

        // Archived chats are read-only.
        store.set_archived(other.id, true).await.unwrap();
        let err = store
            .edit_message(other.id, other_first.id, edit("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(history(&store, other.id).await, vec![other_first]);
    })
    .await;
}

#[tokio::test]
async fn edit_over_requires_action_drops_the_pending_calls() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = requires_action(&store, &f).await;
        let first = history(&store, chat).await[0].clone();
        let edited = store
            .edit_message(chat, first.id, edit("rephrased"))
            .await
            .unwrap();
        assert_eq!(edited.transition.status, ChatStatus::Pending);
        // The assistant step with the calls is deleted: nothing is pending any more.
        assert_eq!(edited.deleted_message_ids.len(), 3);
        assert!(store.pending_tool_calls(chat).await.unwrap().is_empty());
        let err = store
            .submit_tool_results(chat, validated(&[("d1", "1", false), ("d2", "2", false)]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
    })
    .await;
}

// ----- archive -----

#[tokio::test]
async fn archiving_a_parent_archives_the_family_and_interrupts_a_running_child() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let parent = waiting_chat(&store, &f, "parent").await;
        sqlx::query("UPDATE chats SET pin_order = 2 WHERE id = $1")
            .bind(parent.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let (child, _) = store.create_chat(new_chat(&f, "child")).await.unwrap();
        adopt(&store, parent, child.id).await;
        let lease = claim(&store, child.id).await;
        store
            .send_message(child.id, send(&f, "queued", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        age(&store, parent).await;

        let changed = store.set_archived(parent, true).await.unwrap();
        assert_eq!(changed.len(), 2);
        let mut ids: Vec<_> = changed.iter().map(|c| c.chat_id).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| id.to_string());
        assert_eq!(ids, sorted, "reported in id order");
        ids.sort();
        let by_id: HashMap<_, _> = changed.iter().map(|c| (c.chat_id, c)).collect();
        let p = by_id[&parent];
        assert_eq!(
            (
                &p.previous_status,
                &p.status,
                p.watch == Some(ChatWatchEventKind::Deleted)
            ),
            (&ChatStatus::Waiting, &ChatStatus::Waiting, true)
        );
        let c = by_id[&child.id];
        assert_eq!(
            (
                &c.previous_status,
                &c.status,
                c.watch == Some(ChatWatchEventKind::Deleted)
            ),
            (&ChatStatus::Running, &ChatStatus::Waiting, true)
        );
        // Archiving stopped the child's turn (its lease ended) and left its queue alone.
        assert_eq!(c.ended_turn, Some(lease));
        assert!(c.queue.is_none(), "the queue is unchanged");
        assert_eq!(store.list_queue(child.id).await.unwrap().len(), 1);
        for id in [parent, child.id] {
            let raw = raw_chat(&store, id).await;
            assert_eq!(raw.archived, 1);
            assert_eq!(raw.pin_order, 0);
            assert_eq!(raw.status, "waiting");
            assert!(store.get_chat(id).await.unwrap().unwrap().archived);
        }
        // A flag-only change leaves the chat's place in the list alone.
        assert_eq!(raw_chat(&store, parent).await.updated_at, 1);
        let raw = raw_chat(&store, child.id).await;
        assert_eq!(raw.worker_id, None);
        assert_eq!(raw.lease_epoch, lease.epoch);

        // The child's worker keeps its partial step; its finish promotes nothing in an
        // archived chat.
        let partial = store.persist_step(&lease, text_step("half")).await.unwrap();
        assert_eq!(partial.lease, LeaseState::Interrupted);
        let finished = store
            .finish_turn(&lease, TurnOutcome::Interrupted)
            .await
            .unwrap();
        assert_eq!(finished.status, ChatStatus::Waiting);
        assert_eq!(finished.user_message(), None);
        assert!(finished.queue.is_none(), "the queue is unchanged");
        assert_eq!(store.list_queue(child.id).await.unwrap().len(), 1);

        // Archiving again, from either member, is a no-op.
        assert!(store.set_archived(parent, true).await.unwrap().is_empty());
        assert!(store.set_archived(child.id, true).await.unwrap().is_empty());
        let err = store.set_archived(Uuid::new_v4(), true).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn archiving_from_a_child_covers_the_family_and_answers_pending_calls() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (root, _) = requires_action(&store, &f).await;
        let (child, _) = store.create_chat(new_chat(&f, "child")).await.unwrap();
        adopt(&store, root, child.id).await;
        let (stranger, _) = store.create_chat(new_chat(&f, "not family")).await.unwrap();

        let changed = store.set_archived(child.id, true).await.unwrap();
        let by_id: HashMap<_, _> = changed.iter().map(|c| (c.chat_id, c)).collect();
        assert_eq!(by_id.len(), 2);
        let r = by_id[&root];
        assert_eq!(r.previous_status, ChatStatus::RequiresAction);
        assert_eq!(r.status, ChatStatus::Waiting);
        assert_eq!(
            contents(&r.tool_results()),
            interrupted_results(
                &[("d1", "ask_user"), ("d2", "open_page")],
                TOOL_INTERRUPTED_MESSAGE
            )
        );
        let c = by_id[&child.id];
        assert_eq!(c.previous_status, ChatStatus::Pending);
        assert_eq!(c.status, ChatStatus::Waiting);
        assert!(store.pending_tool_calls(root).await.unwrap().is_empty());
        assert_eq!(raw_chat(&store, root).await.archived, 1);
        // Another family is untouched.
        let raw = raw_chat(&store, stranger.id).await;
        assert_eq!((raw.archived, raw.status.as_str()), (0, "pending"));
    })
    .await;
}

#[tokio::test]
async fn unarchiving_restores_the_family_and_runs_its_queue() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (parent, _) = store.create_chat(new_chat(&f, "parent")).await.unwrap();
        let lease = claim(&store, parent.id).await;
        store
            .send_message(parent.id, send(&f, "later", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let (child, _) = store.create_chat(new_chat(&f, "child")).await.unwrap();
        adopt(&store, parent.id, child.id).await;
        store.set_archived(parent.id, true).await.unwrap();
        store
            .finish_turn(&lease, TurnOutcome::Interrupted)
            .await
            .unwrap();
        assert_eq!(store.list_queue(parent.id).await.unwrap().len(), 1);
        age(&store, child.id).await;

        // A child alone cannot come back while its parent is archived.
        let err = store.set_archived(child.id, false).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_string(), PARENT_ARCHIVED_MESSAGE);
        assert_eq!(raw_chat(&store, child.id).await.archived, 1);

        let changed = store.set_archived(parent.id, false).await.unwrap();
        let by_id: HashMap<_, _> = changed.iter().map(|c| (c.chat_id, c)).collect();
        assert_eq!(by_id.len(), 2);
        // The parent's queue waited for no worker: its head runs now.
        let p = by_id[&parent.id];
        assert_eq!(p.watch, Some(ChatWatchEventKind::Created));
        assert_eq!(p.previous_status, ChatStatus::Waiting);
        assert_eq!(p.status, ChatStatus::Pending);
        assert_eq!(
            p.user_message().unwrap().content,
            vec![ChatMessagePart::text("later")]
        );
        assert_eq!(p.queue, Some(Vec::new()));
        let c = by_id[&child.id];
        assert_eq!(c.watch, Some(ChatWatchEventKind::Created));
        assert_eq!(c.status, ChatStatus::Waiting);
        assert_eq!(c.user_message(), None);
        for id in [parent.id, child.id] {
            let raw = raw_chat(&store, id).await;
            assert_eq!(raw.archived, 0);
            assert_eq!(raw.pin_order, 0);
        }
        assert_eq!(raw_chat(&store, parent.id).await.status, "pending");
        assert_eq!(raw_chat(&store, child.id).await.updated_at, 1);
        // Unarchiving a chat that is not archived is a no-op.
        assert!(store
            .set_archived(parent.id, false)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .set_archived(child.id, false)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_family_archives_do_not_deadlock() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (parent, _) = store.create_chat(new_chat(&f, "parent")).await.unwrap();
        let mut family = vec![parent.id];
        for i in 0..3 {
            let (child, _) = store
                .create_chat(new_chat(&f, &format!("child {i}")))
                .await
                .unwrap();
            adopt(&store, parent.id, child.id).await;
            family.push(child.id);
        }
        for _ in 0..5 {
            // Every member archives the family at once; exactly one call does the work.
            let handles: Vec<_> = family
                .iter()
                .map(|id| {
                    let store = store.clone();
                    let id = *id;
                    tokio::spawn(async move { store.set_archived(id, true).await })
                })
                .collect();
            let mut reported = 0;
            for handle in handles {
                reported += handle.await.unwrap().unwrap().len();
            }
            assert_eq!(reported, family.len());
            for id in &family {
                assert_eq!(raw_chat(&store, *id).await.archived, 1);
            }
            let restored = store.set_archived(parent.id, false).await.unwrap();
            assert_eq!(restored.len(), family.len());
        }
    })
    .await;
}
