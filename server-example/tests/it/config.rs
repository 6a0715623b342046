//! Administrator configuration routes on both backends: providers (secrets never in a
//! response), model configs, users' own keys, the model catalogue, the system and user
//! prompts, the settings of unbuilt features (read as off), and
//! every 501 route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::Store;
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::request::{
    assert_error_body as assert_response, validation_fields as fields,
};
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::{TestServer, ADMIN_TOKEN};
use chatprovider::{Provider, ProviderApiKeys};
use codersdk::{
    SecretString, MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES, MAX_PLAN_MODE_INSTRUCTIONS_BYTES,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use server_example::routes::config::{PLAN_MODE_INSTRUCTIONS_BODY_BYTES, SYSTEM_PROMPT_BODY_BYTES};
use server_example::routes::unsupported::{OFF_SETTINGS, UNSUPPORTED_ROUTES};

const CENTRAL_KEY: &str = "sk-central-KEY-must-never-appear-7f3a9";
const USER_KEY: &str = "sk-user-KEY-must-never-appear-c41d2";
const ENV_KEY: &str = "sk-env-KEY-must-never-appear-99b0e";

/// A server like `TestServer::start`, with the deployment's environment keys.
async fn start_with_keys(store: &Store, keys: ProviderApiKeys) -> TestServer {
    TestServer::builder(store)
        .deployment_keys(keys)
        .start()
        .await
}

/// Sends a request; returns the status, the raw body text (to search for secrets) and
/// the body as JSON (`Null` when empty).
async fn call_raw(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let answer = server
        .request(method, path)
        .token(token)
        .json_opt(body.as_ref())
        .never_showing(&[CENTRAL_KEY, USER_KEY, ENV_KEY])
        .send()
        .await;
    (answer.status, answer.text, answer.json)
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (s, _, v) = call_raw(server, method, path, token, body).await;
    (s, v)
}

fn entry<'a>(list: &'a Value, provider: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == provider)
        .unwrap_or_else(|| panic!("{provider} missing from {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_crud_never_returns_keys() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());

        // Every supported provider is listed, none configured yet.
        let (s, list) = call(&server, Method::GET, "/chats/providers", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            list.as_array().unwrap().len(),
            chatprovider::SUPPORTED_PROVIDERS.len()
        );
        assert_eq!(entry(&list, "openai")["source"], "supported");
        assert_eq!(entry(&list, "openai")["id"], json!(uuid::Uuid::nil()));

        let (s, created) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "openai", "api_key": CENTRAL_KEY})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        assert_eq!(created["has_api_key"], true);
        assert_eq!(created["source"], "database");
        assert_eq!(created["display_name"], "OpenAI");
        let id = created["id"].as_str().unwrap().to_owned();
        // Sealed at rest: the key's text is not in the row.
        let sealed: String =
            sqlx::query_scalar("SELECT api_key_sealed FROM provider_configs WHERE id = $1")
                .bind(&id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(!sealed.contains(CENTRAL_KEY));
        let (_, list) = call(&server, Method::GET, "/chats/providers", admin, None).await;
        assert_eq!(entry(&list, "openai")["id"], json!(id));
        assert_eq!(entry(&list, "openai")["has_api_key"], true);

        // A second config of the same provider is a 409; rule violations are 400s.
        let (s, err) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "openai", "api_key": "sk-other"})),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_response(&err);
        let (s, err) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "anthropic"})),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "central mode needs a key: {err}"
        );
        let (s, err) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "nope", "api_key": "k"})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["provider"]);

        // Update: 200 with the new view; clearing the key of a central-key provider is a
        // 400 (nothing would serve it); unknown ids 404; malformed ids 400.
        let (s, updated) = call(
            &server,
            Method::PATCH,
            &format!("/chats/providers/{id}"),
            admin,
            Some(json!({"display_name": "Team OpenAI", "allow_user_api_key": true})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(updated["display_name"], "Team OpenAI");
        assert_eq!(updated["allow_user_api_key"], true);
        assert_eq!(
            updated["has_api_key"], true,
            "an absent api_key keeps the key"
        );
        let (s, _) = call(
            &server,
            Method::PATCH,
            &format!("/chats/providers/{id}"),
            admin,
            Some(json!({"api_key": ""})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let missing = uuid::Uuid::new_v4();
        let (s, err) = call(
            &server,
            Method::PATCH,
            &format!("/chats/providers/{missing}"),
            admin,
            Some(json!({"enabled": false})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_response(&err);
        let (s, err) = call(
            &server,
            Method::PATCH,
            "/chats/providers/not-a-uuid",
            admin,
            Some(json!({})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["providerConfig"]);

        // Members may do none of it (403 before the body is judged), anonymous callers 401.
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        for (method, path, body) in [
            (Method::GET, "/chats/providers".to_owned(), None),
            (
                Method::POST,
                "/chats/providers".to_owned(),
                Some(json!({"provider": "google", "api_key": "k"})),
            ),
            (
                Method::PATCH,
                format!("/chats/providers/{id}"),
                Some(json!({"enabled": false})),
            ),
            (Method::DELETE, format!("/chats/providers/{id}"), None),
        ] {
            let (s, err) = call(&server, method.clone(), &path, member, body.clone()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
            assert_response(&err);
            let (s, _) = call(&server, method, &path, None, body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }

        // Delete: 204, then 404; the provider is listed as merely supported again.
        let (s, body) = call(
            &server,
            Method::DELETE,
            &format!("/chats/providers/{id}"),
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(body, Value::Null);
        let (s, _) = call(
            &server,
            Method::DELETE,
            &format!("/chats/providers/{id}"),
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, list) = call(&server, Method::GET, "/chats/providers", admin, None).await;
        assert_eq!(entry(&list, "openai")["source"], "supported");
        // Unknown query parameters are refused by name.
        let (s, err) = call(
            &server,
            Method::GET,
            "/chats/providers?verbose=1",
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["verbose"]);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_keys_are_env_presets_and_never_shown() {
    on_each_backend(|store| async move {
        let keys = ProviderApiKeys::new()
            .with_api_key(Provider::Anthropic, SecretString::from(ENV_KEY))
            .unwrap();
        let server = start_with_keys(&store, keys).await;
        let admin = Some(server.admin_token.as_str());
        let (s, list) = call(&server, Method::GET, "/chats/providers", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        let anthropic = entry(&list, "anthropic");
        assert_eq!(anthropic["source"], "env_preset");
        assert_eq!(anthropic["enabled"], true);
        assert_eq!(anthropic["has_api_key"], true);
        assert_eq!(entry(&list, "openai")["source"], "supported");
        // A model on the preset needs no stored provider config, and is available.
        let (s, created) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(json!({"provider": "anthropic", "model": "claude-sonnet-4", "context_limit": 200000})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let bob = server.user("bob").await;
        let (s, catalogue) =
            call(&server, Method::GET, "/chats/models", Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::OK);
        let anthropic = entry(&catalogue["providers"], "anthropic");
        assert_eq!(anthropic["available"], true);
        assert_eq!(anthropic["models"][0]["model"], "claude-sonnet-4");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_configs_crud_with_one_default() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        let model =
            |name: &str| json!({"provider": "openai", "model": name, "context_limit": 128000});

        // The provider must be configured first.
        let (s, err) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(model("gpt-4o")),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["provider"]);
        let (s, _) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "openai", "api_key": CENTRAL_KEY})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);

        let (s, first) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(model("gpt-4o")),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        assert_eq!(
            first["is_default"], true,
            "the first model becomes the default"
        );
        assert_eq!(
            first["compression_threshold"],
            codersdk::DEFAULT_COMPRESSION_THRESHOLD
        );
        let mut disabled = model("gpt-4o-mini");
        disabled["enabled"] = json!(false);
        let (s, second) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(disabled),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(second["is_default"], false);
        let (first_id, second_id) = (
            first["id"].as_str().unwrap().to_owned(),
            second["id"].as_str().unwrap().to_owned(),
        );
        // Validation: context_limit required and positive, threshold 0..=100.
        let (s, err) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(json!({"provider": "openai", "model": "x", "compression_threshold": 101})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["context_limit", "compression_threshold"]);

        // Administrators list all; members the enabled ones.
        let (_, all) = call(&server, Method::GET, "/chats/model-configs", admin, None).await;
        assert_eq!(all.as_array().unwrap().len(), 2);
        let (s, enabled) = call(&server, Method::GET, "/chats/model-configs", member, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(enabled.as_array().unwrap().len(), 1);
        assert_eq!(enabled[0]["id"], json!(first_id));

        // Switching the default: enable the second and make it the default.
        let (s, updated) = call(
            &server,
            Method::PATCH,
            &format!("/chats/model-configs/{second_id}"),
            admin,
            Some(json!({"enabled": true, "is_default": true, "display_name": "Mini"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{updated}");
        assert_eq!(updated["is_default"], true);
        assert_eq!(updated["display_name"], "Mini");
        let (_, all) = call(&server, Method::GET, "/chats/model-configs", admin, None).await;
        let defaults = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["is_default"] == true)
            .count();
        assert_eq!(defaults, 1);
        // The default cannot be unset or disabled (400); members cannot write (403).
        let (s, _) = call(
            &server,
            Method::PATCH,
            &format!("/chats/model-configs/{second_id}"),
            admin,
            Some(json!({"enabled": false})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        for (method, path, body) in [
            (
                Method::POST,
                "/chats/model-configs".to_owned(),
                Some(model("m")),
            ),
            (
                Method::PATCH,
                format!("/chats/model-configs/{first_id}"),
                Some(json!({})),
            ),
            (
                Method::DELETE,
                format!("/chats/model-configs/{first_id}"),
                None,
            ),
        ] {
            let (s, _) = call(&server, method, &path, member, body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        }
        // Delete the default: another becomes the default; 404 afterwards; bad ids 400.
        let (s, _) = call(
            &server,
            Method::DELETE,
            &format!("/chats/model-configs/{second_id}"),
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, all) = call(&server, Method::GET, "/chats/model-configs", admin, None).await;
        assert_eq!(all.as_array().unwrap().len(), 1);
        assert_eq!(all[0]["is_default"], true);
        for method in [Method::PATCH, Method::DELETE] {
            let (s, _) = call(
                &server,
                method.clone(),
                &format!("/chats/model-configs/{second_id}"),
                admin,
                Some(json!({})),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            let (s, err) = call(
                &server,
                method,
                "/chats/model-configs/123",
                admin,
                Some(json!({})),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            assert_eq!(fields(&err), ["modelConfig"]);
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_bring_their_own_keys() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        // Anthropic: user keys only. OpenAI: central key, no user keys.
        let (_, byok) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "anthropic", "central_api_key_enabled": false, "allow_user_api_key": true})),
        )
        .await;
        let byok_id = byok["id"].as_str().unwrap().to_owned();
        let (_, central) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "openai", "api_key": CENTRAL_KEY})),
        )
        .await;
        let central_id = central["id"].as_str().unwrap().to_owned();
        let (s, _) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(json!({"provider": "anthropic", "model": "claude-sonnet-4", "context_limit": 200000})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);

        let (s, list) = call(&server, Method::GET, "/chats/user-provider-configs", member, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1, "only providers accepting user keys");
        assert_eq!(list[0]["provider_id"], json!(byok_id));
        assert_eq!(list[0]["has_user_api_key"], false);
        // Without a key of their own the model is listed but unavailable to Bob.
        let (_, catalogue) = call(&server, Method::GET, "/chats/models", member, None).await;
        let anthropic = entry(&catalogue["providers"], "anthropic");
        assert_eq!(anthropic["available"], false);
        assert_eq!(anthropic["unavailable_reason"], "user_api_key_required");

        let path = format!("/chats/user-provider-configs/{byok_id}");
        let (s, view) = call(
            &server,
            Method::PUT,
            &path,
            member,
            Some(json!({"api_key": USER_KEY})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{view}");
        assert_eq!(view["has_user_api_key"], true);
        let (_, catalogue) = call(&server, Method::GET, "/chats/models", member, None).await;
        assert_eq!(entry(&catalogue["providers"], "anthropic")["available"], true);
        // Other users are not affected by Bob's key.
        let carol = server.user("carol").await;
        let (_, list) = call(
            &server,
            Method::GET,
            "/chats/user-provider-configs",
            Some(&carol.token),
            None,
        )
        .await;
        assert_eq!(list[0]["has_user_api_key"], false);

        // 400: blank key, a provider that does not take user keys, a disabled provider.
        let (s, err) = call(&server, Method::PUT, &path, member, Some(json!({"api_key": "  "}))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_response(&err);
        let (s, _) = call(
            &server,
            Method::PUT,
            &format!("/chats/user-provider-configs/{central_id}"),
            member,
            Some(json!({"api_key": USER_KEY})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // 404 unknown provider config; 400 malformed id.
        let missing = format!("/chats/user-provider-configs/{}", uuid::Uuid::new_v4());
        for method in [Method::PUT, Method::DELETE] {
            let (s, _) = call(
                &server,
                method.clone(),
                &missing,
                member,
                Some(json!({"api_key": USER_KEY})),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            let (s, _) = call(
                &server,
                method,
                "/chats/user-provider-configs/x",
                member,
                Some(json!({"api_key": USER_KEY})),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
        }
        // Delete: 204, idempotent.
        for _ in 0..2 {
            let (s, _) = call(&server, Method::DELETE, &path, member, None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
        }
        let (_, list) = call(&server, Method::GET, "/chats/user-provider-configs", member, None).await;
        assert_eq!(list[0]["has_user_api_key"], false);
        // Disabled provider: no longer listed, and keys are refused.
        let (s, _) = call(
            &server,
            Method::PATCH,
            &format!("/chats/providers/{byok_id}"),
            admin,
            Some(json!({"enabled": false})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(&server, Method::PUT, &path, member, Some(json!({"api_key": USER_KEY}))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = call(&server, Method::GET, "/chats/user-provider-configs", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_catalogue_without_any_configuration() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let (s, catalogue) = call(
            &server,
            Method::GET,
            "/chats/models",
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let providers = catalogue["providers"].as_array().unwrap();
        // The offline demo model answers while nothing is configured, and is listed first.
        assert_eq!(providers.len(), chatprovider::SUPPORTED_PROVIDERS.len() + 1);
        assert_eq!(providers[0]["provider"], "demo");
        assert_eq!(providers[0]["available"], true);
        assert_eq!(providers[0]["models"][0]["model"], "demo");
        let openai = entry(&catalogue["providers"], "openai");
        assert_eq!(openai["available"], false);
        assert_eq!(openai["unavailable_reason"], "missing_api_key");
        assert_eq!(openai["models"], json!([]));
        let (s, _) = call(&server, Method::GET, "/chats/models", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        server.stop().await;
    })
    .await;
}

/// The deployment's plan-mode instructions: any user reads them, only an administrator
/// sets them (sanitized, bounded at `MAX_PLAN_MODE_INSTRUCTIONS_BYTES`, empty clears).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_mode_instructions_are_set_by_admins_and_read_by_everyone() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;
        let path = "/chats/config/plan-mode-instructions";
        let (s, body) = call(&server, Method::GET, path, Some(&bob.token), None).await;
        assert_eq!(
            (s, body),
            (StatusCode::OK, json!({"plan_mode_instructions": ""}))
        );
        let (s, body) = call(
            &server,
            Method::PUT,
            path,
            admin,
            Some(json!({"plan_mode_instructions": "  Keep plans under a page.\r\n"})),
        )
        .await;
        assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));
        for token in [admin, Some(bob.token.as_str())] {
            let (s, body) = call(&server, Method::GET, path, token, None).await;
            assert_eq!(
                (s, body),
                (
                    StatusCode::OK,
                    json!({"plan_mode_instructions": "Keep plans under a page."})
                )
            );
        }
        // A member may not set them, and learns nothing from the body.
        let (s, err) = call(
            &server,
            Method::PUT,
            path,
            Some(&bob.token),
            Some(json!({"plan_mode_instructions": "pwned"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_response(&err);
        let (s, _) = call(&server, Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // The limit at its edge; escaped characters fit the route's body limit.
        let at_limit = "\"".repeat(MAX_PLAN_MODE_INSTRUCTIONS_BYTES);
        let body = json!({"plan_mode_instructions": at_limit});
        assert!(body.to_string().len() <= PLAN_MODE_INSTRUCTIONS_BODY_BYTES);
        let (s, _) = call(&server, Method::PUT, path, admin, Some(body)).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let over = "a".repeat(MAX_PLAN_MODE_INSTRUCTIONS_BYTES + 1);
        let (s, err) = call(
            &server,
            Method::PUT,
            path,
            admin,
            Some(json!({"plan_mode_instructions": over})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), vec!["plan_mode_instructions"]);
        // Empty clears them.
        let (s, _) = call(
            &server,
            Method::PUT,
            path,
            admin,
            Some(json!({"plan_mode_instructions": ""})),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, body) = call(&server, Method::GET, path, admin, None).await;
        assert_eq!(body, json!({"plan_mode_instructions": ""}));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_prompt_is_admin_only_and_bounded() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let (s, prompt) = call(&server, Method::GET, "/chats/config/system-prompt", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(prompt["system_prompt"], "");
        assert_eq!(prompt["include_default_system_prompt"], true);
        assert_eq!(
            prompt["default_system_prompt"],
            chatd_core::prompt::DEFAULT_SYSTEM_PROMPT
        );
        let (s, body) = call(
            &server,
            Method::PUT,
            "/chats/config/system-prompt",
            admin,
            Some(json!({"system_prompt": "  Answer in French.\r\n", "include_default_system_prompt": false})),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(body, Value::Null);
        let (_, prompt) = call(&server, Method::GET, "/chats/config/system-prompt", admin, None).await;
        assert_eq!(prompt["system_prompt"], "Answer in French.");
        assert_eq!(prompt["include_default_system_prompt"], false);
        // Absent toggle: unchanged.
        call(
            &server,
            Method::PUT,
            "/chats/config/system-prompt",
            admin,
            Some(json!({"system_prompt": "Be terse."})),
        )
        .await;
        let (_, prompt) = call(&server, Method::GET, "/chats/config/system-prompt", admin, None).await;
        assert_eq!(prompt["include_default_system_prompt"], false);

        // The prompt limit, at its edge. A prompt at the limit made of characters JSON
        // escapes is larger than the server-wide body cap, and still accepted.
        let at_limit = "\"".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES);
        let body = json!({"system_prompt": at_limit});
        assert!(body.to_string().len() > server_example::MAX_BODY_BYTES);
        let (s, _) = call(&server, Method::PUT, "/chats/config/system-prompt", admin, Some(body)).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let over = "a".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES + 1);
        let (s, err) = call(
            &server,
            Method::PUT,
            "/chats/config/system-prompt",
            admin,
            Some(json!({"system_prompt": over})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_response(&err);
        // The body limit of the route, at its edge: exactly the limit is read (and judged
        // on its content), one byte more is a 413.
        let put_raw = |len: usize| {
            let head = r#"{"system_prompt":"ok"}"#;
            let body = format!("{head}{}", " ".repeat(len - head.len()));
            server
                .http
                .put(server.api("/chats/config/system-prompt"))
                .header("Coder-Session-Token", &server.admin_token)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
        };
        assert_eq!(
            put_raw(SYSTEM_PROMPT_BODY_BYTES).await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
        let too_big = put_raw(SYSTEM_PROMPT_BODY_BYTES + 1).await.unwrap();
        assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let _: codersdk::Response = too_big.json().await.unwrap();

        // Members may neither read nor write it.
        let bob = server.user("bob").await;
        let (s, _) = call(&server, Method::GET, "/chats/config/system-prompt", Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/config/system-prompt",
            Some(&bob.token),
            Some(json!({"system_prompt": "pwned"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (_, prompt) = call(&server, Method::GET, "/chats/config/system-prompt", admin, None).await;
        assert_eq!(prompt["system_prompt"], "ok");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_prompts_are_personal() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let path = "/chats/config/user-prompt";
        let (s, p) = call(&server, Method::GET, path, Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(p, json!({"custom_prompt": ""}));
        let (s, p) = call(
            &server,
            Method::PUT,
            path,
            Some(&bob.token),
            Some(json!({"custom_prompt": "  I use Rust. \u{0007}"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "PUT answers 200 with the stored prompt");
        assert_eq!(p, json!({"custom_prompt": "I use Rust."}));
        let (_, p) = call(&server, Method::GET, path, Some(&bob.token), None).await;
        assert_eq!(p["custom_prompt"], "I use Rust.");
        let (_, p) = call(&server, Method::GET, path, Some(&carol.token), None).await;
        assert_eq!(
            p["custom_prompt"], "",
            "another user's prompt is theirs alone"
        );
        // The limit at its edge.
        let max = chatd_core::store::MAX_USER_PROMPT_CHARS;
        let (s, _) = call(
            &server,
            Method::PUT,
            path,
            Some(&bob.token),
            Some(json!({"custom_prompt": "é".repeat(max)})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, err) = call(
            &server,
            Method::PUT,
            path,
            Some(&bob.token),
            Some(json!({"custom_prompt": "é".repeat(max + 1)})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["custom_prompt"]);
        // A blank prompt removes it; a body without the field is not a prompt.
        let (s, p) = call(
            &server,
            Method::PUT,
            path,
            Some(&bob.token),
            Some(json!({"custom_prompt": " "})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(p["custom_prompt"], "");
        let (s, err) = call(
            &server,
            Method::PUT,
            path,
            Some(&bob.token),
            Some(json!({})),
        )
        .await;
        assert!(s.is_client_error(), "{s}");
        assert_response(&err);
        let (s, _) = call(&server, Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        server.stop().await;
    })
    .await;
}

/// Users' own compaction thresholds: per user, per live model config, 0–100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_thresholds_are_personal_and_bounded() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        const PATH: &str = "/chats/config/user-compaction-thresholds";
        let (s, _) = call(
            &server,
            Method::POST,
            "/chats/providers",
            admin,
            Some(json!({"provider": "openai", "api_key": CENTRAL_KEY})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, model) = call(
            &server,
            Method::POST,
            "/chats/model-configs",
            admin,
            Some(json!({"provider": "openai", "model": "gpt-4o", "context_limit": 128000})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let id = model["id"].as_str().unwrap().to_owned();
        let one = format!("{PATH}/{id}");

        let (s, body) = call(&server, Method::GET, PATH, member, None).await;
        assert_eq!((s, body), (StatusCode::OK, json!({"thresholds": []})));
        // The edges: 0 and 100 are accepted, -1 and 101 are 400s naming the field.
        for ok in [0, 100, 55] {
            let (s, body) = call(
                &server,
                Method::PUT,
                &one,
                member,
                Some(json!({"threshold_percent": ok})),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{body}");
            assert_eq!(
                body,
                json!({"model_config_id": id, "threshold_percent": ok})
            );
        }
        for bad in [-1, 101] {
            let (s, err) = call(
                &server,
                Method::PUT,
                &one,
                member,
                Some(json!({"threshold_percent": bad})),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
            assert_eq!(fields(&err), ["threshold_percent"]);
        }
        // An unknown model config is a 404; nothing is stored for it.
        let unknown = format!("{PATH}/{}", codersdk::Uuid::new_v4());
        let (s, _) = call(
            &server,
            Method::PUT,
            &unknown,
            member,
            Some(json!({"threshold_percent": 50})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Personal: bob sees his, the admin sees none.
        let (_, body) = call(&server, Method::GET, PATH, member, None).await;
        assert_eq!(
            body,
            json!({"thresholds": [{"model_config_id": id, "threshold_percent": 55}]})
        );
        let _: codersdk::UserChatCompactionThresholds =
            serde_json::from_value(body.clone()).unwrap();
        let (_, body) = call(&server, Method::GET, PATH, admin, None).await;
        assert_eq!(body, json!({"thresholds": []}));
        // Deleting: 204, also when nothing is set.
        for _ in 0..2 {
            let (s, _) = call(&server, Method::DELETE, &one, member, None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
        }
        let (_, body) = call(&server, Method::GET, PATH, member, None).await;
        assert_eq!(body, json!({"thresholds": []}));
        let (s, _) = call(&server, Method::DELETE, &unknown, member, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = call(&server, Method::GET, PATH, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        server.stop().await;
    })
    .await;
}

/// The settings Coder's frontend reads when its chat pages open answer the truthful "off"
/// value instead of a 501; their writes stay 501 (walked by the next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_of_unbuilt_features_read_as_off() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let expected = [(
            "/chats/config/personal-model-overrides",
            json!({"allow_users": false}),
        )];
        assert_eq!(expected.len(), OFF_SETTINGS.len());
        for ((path, admin_only), (expected_path, value)) in OFF_SETTINGS.iter().zip(&expected) {
            assert_eq!(path, expected_path);
            let (s, body) = call(&server, Method::GET, path, Some(ADMIN_TOKEN), None).await;
            assert_eq!((s, &body), (StatusCode::OK, value), "{path}");
            let (s, body) = call(&server, Method::GET, path, Some(&bob.token), None).await;
            if *admin_only {
                assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
            } else {
                assert_eq!((s, &body), (StatusCode::OK, value), "{path}");
            }
            let (s, _) = call(&server, Method::GET, path, None, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
            let (s, err) = call(
                &server,
                Method::GET,
                &format!("{path}?verbose=1"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(fields(&err), ["verbose"]);
            // The writes of the setting (on its path, or per model config below it) are
            // still 501s; its read is not.
            assert!(
                UNSUPPORTED_ROUTES
                    .iter()
                    .any(|(p, methods, _)| p.starts_with(path) && methods.contains(&"PUT")),
                "{path}"
            );
            assert!(
                !UNSUPPORTED_ROUTES
                    .iter()
                    .any(|(p, methods, _)| p == path && methods.contains(&"GET")),
                "{path}"
            );
        }
        // The bodies are codersdk's types.
        let (_, body) = call(
            &server,
            Method::GET,
            "/chats/config/retention-days",
            Some(&bob.token),
            None,
        )
        .await;
        let _: codersdk::ChatRetentionDaysResponse = serde_json::from_value(body).unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbuilt_features_answer_json_501() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let id = uuid::Uuid::new_v4().to_string();
        for (template, methods, feature) in UNSUPPORTED_ROUTES {
            // Every `{param}` becomes an id (contexts and users accept any segment).
            let path = template
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        id.as_str()
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            for method in *methods {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let (s, body) = call(
                    &server,
                    method.clone(),
                    &path,
                    Some(&bob.token),
                    Some(json!({})),
                )
                .await;
                assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{method} {path}");
                assert!(
                    body["message"].as_str().unwrap().starts_with(feature),
                    "{method} {path}: {body}"
                );
                let (s, _) = call(&server, method.clone(), &path, None, None).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} needs a token");
            }
        }
        // A method a known route does not serve is a JSON 405.
        let (s, err) = call(
            &server,
            Method::DELETE,
            "/chats/config/system-prompt",
            Some(&server.admin_token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_response(&err);
        let (s, err) = call(
            &server,
            Method::POST,
            "/chats/config/workspace-ttl",
            Some(&server.admin_token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_response(&err);
        server.stop().await;
    })
    .await;
}

/// The retention settings (docs/retention.md): any user reads them (0 until set), an
/// administrator sets them (204), a member may not (403); outside 0–3650, or not an
/// integer, is a 400 `Response` naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_settings_are_read_by_everyone_and_set_by_administrators() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        let admin = Some(ADMIN_TOKEN);
        for (path, field) in [
            ("/chats/config/retention-days", "retention_days"),
            ("/chats/config/auto-archive-days", "auto_archive_days"),
        ] {
            let (s, body) = call(&server, Method::GET, path, member, None).await;
            assert_eq!((s, body), (StatusCode::OK, json!({ field: 0 })), "{path}");
            for days in [codersdk::MAX_CHAT_RETENTION_DAYS, 0, 30] {
                let (s, _) = call(
                    &server,
                    Method::PUT,
                    path,
                    admin,
                    Some(json!({ field: days })),
                )
                .await;
                assert_eq!(s, StatusCode::NO_CONTENT, "{path} {days}");
                let (s, body) = call(&server, Method::GET, path, member, None).await;
                assert_eq!(
                    (s, body),
                    (StatusCode::OK, json!({ field: days })),
                    "{path}"
                );
            }
            // Refused writes change nothing.
            let (s, err) = call(
                &server,
                Method::PUT,
                path,
                member,
                Some(json!({ field: 1 })),
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
            assert_response(&err);
            for bad in [
                json!({ field: codersdk::MAX_CHAT_RETENTION_DAYS + 1 }),
                json!({ field: -1 }),
            ] {
                let (s, err) = call(&server, Method::PUT, path, admin, Some(bad.clone())).await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {bad}");
                assert_response(&err);
                assert_eq!(fields(&err), [field], "{path} {bad}");
            }
            for bad in [
                json!({ field: 1.5 }),
                json!({ field: "7" }),
                json!({ field: 4_294_967_296_i64 }),
                json!({}),
            ] {
                let (s, err) = call(&server, Method::PUT, path, admin, Some(bad.clone())).await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {bad}");
                assert_response(&err);
            }
            let (_, body) = call(&server, Method::GET, path, admin, None).await;
            assert_eq!(body, json!({ field: 30 }), "{path}");
            let (s, _) = call(&server, Method::GET, path, None, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
            let (s, _) = call(&server, Method::PUT, path, None, Some(json!({ field: 1 }))).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        }
        // The engine reads what was stored.
        assert_eq!(store.retention_days().await.unwrap(), 30);
        assert_eq!(store.auto_archive_days().await.unwrap(), 30);
        server.stop().await;
    })
    .await;
}

/// A provider the catalogue offers must stream: Google and Bedrock, both configured with a
/// key and a model, are offered with their models now that both have clients
/// (`chatprovider::streams`; a provider without one would be `provider_not_supported`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_offers_only_providers_that_stream() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(ADMIN_TOKEN);
        for (provider, model) in [
            ("google", "gemini-2.5-flash"),
            ("bedrock", "anthropic.claude-sonnet-4-5"),
        ] {
            let (s, body) = call(
                &server,
                Method::POST,
                "/chats/providers",
                admin,
                Some(json!({"provider": provider, "api_key": CENTRAL_KEY})),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
            let (s, body) = call(
                &server,
                Method::POST,
                "/chats/model-configs",
                admin,
                Some(json!({"provider": provider, "model": model, "context_limit": 200000})),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
        }
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        let (s, catalogue) = call(&server, Method::GET, "/chats/models", member, None).await;
        assert_eq!(s, StatusCode::OK);
        let google = entry(&catalogue["providers"], "google");
        assert_eq!(google["available"], true, "{catalogue}");
        assert_eq!(google["models"][0]["model"], "gemini-2.5-flash");
        let bedrock = entry(&catalogue["providers"], "bedrock");
        assert!(chatprovider::streams(Provider::Bedrock));
        assert_eq!(bedrock["available"], true, "{catalogue}");
        assert!(bedrock.get("unavailable_reason").is_none(), "{catalogue}");
        assert_eq!(bedrock["models"][0]["model"], "anthropic.claude-sonnet-4-5");

        server.stop().await;
    })
    .await;
}
