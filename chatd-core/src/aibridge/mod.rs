//! The AI Gateway's records: what one proxied LLM call was, and where the proxy hands it.
//!
//! The gateway (routes under `/api/v2/aibridge/{provider}/v1/…` on the reference server)
//! forwards an external agent's request to a provider instance byte for byte and observes
//! the response on the side. What it observed becomes one [`InterceptionRecord`], handed
//! to an [`InterceptionSink`] off the request path: the sink must never block the stream
//! (a bounded queue that counts what it drops, not one that waits).
//!
//! The proxy does not know how records are stored, costed or logged; the sink does not
//! know HTTP. This module is the seam between the two, and holds the sink the server
//! uses: [`Recorder`] (a bounded queue, a batching writer, exact cost, thread links and
//! sessions, structured logs; docs/ai-gateway-records.md).

mod instances;
mod interception;
mod logs;
mod recorder;

/// A `bedrock` instance's region and model mapping (from `chatprovider`, which applies it).
pub use chatprovider::gateway::BedrockSettings;
/// The provider API a call used (the one enum of the gateway, from `chatprovider`).
pub use chatprovider::gateway::WireApi;
pub use instances::{
    bedrock_settings, instances_from_env, normalize_base_url, validate_instance_name,
    InstanceConfigError, InstanceSource, InstanceType, ProviderInstance,
    DEFAULT_ANTHROPIC_INSTANCE, DEFAULT_OPENAI_INSTANCE, ENV_PREFIX, MAX_BASE_URL_BYTES,
    MAX_ENV_INSTANCES, MAX_INSTANCE_NAME_BYTES, RESERVED_INSTANCE_NAMES,
};
pub use interception::{
    CredentialKind, InterceptionRecord, InterceptionSink, InterceptionStart, ToolUsage,
};
pub use logs::{
    LOG_MESSAGE, LOG_TARGET, RECORD_INTERCEPTION_END, RECORD_INTERCEPTION_START,
    RECORD_MODEL_THOUGHT, RECORD_PROMPT_USAGE, RECORD_TOKEN_USAGE, RECORD_TOOL_USAGE,
};
pub use recorder::{
    interception_cost_micros, Recorder, RecorderSettings, RecorderStats, DEFAULT_DROP_LOG_INTERVAL,
    DEFAULT_MAX_PROMPT_BYTES, DEFAULT_MAX_THOUGHTS_LOGGED, DEFAULT_MAX_THOUGHT_BYTES,
    DEFAULT_RECORDER_BATCH_SIZE, DEFAULT_RECORDER_QUEUE_CAPACITY, MAX_RECORDED_ERROR_BYTES,
    MAX_RECORDED_FIELD_BYTES,
};
