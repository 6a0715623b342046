//! The cost report routes on both backends: `GET /chats/cost/{user}/summary` (`me`, ids,
//! usernames; the user or an administrator; 403 for a member asking about someone else, 404
//! for an unknown user) and `GET /chats/cost/users` (administrators; filter, paging), with
//! the window's defaults and every bad-input case answering a `Response` that names the
//! field. docs/cost-reports.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::HiddenUsage;
use chatd_core::ADMIN_ONLY_MESSAGE;
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::request::assert_error_body;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use codersdk::{
    ChatCostSummary, ChatCostUsersResponse, ChatMessageUsage, Timestamp, Uuid,
    DEFAULT_COST_USERS_LIMIT, MAX_COST_USERS_LIMIT, MAX_COST_WINDOW_DAYS,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let answer = server.request(Method::GET, path).token(token).send().await;
    (answer.status, answer.json)
}

fn fields(body: &Value) -> Vec<String> {
    assert_error_body(body);
    body["validations"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A chat of `owner` titled `title`, idle (`waiting`: written directly, so no turn runs
/// and adds rows of its own), with hidden usage rows of the given costs (input tokens 10
/// each, runtime 5 ms each; `None` is an unpriced call).
async fn spend(server: &TestServer, owner: Uuid, title: &str, costs: &[Option<i64>]) -> Uuid {
    let store = server.state.engine().store();
    let chat = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO chats (id, organization_id, owner_id, root_chat_id, last_model_config_id, \
         title, status, client_type, created_at, updated_at) \
         VALUES ($1, $2, $3, $1, $4, $5, 'waiting', 'api', 0, 0)",
    )
    .bind(chat.to_string())
    .bind(server.state.default_organization().to_string())
    .bind(owner.to_string())
    .bind(Uuid::new_v4().to_string())
    .bind(title)
    .execute(store.pool())
    .await
    .unwrap();
    for cost in costs {
        store
            .record_hidden_usage(
                chat,
                HiddenUsage {
                    model_config_id: None,
                    usage: ChatMessageUsage {
                        input_tokens: Some(10),
                        ..ChatMessageUsage::default()
                    },
                    total_cost_micros: *cost,
                    runtime_ms: 5,
                },
            )
            .await
            .unwrap();
    }
    chat
}

/// `?start_date=…&end_date=…` around now (an hour either side).
fn around_now() -> String {
    let now = chrono::Utc::now();
    let start = Timestamp(now - chrono::Duration::hours(1));
    let end = Timestamp(now + chrono::Duration::hours(1));
    format!("start_date={start}&end_date={end}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_for_me_by_name_and_by_id_and_who_may_read_it() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let chat = spend(
            &server,
            bob.id,
            "Bob's chat",
            &[Some(1_500_000), Some(250), None],
        )
        .await;
        spend(&server, carol.id, "Carol's chat", &[Some(7)]).await;
        let window = around_now();

        let (s, body) = get(
            &server,
            &format!("/chats/cost/me/summary?{window}"),
            Some(&bob.token),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        // No usage limit applies: the field is left out (usage_limits.rs shows it filled).
        assert!(body.get("usage_limit").is_none(), "{body}");
        let summary: ChatCostSummary = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(summary.total_cost_micros, 1_500_250);
        assert_eq!(
            (summary.priced_message_count, summary.unpriced_message_count),
            (2, 1)
        );
        assert_eq!(summary.totals.total_input_tokens, 30);
        assert_eq!(summary.totals.total_runtime_ms, 15);
        assert_eq!(summary.by_chat.len(), 1);
        assert_eq!(summary.by_chat[0].root_chat_id, chat);
        assert_eq!(summary.by_chat[0].chat_title, "Bob's chat");
        assert_eq!(summary.by_model.len(), 1);
        assert_eq!(summary.by_model[0].model_config_id, Uuid::nil());
        // The same report by username (any case) and by id, and for an administrator.
        for (user, token) in [
            ("BoB".to_owned(), bob.token.as_str()),
            (bob.id.to_string(), bob.token.as_str()),
            ("bob".to_owned(), server.admin_token.as_str()),
            (bob.id.to_string(), server.admin_token.as_str()),
        ] {
            let (s, other) = get(
                &server,
                &format!("/chats/cost/{user}/summary?{window}"),
                Some(token),
            )
            .await;
            assert_eq!((s, &other), (StatusCode::OK, &body), "{user}");
        }
        // A member asking about someone else: 403 whether that user exists or not.
        for user in [
            "bob".to_owned(),
            bob.id.to_string(),
            Uuid::new_v4().to_string(),
            "nobody".to_owned(),
        ] {
            let (s, err) = get(
                &server,
                &format!("/chats/cost/{user}/summary"),
                Some(&carol.token),
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{user}: {err}");
            assert_eq!(
                err["message"],
                "Only administrators can view the chat costs of other users."
            );
        }
        // An administrator asking about nobody: 404.
        for user in [Uuid::new_v4().to_string(), "nobody".to_owned()] {
            let (s, err) = get(
                &server,
                &format!("/chats/cost/{user}/summary"),
                Some(&server.admin_token),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{user}: {err}");
            assert_eq!(err["message"], "User not found.");
        }
        // Without a token: 401.
        let (s, err) = get(&server, "/chats/cost/me/summary", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_error_body(&err);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_window_defaults_and_bad_dates() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        spend(&server, bob.id, "chat", &[Some(42)]).await;
        let before = chrono::Utc::now();
        let (s, body) = get(&server, "/chats/cost/me/summary", Some(&bob.token)).await;
        let after = chrono::Utc::now();
        assert_eq!(s, StatusCode::OK, "{body}");
        let summary: ChatCostSummary = serde_json::from_value(body).unwrap();
        // The last 30 days, ending at the engine's "now" (the system clock here).
        let end = summary.end_date.as_datetime();
        assert!(before <= end && end <= after, "{end}");
        assert_eq!(end - summary.start_date.as_datetime(), chrono::Duration::days(30));
        assert_eq!(summary.total_cost_micros, 42);
        // A window that ends before the row: nothing.
        let (s, body) = get(
            &server,
            "/chats/cost/me/summary?start_date=2020-01-01T00:00:00Z&end_date=2020-01-02T00:00:00%2B01:00",
            Some(&bob.token),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["total_cost_micros"], 0);
        assert_eq!(body["end_date"], "2020-01-01T23:00:00Z");
        assert_eq!(body["by_chat"], serde_json::json!([]));

        let longest = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap()
            + chrono::Duration::days(MAX_COST_WINDOW_DAYS);
        let longest = Timestamp(longest.with_timezone(&chrono::Utc));
        let (s, _) = get(
            &server,
            &format!("/chats/cost/me/summary?start_date=2020-01-01T00:00:00Z&end_date={longest}"),
            Some(&bob.token),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "a window of exactly {MAX_COST_WINDOW_DAYS} days");
        for (query, field) in [
            ("start_date=2020-01-01", "start_date"),
            ("end_date=yesterday", "end_date"),
            ("start_date=2020-01-02T00:00:00Z&end_date=2020-01-01T00:00:00Z", "end_date"),
            ("start_date=2020-01-01T00:00:00Z&end_date=2020-01-01T00:00:00Z", "end_date"),
            ("start_date=2020-01-01T00:00:00Z&end_date=2021-01-02T00:00:01Z", "end_date"),
            ("since=2020-01-01T00:00:00Z", "since"),
        ] {
            let (s, err) = get(&server, &format!("/chats/cost/me/summary?{query}"), Some(&bob.token)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {err}");
            assert_eq!(fields(&err), [field], "{query}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_rollup_is_for_administrators_with_filter_and_paging() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let _dave = server.user("dave").await;
        spend(&server, bob.id, "a", &[Some(100), None]).await;
        spend(&server, bob.id, "b", &[Some(1)]).await;
        spend(&server, carol.id, "c", &[Some(500)]).await;
        let window = around_now();

        let (s, body) = get(
            &server,
            &format!("/chats/cost/users?{window}"),
            Some(&server.admin_token),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let page: ChatCostUsersResponse = serde_json::from_value(body).unwrap();
        assert_eq!(page.count, 2, "dave has no usage");
        let rows: Vec<(&str, i64, i64, i64)> = page
            .users
            .iter()
            .map(|u| {
                (
                    u.username.as_str(),
                    u.total_cost_micros,
                    u.message_count,
                    u.chat_count,
                )
            })
            .collect();
        assert_eq!(rows, [("carol", 500, 1, 1), ("bob", 101, 3, 2)]);
        assert_eq!(page.users[0].user_id, carol.id);

        let (s, body) = get(
            &server,
            &format!("/chats/cost/users?{window}&limit=1&offset=1"),
            Some(&server.admin_token),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body["count"], 2);
        assert_eq!(body["users"][0]["username"], "bob");
        let (_, body) = get(
            &server,
            &format!("/chats/cost/users?{window}&username=ARO"),
            Some(&server.admin_token),
        )
        .await;
        assert_eq!(body["count"], 1);
        assert_eq!(body["users"][0]["username"], "carol");
        let (_, body) = get(
            &server,
            "/chats/cost/users?offset=9",
            Some(&server.admin_token),
        )
        .await;
        assert_eq!(
            (
                body["count"].as_i64(),
                body["users"].as_array().map(Vec::len)
            ),
            (Some(2), Some(0))
        );

        // Members: 403 with the standard body, whatever the query.
        for query in ["", "?limit=-1"] {
            let (s, err) = get(
                &server,
                &format!("/chats/cost/users{query}"),
                Some(&bob.token),
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
            assert_eq!(err["message"], ADMIN_ONLY_MESSAGE);
        }
        let (s, _) = get(&server, "/chats/cost/users", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);

        let max = MAX_COST_USERS_LIMIT;
        let ok = get(
            &server,
            &format!("/chats/cost/users?limit={max}"),
            Some(&server.admin_token),
        )
        .await;
        assert_eq!(ok.0, StatusCode::OK);
        let ok = get(
            &server,
            "/chats/cost/users?limit=0",
            Some(&server.admin_token),
        )
        .await;
        assert_eq!(
            ok.0,
            StatusCode::OK,
            "0 is the default ({DEFAULT_COST_USERS_LIMIT})"
        );
        let long = "x".repeat(200);
        for (query, field) in [
            (format!("limit={}", max + 1), "limit"),
            ("limit=-1".to_owned(), "limit"),
            ("limit=99999999999999999999".to_owned(), "limit"),
            ("offset=-1".to_owned(), "offset"),
            ("offset=2147483648".to_owned(), "offset"),
            (format!("username={long}"), "username"),
            ("username=a%00b".to_owned(), "username"),
            ("start_date=now".to_owned(), "start_date"),
            (
                "start_date=2020-01-01T00:00:00Z&end_date=2022-01-01T00:00:00Z".to_owned(),
                "end_date",
            ),
            ("group=admins".to_owned(), "group"),
        ] {
            let (s, err) = get(
                &server,
                &format!("/chats/cost/users?{query}"),
                Some(&server.admin_token),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {err}");
            assert_eq!(fields(&err), [field], "{query}");
        }
        server.stop().await;
    })
    .await;
}
