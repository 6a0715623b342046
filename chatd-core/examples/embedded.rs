//! The engine embedded in a program: a chat on SQLite with a scripted model that calls a
//! built-in tool, and the chat's event stream printed as it happens.
//!
//! Run: `cargo run -p chatd-core --example embedded`. No network and no API key: the model
//! is a stand-in that answers from a script. Swap in [`chatd_core::StoreModelResolver`]
//! (or any [`ModelResolver`]) to talk to a real provider.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chatd_core::store::{NewUser, StoreOptions};
use chatd_core::tools::{parse_arguments, schema_for, Tool, ToolContext, ToolOutput, ToolRegistry};
use chatd_core::{
    Actor, Engine, EngineConfig, ModelResolver, ModelSelection, ResolvedModel, TurnModelRequest,
};
use chatprovider::{
    FinishReason, LanguageModel, ModelRequest, ModelStream, Provider, StreamPart, ToolCall,
};
use codersdk::{
    ChatError, ChatInputPart, ChatMessageUsage, ChatStatus, ChatStreamEventType, CreateChatRequest,
    RawJson, Uuid,
};
use futures_util::StreamExt;

/// A built-in tool: adds two numbers.
#[derive(Debug)]
struct Add;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[async_trait::async_trait]
impl Tool for Add {
    fn name(&self) -> &str {
        "add"
    }
    fn description(&self) -> &str {
        "Adds two numbers"
    }
    fn parameters(&self) -> schemars::Schema {
        schema_for::<AddArgs>()
    }
    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        match parse_arguments::<AddArgs>(&args) {
            Ok(AddArgs { a, b }) => ToolOutput::json(&serde_json::json!({ "sum": a + b })),
            Err(bad) => bad,
        }
    }
}

/// A stand-in model: first asks for the tool, then answers with text.
#[derive(Debug, Default)]
struct Scripted {
    replies: Mutex<VecDeque<Vec<StreamPart>>>,
}

impl Scripted {
    fn new() -> Self {
        let usage = ChatMessageUsage {
            input_tokens: Some(42),
            output_tokens: Some(7),
            ..Default::default()
        };
        let call = vec![
            StreamPart::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "add".into(),
                arguments: r#"{"a":2,"b":40}"#.into(),
                arguments_valid: true,
                provider_executed: false,
            }),
            StreamPart::Finish {
                reason: FinishReason::ToolCalls,
                usage,
            },
        ];
        let mut answer: Vec<StreamPart> = ["The ", "answer ", "is ", "42."]
            .into_iter()
            .map(|d| StreamPart::TextDelta {
                block: 0,
                delta: d.into(),
            })
            .collect();
        answer.push(StreamPart::Finish {
            reason: FinishReason::Stop,
            usage,
        });
        Scripted {
            replies: Mutex::new(VecDeque::from([call, answer])),
        }
    }
}

#[async_trait::async_trait]
impl LanguageModel for Scripted {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }
    fn model_id(&self) -> &str {
        "gpt-4o-mini"
    }
    fn stream(&self, _request: ModelRequest) -> ModelStream {
        let parts = self
            .replies
            .lock()
            .ok()
            .and_then(|mut r| r.pop_front())
            .unwrap_or_default();
        futures_util::stream::iter(parts.into_iter().map(Ok)).boxed()
    }
}

/// Every chat uses the scripted model.
#[derive(Debug)]
struct OneModel {
    id: Uuid,
    model: Arc<Scripted>,
}

#[async_trait::async_trait]
impl ModelResolver for OneModel {
    async fn select(&self, _selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(self.id)
    }
    async fn resolve(&self, _turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        Ok(ResolvedModel::new(self.id, self.model.clone()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("chatd-example-{}.db", Uuid::new_v4()));
    let models = Arc::new(OneModel {
        id: Uuid::new_v4(),
        model: Arc::new(Scripted::new()),
    });
    let config = EngineConfig::new(
        StoreOptions::new(format!("sqlite://{}", path.display())),
        models,
    )
    .with_tools(ToolRegistry::new().with_tool(Arc::new(Add))?)
    .with_generated_titles(false);
    let engine = Engine::start(config).await?;

    let store = engine.store();
    let user = store
        .create_user(NewUser {
            username: "ada".into(),
            name: "Ada".into(),
            role: chatd_core::Role::Member,
        })
        .await?;
    let org = store.create_organization("example").await?;
    store.add_member(org.id, user.id).await?;
    let actor = Actor::user(user.id);

    let chat = engine
        .create_chat(
            &actor,
            CreateChatRequest {
                content: vec![ChatInputPart::text("What is 2 + 40?")],
                ..Default::default()
            },
        )
        .await?;
    println!("created chat {} titled {:?}", chat.id, chat.title);

    let mut stream = engine.subscribe(&actor, chat.id, None).await?;
    loop {
        let event = stream.next().await?;
        match &event.event_type {
            ChatStreamEventType::Status => {
                let status = event.status.as_ref().map(|s| s.status.clone());
                println!("status   {status:?}");
                if status == Some(ChatStatus::Waiting) {
                    break;
                }
            }
            ChatStreamEventType::MessagePart => {
                if let Some(p) = &event.message_part {
                    println!("part     {:?} {:?}", p.part.part_type, p.part.text);
                }
            }
            ChatStreamEventType::Message => {
                if let Some(m) = &event.message {
                    for p in &m.content {
                        let body = match (&p.args, &p.result) {
                            (Some(args), _) => format!("{}({})", p.tool_name, args.get()),
                            (_, Some(result)) => format!("{} -> {}", p.tool_name, result.get()),
                            _ => p.text.clone(),
                        };
                        println!("message  #{} {:?} {:?}: {body}", m.id, m.role, p.part_type);
                    }
                }
            }
            other => println!("event    {other:?}"),
        }
    }
    engine.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
