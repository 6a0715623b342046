//! Wire types for Coder-compatible AI-agent chat APIs.
//!
//! `codersdk` is the vocabulary of the chatd crates: every JSON body, stream event and
//! configuration object of Coder's experimental chats API (`/api/experimental/chats`), with
//! the exact field names, omitted-versus-null rules and never-null arrays of Coder's Go
//! server, so clients written for Coder work against chatd and the other way round. Every
//! type also derives TypeScript (ts-rs, committed under `bindings/`) and request bodies derive
//! JSON Schema (schemars). Reading is forward compatible: unknown fields are ignored and
//! unknown enum strings are kept as `Unknown(..)` values that round-trip. The crate also holds
//! the validation rules that server and clients share, the chat list search-query parser and
//! the decoder for stored message content. It does no I/O, except in the typed client of the
//! optional `client` feature.
//!
//! # Example: a bot reading a stream frame
//!
//! ```
//! use codersdk::{ChatMessagePartType, ChatStreamEvent, ChatStreamEventType, ChatStatus};
//!
//! // One WebSocket text frame of `GET /api/experimental/chats/{chat}/stream`.
//! let frame = r#"[
//!   {"type":"status","chat_id":"0b6c6ad4-54a4-4be0-9b7e-6f1d1f0c1a01","status":{"status":"running"}},
//!   {"type":"message_part","chat_id":"0b6c6ad4-54a4-4be0-9b7e-6f1d1f0c1a01","message_part":{"role":"assistant",
//!    "part":{"type":"text","text":"Hel","url":"","media_type":"","file_name":"","start_line":0,
//!            "end_line":0,"content":"","context_file_path":"","skill_name":""}}},
//!   {"type":"preview_reset","chat_id":"0b6c6ad4-54a4-4be0-9b7e-6f1d1f0c1a01"}
//! ]"#;
//! let events: Vec<ChatStreamEvent> = serde_json::from_str(frame)?;
//!
//! let mut text = String::new();
//! for event in &events {
//!     match &event.event_type {
//!         ChatStreamEventType::Status => {
//!             assert_eq!(event.status.as_ref().map(|s| &s.status), Some(&ChatStatus::Running));
//!         }
//!         ChatStreamEventType::MessagePart => {
//!             if let Some(mp) = &event.message_part {
//!                 if mp.part.part_type == ChatMessagePartType::Text {
//!                     text.push_str(&mp.part.text);
//!                 }
//!             }
//!         }
//!         // A newer server's event type is kept, not an error.
//!         other => assert!(other.is_unknown()),
//!     }
//! }
//! assert_eq!(text, "Hel");
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Example: building a request
//!
//! ```
//! use codersdk::{ChatInputPart, CreateChatRequest, DynamicTool, RawJson};
//!
//! let request = CreateChatRequest {
//!     content: vec![ChatInputPart::text("Deploy the billing service to staging")],
//!     unsafe_dynamic_tools: vec![DynamicTool {
//!         name: "deploy".into(),
//!         description: "Deploy a service".into(),
//!         input_schema: RawJson::from_json(r#"{"type":"object","properties":{"env":{"type":"string"}}}"#)?,
//!     }],
//!     ..Default::default()
//! };
//! let json = serde_json::to_string(&request).map_err(|e| e.to_string())?;
//! assert!(json.starts_with(r#"{"content":[{"type":"text","text":"Deploy"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Client: a bot in a few lines (feature `client`)
//!
//! With the `client` feature, `client::Client` speaks the whole chats API over HTTP and
//! WebSockets with these types. A bot that offers the model a tool it runs itself (a
//! *dynamic* tool), answers the model's calls when the chat stops in `requires_action`, and
//! prints the reply:
//!
#![cfg_attr(feature = "client", doc = "```no_run")]
#![cfg_attr(not(feature = "client"), doc = "```ignore")]
//! use codersdk::client::Client;
//! use codersdk::{
//!     ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatStatus, ChatStreamEventType,
//!     CreateChatRequest, DynamicTool, RawJson, SubmitToolResultsRequest, ToolResult,
//! };
//! use futures_util::StreamExt;
//!
//! # async fn bot() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:3000", std::env::var("CHATD_TOKEN")?)?;
//! let chat = client
//!     .create_chat(&CreateChatRequest {
//!         content: vec![ChatInputPart::text("Where is order 42? Use lookup_order.")],
//!         unsafe_dynamic_tools: vec![DynamicTool {
//!             name: "lookup_order".into(),
//!             description: "Looks up an order by its number.".into(),
//!             input_schema: RawJson::from_json(
//!                 r#"{"type":"object","properties":{"number":{"type":"integer"}}}"#,
//!             )?,
//!         }],
//!         ..Default::default()
//!     })
//!     .await?;
//!
//! // The stream starts with a snapshot (status, messages so far), then follows live.
//! let mut events = client.stream(chat.id, None).await?;
//! let mut reply = String::new();
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     match event.event_type {
//!         // The model called our tool: run it here and answer every pending call.
//!         ChatStreamEventType::ActionRequired => {
//!             let calls = event.action_required.map(|a| a.tool_calls).unwrap_or_default();
//!             let results = calls
//!                 .into_iter()
//!                 .map(|call| ToolResult {
//!                     tool_call_id: call.tool_call_id,
//!                     output: RawJson::from_json(r#"{"order":42,"status":"shipped"}"#).ok(),
//!                     is_error: false,
//!                 })
//!                 .collect();
//!             client
//!                 .submit_tool_results(chat.id, &SubmitToolResultsRequest { results })
//!                 .await?;
//!         }
//!         // The reply streams in as text deltas.
//!         ChatStreamEventType::MessagePart => {
//!             if let Some(mp) = event.message_part {
//!                 let assistant = mp.role == Some(ChatMessageRole::Assistant);
//!                 if assistant && mp.part.part_type == ChatMessagePartType::Text {
//!                     reply.push_str(&mp.part.text);
//!                 }
//!             }
//!         }
//!         // `waiting`: the turn is over. `error`: it failed (the chat's `last_error` says why).
//!         ChatStreamEventType::Status => match event.status.map(|s| s.status) {
//!             Some(ChatStatus::Waiting) => break,
//!             Some(ChatStatus::Error) => return Err("the turn failed".into()),
//!             _ => {}
//!         },
//!         _ => {}
//!     }
//! }
//! println!("{reply}");
//! # Ok(())
//! # }
//! ```
//!
//! Errors carry the HTTP status and the server's [`Response`] body
//! (`client::Error::status`, `client::Error::response`, `client::Error::is_not_found`
//! and the other predicates). See docs/client.md.
//!
//! # Feature flags
//!
//! - `client` (off by default): the typed HTTP/WebSocket client `client::Client`, on
//!   `reqwest` and `tokio-tungstenite` (rustls). Without it the crate does no I/O and
//!   pulls in no network or async runtime dependency.
//!
//! # Wire conventions
//!
//! - Timestamps are [`Timestamp`]s, written like Go's `RFC3339Nano` (UTC, `Z`, trailing zeros
//!   of the fraction removed).
//! - Arbitrary JSON (tool arguments and results, schemas) is [`RawJson`]: kept verbatim,
//!   compacted, nesting bounded by [`MAX_RAW_JSON_DEPTH`].
//! - Prices are exact [`Decimal`]s, read from numbers or strings without `f64`
//!   and written as decimal strings. Types holding prices must be read with `serde_json`
//!   (they rely on its raw-value support), not through `#[serde(flatten)]`.
//! - Secrets are [`SecretString`]s, which never print themselves.

mod aibridge;
mod chat;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod content;
mod cost;
mod decimal;
mod error;
mod group;
mod macros;
mod mcp;
mod message;
mod model;
mod provider;
mod raw;
mod request;
mod search;
mod secret;
mod serde_util;
mod stream;
mod time;
mod user;
mod validation;
pub use aibridge::*;
pub use chat::*;
pub use config::*;
pub use content::*;
pub use cost::*;
pub use decimal::{
    format_decimal, parse_decimal, DecimalError, MAX_DECIMAL_DIGITS, MAX_DECIMAL_TEXT_LEN,
};
pub use error::*;
pub use group::*;
pub use mcp::*;
pub use message::*;
pub use model::*;
pub use provider::*;
pub use raw::*;
pub use request::*;
pub use rust_decimal::Decimal;
pub use search::*;
pub use secret::*;
pub use stream::*;
pub use time::*;
pub use user::*;
pub use uuid::Uuid;
pub use validation::*;
