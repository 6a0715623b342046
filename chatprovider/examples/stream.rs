//! Streams one model turn from any supported provider and prints what arrives.
//!
//! ```text
//! cargo run -q -p chatprovider --example stream -- --provider <id> --model <model> \
//!     [--base-url <url>] [--api-key <key>] [--openai-api chat|responses] [--system <text>] \
//!     [--prompt <text>] [--messages <file.json>] [--tools <file.json>] [--max-output-tokens <n>]
//! ```
//!
//! Prints one JSON object per stream part, then a summary object as the last line:
//! `{"text", "reasoning", "tool_calls": [{"id", "name", "args"}], "usage": {…},
//! "finish_reason", "response_id"}`. On failure the last line is `{"error": <ChatError>}`
//! and the exit code is 1.
//!
//! `--provider bedrock` without `--api-key` signs with the ambient AWS credentials (the
//! standard chain: `AWS_ACCESS_KEY_ID`…, `AWS_PROFILE`, web identity, ECS/EC2 roles) in the
//! chain's region; with a key it sends the key as a Bedrock API key (`Authorization:
//! Bearer`) to `AWS_REGION` or `us-east-1`. `--model` is then a Bedrock model id or
//! inference profile, e.g. `us.anthropic.claude-sonnet-4-5-20250929-v1:0`.
//!
//! `--messages` holds a JSON array of `{"role": "user"|"assistant"|"tool"|"system",
//! "content": [<ChatMessagePart>, …]}`; `--tools` holds a JSON array of `DynamicTool`s.

use std::io::Write;
use std::process::ExitCode;

use chatprovider::{
    language_model, message_from_parts, CallSettings, ClientSettings, Message, ModelRequest,
    OpenAiApi, ProviderApiKeys, ResponseCollector, ToolDefinition,
};
use clap::Parser;
use codersdk::{ChatError, ChatMessagePart, ChatMessagePartType, ChatMessageRole, DynamicTool};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Stream one model turn and print every part as JSON")]
struct Args {
    /// Provider id: openai, azure, anthropic, bedrock, google, openai-compat, openrouter, vercel.
    #[arg(long)]
    provider: String,
    /// Provider model id.
    #[arg(long)]
    model: String,
    /// Base URL of the provider API (default: the provider's public endpoint).
    #[arg(long)]
    base_url: Option<String>,
    /// API key (Bedrock: a Bedrock API key; without one, ambient AWS credentials).
    #[arg(long, env = "CHATD_EXAMPLE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// OpenAI API to use for openai/azure models.
    #[arg(long, value_parser = ["chat", "responses"])]
    openai_api: Option<String>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// A user message appended after `--messages`.
    #[arg(long)]
    prompt: Option<String>,
    /// JSON file: array of {role, content: [ChatMessagePart]}.
    #[arg(long)]
    messages: Option<std::path::PathBuf>,
    /// JSON file: array of DynamicTool.
    #[arg(long)]
    tools: Option<std::path::PathBuf>,
    /// Maximum output tokens.
    #[arg(long)]
    max_output_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct StoredMessage {
    role: ChatMessageRole,
    #[serde(default)]
    content: Vec<ChatMessagePart>,
}

/// The summary line of a failed run.
fn error_line(err: ChatError) -> String {
    json!({ "error": err }).to_string()
}

fn fail(message: String) -> ExitCode {
    println!("{}", error_line(ChatError::generic(message)));
    ExitCode::FAILURE
}

fn build_request(args: &Args) -> Result<ModelRequest, String> {
    let mut request = ModelRequest::default();
    if let Some(system) = &args.system {
        request.system.push(system.clone());
    }
    if let Some(path) = &args.messages {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let stored: Vec<StoredMessage> =
            serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
        for m in stored {
            if m.role == ChatMessageRole::System {
                let text: Vec<&str> = m
                    .content
                    .iter()
                    .filter(|p| p.part_type == ChatMessagePartType::Text)
                    .map(|p| p.text.as_str())
                    .collect();
                request.system.push(text.join("\n"));
            } else if let Some(msg) = message_from_parts(&m.role, &m.content) {
                request.messages.push(msg);
            }
        }
    }
    if let Some(prompt) = &args.prompt {
        request.messages.push(Message::user_text(prompt.clone()));
    }
    if let Some(path) = &args.tools {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let tools: Vec<DynamicTool> =
            serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
        request.tools = tools
            .into_iter()
            .map(|t| ToolDefinition {
                name: t.name,
                description: t.description,
                input_schema: t.input_schema,
            })
            .collect();
    }
    if request.messages.is_empty() {
        return Err("nothing to send: give --prompt or --messages".into());
    }
    request.settings = CallSettings {
        max_output_tokens: args.max_output_tokens,
        ..Default::default()
    };
    Ok(request)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(provider) = chatprovider::Provider::parse(&args.provider) else {
        return fail(format!("unknown provider {:?}", args.provider));
    };
    let request = match build_request(&args) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut keys = match args.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(key) => match ProviderApiKeys::new().with_api_key(provider, key) {
            Ok(k) => k,
            Err(e) => return print_error(e.classification().to_chat_error()),
        },
        None => {
            // No key: ambient credentials where the provider allows them (Bedrock); any
            // other provider then fails below with its missing-key error.
            let mut keys = ProviderApiKeys::new();
            keys.set_ambient(provider);
            keys
        }
    };
    if let Some(url) = &args.base_url {
        keys = match keys.with_base_url(provider, url.as_str()) {
            Ok(k) => k,
            Err(e) => return print_error(e.classification().to_chat_error()),
        };
    }
    let api = args.openai_api.as_deref().map(|a| {
        if a == "chat" {
            OpenAiApi::ChatCompletions
        } else {
            OpenAiApi::Responses
        }
    });
    let model = match keys
        .client_credentials(provider.as_str())
        .and_then(|c| language_model(&c, &args.model, api, ClientSettings::default()))
    {
        Ok(m) => m,
        Err(e) => return print_error(e.classification().to_chat_error()),
    };

    let mut stdout = std::io::stdout().lock();
    let mut collector = ResponseCollector::new();
    let mut stream = model.stream(request);
    while let Some(item) = stream.next().await {
        match item {
            Ok(part) => {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string(&part).unwrap_or_default()
                );
                collector.push(&part);
            }
            Err(err) => {
                let classified = chaterror::classify(&err).with_provider(provider.as_str());
                drop(stdout);
                return print_error(classified.to_chat_error());
            }
        }
    }
    let resp = collector.finish();
    let tool_calls: Vec<_> = resp
        .tool_calls
        .iter()
        .map(|c| {
            let args = serde_json::from_str::<serde_json::Value>(&c.arguments)
                .unwrap_or_else(|_| serde_json::Value::String(c.arguments.clone()));
            json!({ "id": c.id, "name": c.name, "args": args })
        })
        .collect();
    let u = resp.usage;
    let summary = json!({
        "text": resp.text,
        "reasoning": resp.reasoning,
        "tool_calls": tool_calls,
        "usage": {
            "input_tokens": u.input_tokens.unwrap_or(0),
            "output_tokens": u.output_tokens.unwrap_or(0),
            "reasoning_tokens": u.reasoning_tokens.unwrap_or(0),
            "cache_read_tokens": u.cache_read_tokens.unwrap_or(0),
            "cache_creation_tokens": u.cache_creation_tokens.unwrap_or(0),
        },
        "finish_reason": resp.finish_reason.as_ref().map(|r| r.as_str()).unwrap_or("other"),
        "response_id": resp.response_id,
    });
    let _ = writeln!(stdout, "{summary}");
    ExitCode::SUCCESS
}

fn print_error(err: Option<ChatError>) -> ExitCode {
    let err = err.unwrap_or_else(|| ChatError::generic("the model call failed"));
    println!("{}", error_line(err));
    ExitCode::FAILURE
}
