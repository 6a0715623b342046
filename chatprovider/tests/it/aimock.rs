//! A third-party peer: `@copilotkit/aimock` (pinned in `tests/aimock/package.json`) serves a
//! two-turn tool loop for each of Chat Completions, Responses and Messages, and each client
//! must complete it — turn 1 asks for a tool, turn 2 answers after the tool result.
//!
//! Needs Node.js and `npm ci` in `chatprovider/tests/aimock` (`scripts/test.sh` and `.ci/run`
//! do that).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatprovider::{
    language_model, message_from_parts, response_to_parts, ClientSettings, FinishReason, Message,
    ModelRequest, OpenAiApi, Part, ProviderApiKeys, Role, ToolDefinition,
};
use codersdk::{ChatMessageRole, RawJson};

/// The aimock process, killed on drop.
struct Aimock {
    child: Child,
    base: String,
}

impl Drop for Aimock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_aimock() -> Aimock {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aimock"));
    let cli = dir.join("node_modules/@copilotkit/aimock/dist/cli.js");
    assert!(
        cli.exists(),
        "aimock is not installed: run `npm ci` in {} (scripts/test.sh does this)",
        dir.display()
    );
    // A free loopback port: bind, read, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("node")
        .arg(&cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-f"])
        .arg(dir.join("fixtures"))
        .args(["--log-level", "warn", "--strict"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node (is Node.js installed?)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "aimock did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Aimock {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Current weather for a city".into(),
        input_schema: RawJson::from_json(
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        )
        .unwrap(),
    }
}

/// Runs the two-turn loop against one client.
async fn tool_loop(provider: &str, base_url: &str, model: &str, api: Option<OpenAiApi>) {
    let id = chatprovider::Provider::parse(provider).unwrap();
    let keys = ProviderApiKeys::new()
        .with_api_key(id, "mock-key")
        .unwrap()
        .with_base_url(id, base_url)
        .unwrap();
    let creds = keys.client_credentials(provider).unwrap();
    let llm = language_model(&creds, model, api, ClientSettings::default()).unwrap();

    let mut request = ModelRequest {
        system: vec!["You are a weather assistant.".into()],
        messages: vec![Message::user_text("What is the weather in Paris?")],
        tools: vec![weather_tool()],
        ..Default::default()
    };
    let turn1 = llm
        .generate(request.clone())
        .await
        .unwrap_or_else(|e| panic!("{provider} turn 1: {e}"));
    assert_eq!(
        turn1.finish_reason,
        Some(FinishReason::ToolCalls),
        "{provider}: {turn1:?}"
    );
    assert_eq!(turn1.tool_calls.len(), 1, "{provider}");
    let call = &turn1.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    assert_eq!(
        call.arguments_json()
            .unwrap()
            .parse::<serde_json::Value>()
            .unwrap()["city"],
        "Paris"
    );

    // Turn 2: the assistant's stored turn plus the tool result, as the engine replays them.
    let stored = response_to_parts(&turn1);
    request
        .messages
        .push(message_from_parts(&ChatMessageRole::Assistant, &stored).unwrap());
    request.messages.push(Message {
        role: Role::Tool,
        content: vec![Part::ToolResult {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            output: RawJson::from_json(r#"{"forecast":"sunny","celsius":21}"#).unwrap(),
            is_error: false,
        }],
    });
    let turn2 = llm
        .generate(request)
        .await
        .unwrap_or_else(|e| panic!("{provider} turn 2: {e}"));
    assert_eq!(
        turn2.finish_reason,
        Some(FinishReason::Stop),
        "{provider}: {turn2:?}"
    );
    assert_eq!(turn2.text, "It is sunny in Paris.", "{provider}");
    assert!(turn2.tool_calls.is_empty());
}

#[tokio::test]
async fn clients_complete_a_tool_loop_against_aimock() {
    let mock = start_aimock();
    let v1 = format!("{}/v1", mock.base);
    tool_loop("openai", &v1, "gpt-4o", Some(OpenAiApi::ChatCompletions)).await;
    tool_loop("openai", &v1, "gpt-5", Some(OpenAiApi::Responses)).await;
    tool_loop("openai-compat", &v1, "llama-3.3-70b", None).await;
    tool_loop("anthropic", &mock.base, "claude-sonnet-4-5", None).await;
}
