//! chatprovider's integration tests, one module per area, in one test binary: one link
//! instead of one per file, and one place that names them all. docs/testing.md says how
//! the tests are organised and how to add one.

mod aimock;
mod anthropic;
mod bedrock;
mod gemini;
mod openai_chat;
mod openai_responses;
mod proptests;
mod redaction;
mod secrets;
mod support;
mod support_smoke;
