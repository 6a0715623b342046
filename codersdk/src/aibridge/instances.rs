//! AI Gateway provider instances as the admin API shows and takes them
//! (`/api/v2/aibridge/providers`). The key is write-only: never in a response.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::SecretString;

/// A provider instance: a named upstream the gateway forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeProviderInstance {
    /// The name clients use in the path (`/api/v2/aibridge/{name}/v1/…`).
    pub name: String,
    /// The wire API it speaks: `openai`, `anthropic`, or `bedrock` (Anthropic's Messages
    /// API answered by Claude on AWS Bedrock).
    #[serde(rename = "type")]
    #[ts(rename = "type")]
    pub provider_type: String,
    /// The upstream base URL (OpenAI's ends in `/v1`, Anthropic's does not).
    pub base_url: String,
    /// Whether a central key is set (the key itself is never returned).
    pub has_api_key: bool,
    /// Where it is configured: `default` (the chat providers' configuration), `environment`
    /// (`CHATD_AIBRIDGE_PROVIDER_<N>_*`) or `database` (this API).
    pub source: String,
    /// Whether this API may change or delete it (only `database` instances).
    pub read_only: bool,
    /// A `bedrock` instance's AWS region (its endpoint's and the one requests are signed
    /// for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bedrock_region: Option<String>,
    /// A `bedrock` instance's model (id, inference-profile id or ARN) every request is sent
    /// to; absent: the client's `model` is the Bedrock model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bedrock_model: Option<String>,
    /// A `bedrock` instance's model for requests naming a "haiku" model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bedrock_small_fast_model: Option<String>,
}

/// Body of `POST /api/v2/aibridge/providers` (admin).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct CreateAIBridgeProviderInstanceRequest {
    /// Name: lowercase letters, digits, `-` and `_`, 1 to 64 characters, unique among all
    /// instances.
    pub name: String,
    /// `openai`, `anthropic` or `bedrock`.
    #[serde(rename = "type")]
    #[ts(rename = "type")]
    pub provider_type: String,
    /// Base URL (absolute http/https, no query); the type's public endpoint when absent
    /// (a `bedrock` instance's region's: one of the two is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Central key (write-only); without one the instance serves only requests that bring
    /// their own key — except a `bedrock` instance, whose central requests are then signed
    /// with the server's AWS credentials. A `bedrock` instance's key is a Bedrock API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// `bedrock` only: the AWS region (lowercase letters, digits, `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_region: Option<String>,
    /// `bedrock` only: the model every request is sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_model: Option<String>,
    /// `bedrock` only: the model "haiku" requests are sent to (needs `bedrock_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_small_fast_model: Option<String>,
}

/// Body of `PATCH /api/v2/aibridge/providers/{instance}` (admin): absent = unchanged,
/// `api_key: ""` removes the key, and an empty Bedrock setting removes that setting.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct UpdateAIBridgeProviderInstanceRequest {
    /// New base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// New central key; empty removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// `bedrock` only: new region; empty removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_region: Option<String>,
    /// `bedrock` only: new model; empty removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_model: Option<String>,
    /// `bedrock` only: new small, fast model; empty removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_small_fast_model: Option<String>,
}
