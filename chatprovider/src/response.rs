//! What a model streams back: provider-neutral [`StreamPart`]s, and [`ModelResponse`], the
//! result of collecting a whole stream.

use std::fmt;

use codersdk::{ChatMessageUsage, RawJson};
use serde::{Serialize, Serializer};

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural end (or a stop sequence).
    Stop,
    /// The model wants tool results.
    ToolCalls,
    /// The output token limit was reached.
    Length,
    /// The provider's content filter stopped the output (including refusals).
    ContentFilter,
    /// Anything else; the provider's raw reason is kept.
    Other(String),
}

impl FinishReason {
    /// `stop`, `tool_calls`, `length`, `content_filter` or `other`.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(_) => "other",
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a model stream, in provider-neutral form.
///
/// Content blocks are identified by a `block` index that is stable within one response (the
/// provider's content-block or output index), so interleaved deltas can be reassembled.
///
/// Serializes (for logs and tools) as an object tagged by `type` in snake case, e.g.
/// `{"type":"text_delta","block":0,"delta":"Hi"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamPart {
    /// The provider's response id and model, as soon as known.
    ResponseMetadata {
        /// Response id (OpenAI `resp_…`/`chatcmpl-…`, Anthropic `msg_…`).
        id: Option<String>,
        /// The model that answered.
        model: Option<String>,
    },
    /// A text increment.
    TextDelta {
        /// Content block.
        block: u32,
        /// The increment.
        delta: String,
    },
    /// A reasoning increment (thinking text or a reasoning summary).
    ReasoningDelta {
        /// Content block.
        block: u32,
        /// The increment.
        delta: String,
    },
    /// A reasoning block finished; carries what must be replayed to continue it.
    ReasoningEnd {
        /// Content block.
        block: u32,
        /// Anthropic thinking signature.
        signature: Option<String>,
        /// Anthropic redacted thinking data.
        redacted_data: Option<String>,
        /// OpenAI reasoning item id.
        item_id: Option<String>,
        /// OpenAI encrypted reasoning content.
        encrypted_content: Option<String>,
    },
    /// A tool call started.
    ToolCallStart {
        /// Content block.
        block: u32,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A chunk of a tool call's argument JSON text.
    ToolCallDelta {
        /// Content block.
        block: u32,
        /// Call id.
        id: String,
        /// The chunk.
        delta: String,
    },
    /// A complete tool call.
    ToolCall(ToolCall),
    /// Gemini's thought signature for a tool call (sent just before that call's
    /// [`StreamPart::ToolCall`]): opaque data the API requires back with the call on the
    /// next request of the turn. Kept in the stored part's `provider_metadata`.
    ThoughtSignature {
        /// The call it belongs to.
        tool_call_id: String,
        /// The signature.
        signature: String,
    },
    /// A source the model cited (e.g. from provider web search).
    Source {
        /// Source id.
        id: String,
        /// URL.
        url: String,
        /// Title.
        title: Option<String>,
    },
    /// The result of a tool the provider executed itself.
    ProviderToolResult {
        /// The call answered.
        tool_call_id: String,
        /// Tool name.
        name: String,
        /// Result.
        result: RawJson,
        /// The tool failed.
        is_error: bool,
    },
    /// The end of the response: why it stopped and what it used. Always the last part of
    /// a successful stream.
    Finish {
        /// Why it stopped.
        reason: FinishReason,
        /// Token usage, normalized with `chatcost`'s rules.
        usage: ChatMessageUsage,
    },
}

/// A complete tool call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// Call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// The argument JSON text exactly as streamed (an empty stream becomes `{}`).
    pub arguments: String,
    /// Whether `arguments` is valid JSON. A call cut off by the output limit is reported
    /// with `false` rather than dropped, so the engine can tell the model.
    pub arguments_valid: bool,
    /// Executed by the provider itself.
    pub provider_executed: bool,
}

impl ToolCall {
    /// The arguments as [`RawJson`], when they are valid JSON.
    pub fn arguments_json(&self) -> Option<RawJson> {
        if self.arguments_valid {
            RawJson::from_json(&self.arguments).ok()
        } else {
            None
        }
    }
}

/// A whole response, collected from a stream ([`crate::LanguageModel::generate`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelResponse {
    /// All text, concatenated.
    pub text: String,
    /// All reasoning text, concatenated.
    pub reasoning: String,
    /// Reasoning blocks to replay, in order.
    pub reasoning_blocks: Vec<ReasoningBlock>,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Cited sources.
    pub sources: Vec<(String, Option<String>)>,
    /// Gemini thought signatures by tool call id, in order.
    pub thought_signatures: Vec<(String, String)>,
    /// Why it stopped (`None` only if the stream ended without a finish part).
    pub finish_reason: Option<FinishReason>,
    /// Usage.
    pub usage: ChatMessageUsage,
    /// Provider response id.
    pub response_id: Option<String>,
    /// The answering model.
    pub model: Option<String>,
}

/// A finished reasoning block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReasoningBlock {
    /// The reasoning text of the block.
    pub text: String,
    /// Anthropic signature.
    pub signature: Option<String>,
    /// Anthropic redacted data.
    pub redacted_data: Option<String>,
    /// OpenAI item id.
    pub item_id: Option<String>,
    /// OpenAI encrypted content.
    pub encrypted_content: Option<String>,
}

/// Folds stream parts into a [`ModelResponse`].
#[derive(Debug, Default)]
pub struct ResponseCollector {
    response: ModelResponse,
    open_reasoning: Option<u32>,
}

impl ResponseCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one stream part in.
    pub fn push(&mut self, part: &StreamPart) {
        let r = &mut self.response;
        match part {
            StreamPart::ResponseMetadata { id, model } => {
                if id.is_some() {
                    r.response_id.clone_from(id);
                }
                if model.is_some() {
                    r.model.clone_from(model);
                }
            }
            StreamPart::TextDelta { delta, .. } => r.text.push_str(delta),
            StreamPart::ReasoningDelta { block, delta } => {
                r.reasoning.push_str(delta);
                if let Some(b) = self.reasoning_block(*block) {
                    b.text.push_str(delta);
                }
            }
            StreamPart::ReasoningEnd {
                block,
                signature,
                redacted_data,
                item_id,
                encrypted_content,
            } => {
                if let Some(b) = self.reasoning_block(*block) {
                    b.signature.clone_from(signature);
                    b.redacted_data.clone_from(redacted_data);
                    b.item_id.clone_from(item_id);
                    b.encrypted_content.clone_from(encrypted_content);
                }
                self.open_reasoning = None;
            }
            StreamPart::ToolCallStart { .. }
            | StreamPart::ToolCallDelta { .. }
            | StreamPart::ProviderToolResult { .. } => {}
            StreamPart::ToolCall(call) => r.tool_calls.push(call.clone()),
            StreamPart::ThoughtSignature {
                tool_call_id,
                signature,
            } => r
                .thought_signatures
                .push((tool_call_id.clone(), signature.clone())),
            StreamPart::Source { url, title, .. } => r.sources.push((url.clone(), title.clone())),
            StreamPart::Finish { reason, usage } => {
                r.finish_reason = Some(reason.clone());
                r.usage = *usage;
            }
        }
    }

    /// The collected response.
    pub fn finish(self) -> ModelResponse {
        self.response
    }

    /// The reasoning block `block` that is being streamed, opening a new one when needed
    /// (a signature-only block, such as redacted thinking, has no deltas before its end).
    fn reasoning_block(&mut self, block: u32) -> Option<&mut ReasoningBlock> {
        let blocks = &mut self.response.reasoning_blocks;
        if self.open_reasoning != Some(block) || blocks.is_empty() {
            blocks.push(ReasoningBlock::default());
            self.open_reasoning = Some(block);
        }
        blocks.last_mut()
    }
}
