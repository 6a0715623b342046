//! The bad-input suite: every route of the reference server's route table
//! (`server_example::routes::table()`, the table the router is built from, so a new route
//! is covered without touching this file), every method, with the classes of bad input a
//! careless or hostile client sends: bad tokens, unknown and undecodable query keys, bad
//! path ids (`%FF`, not an id, out of range, unknown, very long), bodies that are not
//! JSON, truncated, not objects, over the limit, nested too deep, or have a field of the
//! wrong type, and methods the path does not serve.
//!
//! Each answer must be a 4xx with a JSON `codersdk::Response` (Coder-platform routes this
//! server does not build answer their JSON 501 once authenticated), never a 5xx, and
//! nothing may be persisted: every row of every table is compared before and after. On
//! both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use axum::http::Method;
use chatd_test_support::db::on_each_backend;
use chatd_test_support::db::RawSql;
use chatd_test_support::scripted::{Reply, ScriptedModel};
use chatd_test_support::server::TestServer;
use server_example::routes::{table, Route, RouteBody, RouteKind};
use sqlx::Row;

/// A valid PNG head: the upload fixture.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";

/// Path values that are never a valid id of any parameter.
const BAD_PATH_VALUES: &[&str] = &[
    "%FF",
    "%C3%28",
    "%00",
    "not-an-id",
    "0",
    "-1",
    "1.5",
    "99999999999999999999999",
    "00000000-0000-0000-0000-00000000000g",
];

/// An upload: what, content type, body, query, expected answer.
type UploadCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, Option<String>, Want);

/// What one request must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Any 4xx.
    ClientError,
    /// Exactly this status.
    Status(u16),
}

struct Case {
    what: String,
    method: Method,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    want: Want,
}

struct Suite<'a> {
    server: &'a TestServer,
    ids: BTreeMap<&'static str, String>,
    failures: Vec<String>,
    requests: usize,
    wrong_types: usize,
}

impl Suite<'_> {
    /// The route's path with a valid value for every parameter.
    fn path(&self, route: &Route) -> String {
        self.path_with(route, None)
    }

    /// The route's path with `bad` for parameter `param`.
    fn path_with(&self, route: &Route, bad: Option<(&str, &str)>) -> String {
        let mut path = route.path.clone();
        for param in route.params() {
            let value =
                match bad {
                    Some((p, v)) if p == param => v.to_owned(),
                    _ => self.ids.get(param).cloned().unwrap_or_else(|| {
                        panic!("no fixture id for {{{param}}} of {}", route.path)
                    }),
                };
            path = path.replace(&format!("{{{param}}}"), &value);
        }
        path
    }

    fn case(&self, route: &Route, what: impl Into<String>) -> Case {
        Case {
            what: what.into(),
            method: route.method.clone(),
            path: self.path(route),
            query: None,
            headers: vec![(
                "Coder-Session-Token".into(),
                self.server.admin_token.clone(),
            )],
            body: None,
            want: Want::ClientError,
        }
    }

    async fn run(&mut self, case: Case) {
        self.requests += 1;
        let mut url = format!("{}{}", self.server.base, case.path);
        if let Some(q) = &case.query {
            url.push('?');
            url.push_str(q);
        }
        let mut request = self.server.http.request(case.method.clone(), &url);
        for (name, value) in &case.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = case.body.clone() {
            request = request.body(body);
        }
        let label = format!("{} {} [{}]", case.method, case.path, case.what);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.failures.push(format!("{label}: no answer: {e}"));
                return;
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.unwrap_or_default();
        let status_ok = match case.want {
            Want::ClientError => (400..500).contains(&status),
            Want::Status(s) => status == s,
        };
        if !status_ok {
            self.failures.push(format!(
                "{label}: status {status} (want {:?}): {}",
                case.want,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
            return;
        }
        let parsed = serde_json::from_slice::<codersdk::Response>(&body);
        match parsed {
            Ok(r) if content_type.starts_with("application/json") && !r.message.is_empty() => {}
            _ => self.failures.push(format!(
                "{label}: {status} is not a JSON Response ({content_type}): {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )),
        }
    }

    /// Bad and missing tokens: 401 on every authenticated route.
    async fn tokens(&mut self, route: &Route) {
        let headers: [(&str, Vec<(String, String)>); 5] = [
            ("no token", vec![]),
            (
                "unknown token",
                vec![("Coder-Session-Token".into(), "chatd_0123".into())],
            ),
            (
                "overlong token",
                vec![("Coder-Session-Token".into(), "x".repeat(4096))],
            ),
            (
                "bad bearer",
                vec![("Authorization".into(), "Bearer nope".into())],
            ),
            (
                "empty bearer",
                vec![("Authorization".into(), "Bearer ".into())],
            ),
        ];
        for (what, headers) in headers {
            let mut case = self.case(route, what);
            case.headers = headers;
            case.want = Want::Status(401);
            self.run(case).await;
        }
        let mut case = self.case(route, "unknown query token");
        case.headers.clear();
        case.query = Some("coder_session_token=chatd_nope".into());
        case.want = Want::Status(401);
        self.run(case).await;
        for (what, token) in [
            ("expired token", self.ids["expired_token"].clone()),
            ("revoked token", self.ids["revoked_token"].clone()),
        ] {
            let mut case = self.case(route, what);
            case.headers = vec![("Coder-Session-Token".into(), token)];
            case.want = Want::Status(401);
            self.run(case).await;
        }
        // A valid token in the query authenticates WebSocket upgrades and downloads only.
        if !matches!(route.kind, RouteKind::WebSocket | RouteKind::Download) {
            let mut case = self.case(route, "valid token in the query");
            case.headers.clear();
            case.query = Some(format!("coder_session_token={}", self.server.admin_token));
            case.want = Want::Status(401);
            self.run(case).await;
        }
    }

    /// Unknown, undecodable and oversized query strings.
    async fn queries(&mut self, route: &Route) {
        let extra = match route.body {
            // The upload's own parameter, so only the bad key is wrong.
            RouteBody::Upload { .. } => format!("organization={}&", self.ids["organization"]),
            _ => String::new(),
        };
        for (what, query) in [
            ("unknown key", "unknown_key=1".to_owned()),
            ("non-UTF-8 value", "unknown_key=%FF".to_owned()),
            ("bad escape", "unknown_key=%G1".to_owned()),
            ("huge key", format!("{}=1", "k".repeat(16 * 1024))),
        ] {
            let mut case = self.case(route, format!("query: {what}"));
            case.query = Some(format!("{extra}{query}"));
            self.run(case).await;
        }
    }

    /// Every parameter with every bad value, the others valid.
    async fn path_ids(&mut self, route: &Route) {
        let long = "x".repeat(8 * 1024);
        let unknown = codersdk::Uuid::new_v4().to_string();
        for param in route.params() {
            let mut values: Vec<&str> = BAD_PATH_VALUES.to_vec();
            values.push(&long);
            // An id of the right shape that names nothing (a username for `{user}`).
            values.push(&unknown);
            for value in values {
                let mut case = self.case(route, format!("{{{param}}} = {:.24}", value));
                case.path = self.path_with(route, Some((param, value)));
                self.run(case).await;
            }
        }
    }

    /// Bodies that are not the JSON object the route reads.
    async fn json_bodies(&mut self, route: &Route, schema: serde_json::Value, limit: usize) {
        let json = || vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let mut bodies: Vec<(String, Vec<u8>, Want)> = vec![
            ("empty".into(), vec![], Want::Status(400)),
            ("not JSON".into(), b"hello".to_vec(), Want::Status(400)),
            ("open brace".into(), b"{".to_vec(), Want::Status(400)),
            (
                "missing value".into(),
                br#"{"a":}"#.to_vec(),
                Want::Status(400),
            ),
            (
                "missing colon".into(),
                br#"{"a" 1}"#.to_vec(),
                Want::Status(400),
            ),
            ("trailing".into(), br#"{}}"#.to_vec(), Want::Status(400)),
            (
                "truncated string".into(),
                br#"{"a":"tru"#.to_vec(),
                Want::Status(400),
            ),
            (
                "non-UTF-8".into(),
                b"{\"a\":\"\xff\"}".to_vec(),
                Want::Status(400),
            ),
            (
                "lone surrogate".into(),
                br#"{"a":"\ud800"}"#.to_vec(),
                Want::ClientError,
            ),
            ("array".into(), b"[]".to_vec(), Want::Status(400)),
            (
                "array of object".into(),
                b"[{}]".to_vec(),
                Want::Status(400),
            ),
            ("string".into(), b"\"x\"".to_vec(), Want::Status(400)),
            ("number".into(), b"1".to_vec(), Want::Status(400)),
            ("null".into(), b"null".to_vec(), Want::Status(400)),
            ("boolean".into(), b" true ".to_vec(), Want::Status(400)),
            ("deep".into(), deep.into_bytes(), Want::Status(400)),
            (
                "over the limit".into(),
                format!("{{\"pad\":\"{}\"}}", "p".repeat(limit)).into_bytes(),
                Want::Status(413),
            ),
        ];
        // Truncated at every place a real body can be cut: after each property name.
        for (name, field) in properties(&schema) {
            bodies.push((
                format!("truncated after {name}"),
                format!("{{\"{name}\":").into_bytes(),
                Want::Status(400),
            ));
            if let Some(value) = wrong_type(&schema, field) {
                self.wrong_types += 1;
                bodies.push((
                    format!("{name} of the wrong type"),
                    serde_json::json!({ name: value }).to_string().into_bytes(),
                    Want::Status(400),
                ));
            }
        }
        for (what, body, want) in bodies {
            let mut case = self.case(route, format!("body: {what}"));
            case.headers.extend(json());
            case.body = Some(body);
            case.want = want;
            self.run(case).await;
        }
        for (what, content_type) in [("no content type", None), ("text", Some("text/plain"))] {
            let mut case = self.case(route, format!("body: {what}"));
            if let Some(ct) = content_type {
                case.headers.push(("Content-Type".into(), ct.into()));
            }
            case.body = Some(b"{}".to_vec());
            case.want = Want::Status(415);
            self.run(case).await;
        }
    }

    /// Uploads that are not an acceptable file.
    async fn upload_bodies(&mut self, route: &Route, limit: usize) {
        let org = format!("organization={}", self.ids["organization"]);
        let cases: Vec<UploadCase<'_>> = vec![
            (
                "empty",
                Some("image/png"),
                vec![],
                Some(org.clone()),
                Want::ClientError,
            ),
            (
                "not a PNG",
                Some("image/png"),
                b"hello".to_vec(),
                Some(org.clone()),
                Want::ClientError,
            ),
            (
                "executable type",
                Some("application/x-msdownload"),
                PNG.to_vec(),
                Some(org.clone()),
                Want::ClientError,
            ),
            (
                "no content type",
                None,
                PNG.to_vec(),
                Some(org.clone()),
                Want::ClientError,
            ),
            (
                "no organization",
                Some("image/png"),
                PNG.to_vec(),
                None,
                Want::ClientError,
            ),
            (
                "bad organization",
                Some("image/png"),
                PNG.to_vec(),
                Some("organization=%FF".into()),
                Want::ClientError,
            ),
            (
                "unknown organization",
                Some("image/png"),
                PNG.to_vec(),
                Some(format!("organization={}", codersdk::Uuid::new_v4())),
                Want::ClientError,
            ),
            (
                "over the limit",
                Some("image/png"),
                {
                    let mut b = PNG.to_vec();
                    b.resize(limit + 1, 0);
                    b
                },
                Some(org.clone()),
                Want::Status(413),
            ),
        ];
        for (what, content_type, body, query, want) in cases {
            let mut case = self.case(route, format!("upload: {what}"));
            if let Some(ct) = content_type {
                case.headers.push(("Content-Type".into(), ct.into()));
            }
            case.query = query;
            case.body = Some(body);
            case.want = want;
            self.run(case).await;
        }
    }
}

/// The object schema's properties (`$ref` to a definition followed once).
fn properties(schema: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
    let root = resolve(schema, schema);
    root.get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn resolve<'a>(root: &'a serde_json::Value, s: &'a serde_json::Value) -> &'a serde_json::Value {
    let Some(reference) = s.get("$ref").and_then(|r| r.as_str()) else {
        return s;
    };
    let name = reference.rsplit('/').next().unwrap_or_default();
    root.get("$defs").and_then(|d| d.get(name)).unwrap_or(s)
}

/// The JSON types a property schema accepts; `None` when it accepts anything (or the
/// schema is too open to tell).
fn accepted_types(root: &serde_json::Value, s: &serde_json::Value) -> Option<Vec<String>> {
    let s = resolve(root, s);
    if let Some(t) = s.get("type") {
        let mut types: Vec<String> = match t {
            serde_json::Value::String(t) => vec![t.clone()],
            serde_json::Value::Array(ts) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            _ => return None,
        };
        if types.iter().any(|t| t == "number") {
            types.push("integer".into());
        }
        return Some(types);
    }
    if let Some(values) = s.get("enum").and_then(|e| e.as_array()) {
        let mut types: Vec<String> = values.iter().map(json_type).collect();
        types.dedup();
        return Some(types);
    }
    if s.get("const").is_some() {
        return s.get("const").map(|c| vec![json_type(c)]);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = s.get(key).and_then(|o| o.as_array()) {
            let mut types = Vec::new();
            for option in options {
                types.extend(accepted_types(root, option)?);
            }
            return Some(types);
        }
    }
    if let Some(all) = s.get("allOf").and_then(|o| o.as_array()) {
        return all.first().and_then(|first| accepted_types(root, first));
    }
    None
}

fn json_type(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
    .to_owned()
}

/// A value of a JSON type the property does not accept.
fn wrong_type(root: &serde_json::Value, s: &serde_json::Value) -> Option<serde_json::Value> {
    let accepted = accepted_types(root, s)?;
    let candidates = [
        ("object", serde_json::json!({"wrong": [true]})),
        ("array", serde_json::json!([true, 1])),
        ("boolean", serde_json::json!(true)),
        ("string", serde_json::json!("wrong-type")),
        ("number", serde_json::json!(1.5)),
    ];
    candidates
        .into_iter()
        .find(|(t, _)| !accepted.iter().any(|a| a == t))
        .map(|(_, v)| v)
}

/// Every row of every table, as text, per table (token `last_used_at` left out: a
/// successful authentication may touch it, which is not the bad input persisting).
async fn snapshot(store: &chatd_core::store::Store) -> BTreeMap<String, Vec<String>> {
    let pool = store.pool();
    let sqlite = pool.connect_options().database_url.scheme() == "sqlite";
    let tables: Vec<String> = if sqlite {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_sqlx%'",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    } else {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    };
    let mut out = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> = if sqlite {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}')"
            )))
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
        } else {
            sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position",
            )
            .bind(&table)
            .fetch_all(pool)
            .await
            .unwrap()
        };
        let columns: Vec<String> = columns
            .into_iter()
            .filter(|c| c != "last_used_at")
            .collect();
        let expr = if sqlite {
            columns
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        } else {
            columns
                .iter()
                .map(|c| format!("coalesce(\"{c}\"::text, 'NULL')"))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        };
        let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {expr} FROM \"{table}\""
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

/// Ids of real rows for every route parameter, so a request that got past validation
/// would find something to change.
async fn fixtures(server: &TestServer) -> BTreeMap<&'static str, String> {
    let http = &server.http;
    let token = server.admin_token.as_str();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", server.base))
            .header("Coder-Session-Token", token)
            .json(&body)
            .send()
    };
    let id_of = |v: serde_json::Value| v["id"].as_str().map(str::to_owned).unwrap();
    let provider = post(
        "/api/experimental/chats/providers",
        serde_json::json!({"provider": "openai-compat", "api_key": "k-123", "base_url": "http://127.0.0.1:9/v1"}),
    )
    .await
    .unwrap();
    assert_eq!(provider.status(), 201);
    let provider = id_of(provider.json().await.unwrap());
    let model = post(
        "/api/experimental/chats/model-configs",
        serde_json::json!({"provider": "openai-compat", "model": "m", "context_limit": 1000}),
    )
    .await
    .unwrap();
    assert_eq!(model.status(), 201);
    let model = id_of(model.json().await.unwrap());
    let mcp = post(
        "/api/experimental/mcp/servers",
        serde_json::json!({
            "display_name": "Tracker", "slug": "tracker", "transport": "streamable_http",
            "url": "https://mcp.example.com/mcp", "auth_type": "none", "availability": "default_on"
        }),
    )
    .await
    .unwrap();
    assert_eq!(mcp.status(), 201, "{:?}", mcp.text().await);
    let mcp = id_of(mcp.json().await.unwrap());
    let member = server.user("member").await;
    let chat = post(
        "/api/experimental/chats",
        serde_json::json!({"content": [{"type": "text", "text": "hello"}]}),
    )
    .await
    .unwrap();
    assert_eq!(chat.status(), 201);
    let chat = id_of(chat.json().await.unwrap());
    // Wait for the scripted reply so the chat is idle and has messages.
    let mut message = None;
    for _ in 0..200 {
        let messages: serde_json::Value = http
            .get(format!(
                "{}/api/experimental/chats/{chat}/messages",
                server.base
            ))
            .header("Coder-Session-Token", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = messages["messages"].as_array().cloned().unwrap_or_default();
        if list.len() >= 2 {
            message = list
                .iter()
                .find(|m| m["role"] == "user")
                .map(|m| m["id"].to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And for the turn's end and its generated title, which land after the reply: a
    // write after the "before" snapshot would read as a bad request that persisted
    // something.
    let mut settled = false;
    for _ in 0..500 {
        let c: serde_json::Value = http
            .get(format!("{}/api/experimental/chats/{chat}", server.base))
            .header("Coder-Session-Token", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if c["status"] == "waiting" && c["title"] == chatd_test_support::scripted::SCRIPTED_TITLE {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        settled,
        "the fixture chat did not finish its turn and title"
    );
    let file = http
        .post(format!(
            "{}/api/experimental/chats/files?organization={}",
            server.base,
            server.state.default_organization()
        ))
        .header("Coder-Session-Token", token)
        .header("Content-Type", "image/png")
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 201);
    let file = id_of(file.json().await.unwrap());
    // Tokens: the member's (for `{keyid}`), one expired and one revoked.
    let tokens: serde_json::Value = http
        .get(format!(
            "{}/api/v2/users/{}/keys/tokens",
            server.base, member.id
        ))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keyid = tokens[0]["id"].as_str().unwrap().to_owned();
    let issue = |name: &'static str| {
        post(
            "/api/v2/users/me/keys/tokens",
            serde_json::json!({"token_name": name, "lifetime": 3_600_000_000_000_i64}),
        )
    };
    let expired: serde_json::Value = issue("expired").await.unwrap().json().await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE token_name = 'expired'")
        .execute(server.state.engine().store().pool())
        .await
        .unwrap();
    let revoked: serde_json::Value = issue("revoked").await.unwrap().json().await.unwrap();
    let revoked_id: String =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_name = 'revoked'")
            .fetch_one(server.state.engine().store().pool())
            .await
            .unwrap();
    let status = http
        .delete(format!("{}/api/v2/users/me/keys/{revoked_id}", server.base))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    BTreeMap::from([
        ("keyid", keyid),
        ("expired_token", expired["key"].as_str().unwrap().to_owned()),
        ("revoked_token", revoked["key"].as_str().unwrap().to_owned()),
        ("chat", chat),
        ("message", message.expect("the chat has messages")),
        ("queuedMessage", "1".to_owned()),
        ("file", file),
        ("modelConfig", model),
        ("providerConfig", provider),
        ("mcpServer", mcp),
        ("user", member.id.to_string()),
        ("context", "general".to_owned()),
        ("group", codersdk::Uuid::new_v4().to_string()),
        ("run", codersdk::Uuid::new_v4().to_string()),
        // An AI Gateway instance name (only its paths' 405s are checked here).
        ("provider", "openai".to_owned()),
        // A stored AI Gateway instance's name (none is stored: the routes answer 404).
        ("instance", "corp-llm".to_owned()),
        (
            "organization",
            server.state.default_organization().to_string(),
        ),
    ])
}

/// Methods a client may send that a path does not serve.
const METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_bad_input_with_a_json_4xx_and_persists_nothing() {
    on_each_backend(|store| async move {
        let started = std::time::Instant::now();
        let server =
            TestServer::start(&store, ScriptedModel::new([Reply::Text("hi".into())])).await;
        let ids = fixtures(&server).await;
        let before = snapshot(&store).await;
        let routes = table();
        assert!(
            routes.len() > 50,
            "the table lists the routes ({})",
            routes.len()
        );
        let mut suite = Suite {
            server: &server,
            ids,
            failures: Vec::new(),
            requests: 0,
            wrong_types: 0,
        };
        let mut served: BTreeMap<String, Vec<Method>> = BTreeMap::new();
        for route in &routes {
            served
                .entry(route.path.clone())
                .or_default()
                .push(route.method.clone());
            match route.kind {
                RouteKind::Public => {
                    // Outside the API: unauthenticated text; it must still never fail.
                    let mut case = suite.case(route, "public with junk query");
                    case.query = Some("unknown_key=%FF".into());
                    case.want = Want::Status(200);
                    suite.requests += 1;
                    let url = format!("{}{}?{}", server.base, case.path, case.query.unwrap());
                    let status = server.http.get(url).send().await.unwrap().status();
                    if status.is_server_error() {
                        suite.failures.push(format!("{}: {status}", route.path));
                    }
                    continue;
                }
                RouteKind::Unsupported => {
                    suite.tokens(route).await;
                    // Authenticated: the JSON 501 of a feature this server does not build,
                    // whatever else is wrong with the request.
                    let mut case = suite.case(route, "unsupported");
                    case.query = Some("unknown_key=1".into());
                    case.want = Want::Status(501);
                    suite.run(case).await;
                    continue;
                }
                // Provider-shaped refusals and a pass-through query: the gateway's own
                // suite covers them (tests/it/aibridge.rs).
                RouteKind::Gateway => continue,
                RouteKind::Api | RouteKind::WebSocket | RouteKind::Download => {}
                _ => {}
            }
            suite.tokens(route).await;
            suite.queries(route).await;
            suite.path_ids(route).await;
            match route.body {
                RouteBody::Json { schema, limit } => {
                    let schema = serde_json::to_value(schema()).unwrap();
                    suite.json_bodies(route, schema, limit).await;
                }
                RouteBody::Upload { limit } => suite.upload_bodies(route, limit).await,
                _ => {}
            }
        }
        // Methods a path does not serve: a JSON 405, token or not.
        for (path, methods) in &served {
            for method in METHODS {
                if methods.contains(method)
                    || (method == Method::HEAD && methods.contains(&Method::GET))
                {
                    continue;
                }
                let route = Route::new(method.clone(), path, || async {});
                let mut case = suite.case(&route, "method not served");
                case.want = Want::Status(405);
                suite.run(case).await;
            }
        }
        // The schemas were read: most fields got a value of the wrong type.
        assert!(
            suite.wrong_types > 100,
            "{} wrong-type bodies",
            suite.wrong_types
        );
        let n = suite.requests;
        let failures = std::mem::take(&mut suite.failures);
        assert!(
            failures.is_empty(),
            "{} of {n} requests were answered wrongly:\n{}",
            failures.len(),
            failures.join("\n")
        );
        let after = snapshot(&store).await;
        for (table, rows) in &before {
            assert_eq!(
                rows,
                after.get(table).unwrap_or(&Vec::new()),
                "bad input changed table {table}"
            );
        }
        assert_eq!(before.len(), after.len(), "no table appeared");
        println!(
            "{n} bad requests ({} with a field of the wrong type) over {} routes in {:?}",
            suite.wrong_types,
            routes.len(),
            started.elapsed()
        );
        server.stop().await;
    })
    .await;
}

/// Text with a NUL character, which PostgreSQL cannot store, is the client's error on
/// every route that stores text: never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_in_text_are_client_errors() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([Reply::Text("hi".into())])).await;
        let ids = fixtures(&server).await;
        let nul = "a\u{0}b";
        let cases = [
            (Method::PATCH, format!("/api/experimental/chats/{}", ids["chat"]), serde_json::json!({"title": nul})),
            (Method::POST, "/api/experimental/chats".to_owned(), serde_json::json!({"content": [{"type": "text", "text": nul}]})),
            (Method::POST, "/api/v2/users".to_owned(), serde_json::json!({"username": "nul-user", "name": nul, "email": "", "password": ""})),
            (Method::PUT, "/api/experimental/chats/config/system-prompt".to_owned(), serde_json::json!({"system_prompt": nul})),
            (Method::PUT, "/api/experimental/chats/config/user-prompt".to_owned(), serde_json::json!({"custom_prompt": nul})),
            (Method::PATCH, format!("/api/experimental/mcp/servers/{}", ids["mcpServer"]), serde_json::json!({"description": nul})),
            (Method::PATCH, format!("/api/experimental/chats/model-configs/{}", ids["modelConfig"]), serde_json::json!({"display_name": nul})),
        ];
        for (method, path, body) in cases {
            let response = server
                .http
                .request(method.clone(), format!("{}{path}", server.base))
                .header("Coder-Session-Token", &server.admin_token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(!status.is_server_error(), "{method} {path}: {status} {text}");
        }
        server.stop().await;
    })
    .await;
}
