//! Bedrock through the engine: the real `StoreModelResolver` and the real Bedrock client
//! against a local stand-in of Bedrock's runtime that answers with event-stream frames.
//! A two-step client tool loop on a stored Bedrock API key (bearer), and the key policy's
//! Bedrock rows: no key in central mode signs with ambient AWS credentials (fixed ones
//! here, so no test reaches the real AWS chain or IMDS), users' keys required but absent
//! fails the turn without a request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::SystemTime;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::{Actor, Engine, EngineConfig, Keyring, SecretKey, StoreModelResolver};
use chatd_test_support::db::{fixture, on_each_backend, Fixture};
use chatd_test_support::replay::{Recorded, ReplayServer, Reply};
use chatd_test_support::scripted::{create_request, fast_settings, wait_status};
use chatprovider::{
    encode_chunk_frame, sigv4_headers, AwsCredentials, AwsEnvironment, ClientSettings,
    ProviderApiKeys, SigV4Request,
};
use codersdk::{
    ChatMessage, ChatMessagePartType, ChatMessageRole, ChatStatus, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest, DynamicTool, MessagePage, RawJson,
    SecretString, SubmitToolResultsRequest, ToolResult, Uuid,
};

const TOKEN: &str = "bedrock-api-key-SECRET-engine-0123456789";
const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const ACCESS_KEY: &str = "AKIDENGINETEST001";
const SECRET_KEY: &str = "engine-secret-key-SECRET-00000000000000";
const REGION: &str = "eu-central-1";

/// How the stand-in expects requests to be authenticated.
#[derive(Clone, Copy)]
enum Auth {
    Bearer,
    SigV4,
}

fn frames(events: &[serde_json::Value]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|e| encode_chunk_frame(&e.to_string()))
        .collect()
}

fn start(id: &str) -> serde_json::Value {
    serde_json::json!({"type":"message_start","message":{"id":id,"type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"usage":{"input_tokens":40,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}})
}

fn tool_use_reply() -> Vec<u8> {
    frames(&[
        start("msg_bdrk_tool"),
        serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_bdrk_1","name":"get_weather","input":{}}}),
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}),
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}),
        serde_json::json!({"type":"content_block_stop","index":0}),
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":12}}),
        serde_json::json!({"type":"message_stop"}),
    ])
}

fn text_reply(text: &str) -> Vec<u8> {
    frames(&[
        start("msg_bdrk_text"),
        serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
        serde_json::json!({"type":"content_block_stop","index":0}),
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}),
        serde_json::json!({"type":"message_stop"}),
    ])
}

fn check_auth(r: &Recorded, auth: Auth) -> Result<(), String> {
    if r.header("x-api-key").is_some() || r.header("anthropic-version").is_some() {
        return Err("direct-API headers on a Bedrock request".into());
    }
    match auth {
        Auth::Bearer => (r.header("authorization") == Some(format!("Bearer {TOKEN}").as_str()))
            .then_some(())
            .ok_or_else(|| format!("authorization {:?}", r.header("authorization"))),
        Auth::SigV4 => {
            let date = r.header("x-amz-date").ok_or("no x-amz-date")?;
            let time: SystemTime = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
                .map_err(|e| e.to_string())?
                .and_utc()
                .into();
            let url = format!("http://{}{}", r.header("host").unwrap_or_default(), r.path);
            let headers = [("content-type", r.header("content-type").unwrap_or_default())];
            let want = sigv4_headers(
                &SigV4Request {
                    method: &r.method,
                    url: &url,
                    headers: &headers,
                    body: &r.body,
                },
                &credentials(),
                REGION,
                "bedrock",
                time,
            )
            .map_err(|e| e.to_string())?;
            let want = want
                .iter()
                .find(|(n, _)| n == "authorization")
                .map(|(_, v)| v.as_str());
            (want == r.header("authorization"))
                .then_some(())
                .ok_or_else(|| "signature mismatch".to_owned())
        }
    }
}

/// The stand-in: the path must name the model; a request carrying a tool result gets the
/// final text, one offering the tool gets a tool call, anything else (titles) a text.
async fn bedrock_stand_in(auth: Auth) -> ReplayServer {
    ReplayServer::start_with_responder(Vec::new(), move |r| {
        let expected_path =
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";
        if r.path != expected_path {
            return Some(Reply::status(
                404,
                vec![],
                b"{\"message\":\"path\"}".to_vec(),
            ));
        }
        if let Err(e) = check_auth(r, auth) {
            return Some(Reply::status(
                403,
                vec![("x-amzn-errortype".into(), "AccessDeniedException".into())],
                serde_json::json!({ "message": e }).to_string().into_bytes(),
            ));
        }
        let body = String::from_utf8_lossy(&r.body).into_owned();
        let reply = if body.contains("\"tool_result\"") {
            text_reply("It is 21°C in Paris.")
        } else if body.contains("\"get_weather\"") {
            tool_use_reply()
        } else {
            text_reply("Paris weather")
        };
        Some(Reply {
            status: 200,
            headers: vec![(
                "content-type".into(),
                "application/vnd.amazon.eventstream".into(),
            )],
            chunks: chatd_test_support::replay::chunk(&reply, Some(11), 0),
            delay_first_byte: std::time::Duration::ZERO,
        })
    })
    .await
}

fn credentials() -> AwsCredentials {
    AwsCredentials::new(ACCESS_KEY, SECRET_KEY, None, None, "engine-test")
}

struct Setup {
    engine: Engine,
    f: Fixture,
    model_config: Uuid,
}

/// An engine whose one model is `MODEL` on a Bedrock provider configured by `provider`,
/// at `server`.
async fn setup(
    store: &Store,
    server: &ReplayServer,
    provider: CreateChatProviderConfigRequest,
) -> Setup {
    let keyring = Arc::new(Keyring::new("k1", SecretKey::from_bytes([9; 32])).unwrap());
    let keys = ProviderApiKeys::new();
    let req = CreateChatProviderConfigRequest {
        provider: "bedrock".into(),
        base_url: Some(server.base_url.clone()),
        ..provider
    };
    let valid = chatprovider::validate_create_provider_request(&req, &keys).unwrap();
    store
        .create_provider_config(&valid, &keyring)
        .await
        .unwrap();
    let req = CreateChatModelConfigRequest {
        provider: "bedrock".into(),
        model: MODEL.into(),
        context_limit: Some(200_000),
        ..Default::default()
    };
    let valid = codersdk::validate_create_model_config(&req).unwrap();
    let model = store.create_model_config(&valid, &keys).await.unwrap();
    let resolver = StoreModelResolver::new(store.clone(), keyring, keys).with_client_settings(
        ClientSettings {
            aws: Some(AwsEnvironment::fixed(credentials(), Some(REGION))),
            ..Default::default()
        },
    );
    let config = EngineConfig::new(StoreOptions::new("unused"), Arc::new(resolver))
        .with_settings(fast_settings());
    let engine = Engine::with_store(store.clone(), config).await.unwrap();
    let f = fixture(store).await;
    Setup {
        engine,
        f,
        model_config: model.id,
    }
}

fn weather_tool() -> DynamicTool {
    DynamicTool {
        name: "get_weather".into(),
        description: "Weather of a city".into(),
        input_schema: RawJson::from_json(
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        )
        .unwrap(),
    }
}

async fn history(engine: &Engine, actor: &Actor, chat: Uuid) -> Vec<ChatMessage> {
    let page = MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    };
    engine
        .list_messages(actor, chat, &page)
        .await
        .unwrap()
        .messages
}

fn text_of(m: &ChatMessage) -> String {
    m.content
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::Text)
        .map(|p| p.text.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_step_tool_loop_on_a_bedrock_api_key() {
    on_each_backend(|store| async move {
        let server = bedrock_stand_in(Auth::Bearer).await;
        let s = setup(
            &store,
            &server,
            CreateChatProviderConfigRequest {
                api_key: Some(SecretString::new(TOKEN)),
                ..Default::default()
            },
        )
        .await;
        let actor = Actor::user(s.f.user);
        let chat = s
            .engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    unsafe_dynamic_tools: vec![weather_tool()],
                    model_config_id: Some(s.model_config),
                    ..create_request(s.f.org, "What is the weather in Paris?")
                },
            )
            .await
            .unwrap();
        let waiting = wait_status(&s.engine, &actor, chat.id, ChatStatus::RequiresAction).await;
        assert!(waiting.last_error.is_none(), "{:?}", waiting.last_error);
        s.engine
            .submit_tool_results(
                &actor,
                chat.id,
                SubmitToolResultsRequest {
                    results: vec![ToolResult {
                        tool_call_id: "toolu_bdrk_1".into(),
                        output: Some(RawJson::from_json(r#"{"temp_c":21}"#).unwrap()),
                        is_error: false,
                    }],
                },
            )
            .await
            .unwrap();
        let done = wait_status(&s.engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none(), "{:?}", done.last_error);
        let h = history(&s.engine, &actor, chat.id).await;
        let roles: Vec<_> = h.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            vec![
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Assistant
            ]
        );
        let call = h[1]
            .content
            .iter()
            .find(|p| p.part_type == ChatMessagePartType::ToolCall)
            .unwrap();
        assert_eq!(call.tool_name, "get_weather");
        assert_eq!(text_of(&h[3]), "It is 21°C in Paris.");
        // Usage from the Anthropic events inside the frames reached the message.
        assert_eq!(h[3].usage.as_ref().and_then(|u| u.output_tokens), Some(9));

        // The second call replayed the tool call and carried its result.
        let turns: Vec<serde_json::Value> = server
            .requests()
            .iter()
            .map(Recorded::json)
            .filter(|b| b.to_string().contains("get_weather"))
            .collect();
        assert_eq!(turns.len(), 2, "{turns:?}");
        let second = &turns[1];
        assert_eq!(second["anthropic_version"], "bedrock-2023-05-31");
        assert!(second.get("model").is_none());
        let text = second["messages"].to_string();
        assert!(
            text.contains("\"tool_use\"") && text.contains("toolu_bdrk_1"),
            "{text}"
        );
        assert!(
            text.contains("\"tool_result\"") && text.contains("temp_c"),
            "{text}"
        );
        s.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_key_policy_rows_through_the_engine() {
    on_each_backend(|store| async move {
        // Central mode without a key: ambient AWS credentials, signed with SigV4.
        let server = bedrock_stand_in(Auth::SigV4).await;
        let s = setup(&store, &server, CreateChatProviderConfigRequest::default()).await;
        let actor = Actor::user(s.f.user);
        let chat = s
            .engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    model_config_id: Some(s.model_config),
                    ..create_request(s.f.org, "hello")
                },
            )
            .await
            .unwrap();
        let done = wait_status(&s.engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none(), "{:?}", done.last_error);
        let h = history(&s.engine, &actor, chat.id).await;
        assert_eq!(text_of(&h[1]), "Paris weather");
        let r = &server.requests()[0];
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"))
                && auth.contains(&format!("/{REGION}/bedrock/aws4_request")),
            "{auth}"
        );
        s.engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_requiring_user_keys_without_one_sends_nothing() {
    on_each_backend(|store| async move {
        let server = bedrock_stand_in(Auth::SigV4).await;
        let s = setup(
            &store,
            &server,
            CreateChatProviderConfigRequest {
                allow_user_api_key: Some(true),
                allow_central_api_key_fallback: Some(false),
                ..Default::default()
            },
        )
        .await;
        let actor = Actor::user(s.f.user);
        let created = s
            .engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    model_config_id: Some(s.model_config),
                    ..create_request(s.f.org, "hello")
                },
            )
            .await;
        match created {
            // Refused up front ...
            Err(e) => assert!(e.to_string().contains("key"), "{e}"),
            // ... or the turn fails with the missing-key error.
            Ok(chat) => {
                let failed = wait_status(&s.engine, &actor, chat.id, ChatStatus::Error).await;
                let err = failed.last_error.unwrap();
                assert!(!err.retryable, "{err:?}");
            }
        }
        assert!(server.requests().is_empty(), "nothing reached Bedrock");
        s.engine.shutdown().await;
    })
    .await;
}
