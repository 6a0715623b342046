//! The LLM provider layer of chatd: the provider catalog, the API-key policy, model
//! resolution, per-provider model options, and streaming clients behind one
//! [`LanguageModel`] trait.
//!
//! Administrators decide per provider whether the deployment's key is used, whether users
//! must bring their own key, and whether the deployment key is a fallback; AWS Bedrock can
//! also run on the server's ambient AWS credentials. This crate turns those settings, the
//! deployment's keys and one user's keys into the credentials that user's chats run with
//! ([`resolve_user_provider_keys`]), with the availability and the reason shown in the
//! model picker, and without ever printing a key. It also resolves model references
//! (`openai:gpt-4o`, `claude-sonnet-4`, …), builds the normalized options of a model call
//! from a model config, applies reasoning-effort rules, enforces the inline image cap, and
//! reports missing keys and configuration problems as errors that [`chaterror::classify`]
//! already knows how to classify. The rules are Coder's (part E);
//! `docs/providers.md` explains them for administrators.
//!
//! The streaming clients — OpenAI Responses, OpenAI Chat Completions (also for
//! OpenAI-compatible servers, OpenRouter and Vercel), Anthropic Messages, and Anthropic
//! Messages on AWS Bedrock (bearer token or SigV4 with ambient AWS credentials) — turn a
//! provider-neutral [`ModelRequest`] into the provider's wire format and its server-sent
//! events back into provider-neutral [`StreamPart`]s; failures are
//! [`chaterror::ProviderError`]s that [`chaterror::classify`] understands. [`language_model`]
//! picks the client for a provider.
//!
//! - Catalog: [`Provider`] (codersdk's `ProviderId`), [`ProviderCatalog`],
//!   [`normalize_provider`], [`azure_base_url`].
//! - Keys ([`ProviderApiKeys`], [`ProviderCredentials`], [`key_hint`]) and the policy
//!   ([`resolve_user_provider_keys`], [`ResolvedProviderKeys`], [`CredentialSource`]).
//! - Admin-side validation: [`validate_create_provider_request`],
//!   [`validate_update_provider_request`], [`validate_user_provider_key_request`].
//! - Models: [`resolve_model_with_provider_hint`], [`list_configured_models`].
//! - Options: [`call_options`], [`provider_request_options`],
//!   [`merge_missing_provider_options`]; reasoning: [`reasoning_effort_from_chat`],
//!   [`resolve_reasoning_effort`].
//! - Images: [`inline_image_byte_cap`], [`check_inline_images`].
//! - Streaming: [`LanguageModel`], [`language_model`], [`ModelRequest`], [`StreamPart`],
//!   [`ModelResponse`], the clients [`OpenAiResponsesModel`], [`OpenAiChatModel`],
//!   [`AnthropicModel`], [`BedrockModel`] (with [`AwsEnvironment`], [`sigv4_headers`],
//!   [`BedrockFramer`]), conversions [`message_from_parts`] / [`response_to_parts`].
//!
//! # Example: streaming a turn from OpenAI with a tool
//!
//! ```no_run
//! use chatprovider::{
//!     language_model, ClientSettings, Message, ModelRequest, Provider, ProviderApiKeys,
//!     StreamPart, ToolDefinition,
//! };
//! use codersdk::RawJson;
//! use futures_util::StreamExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ProviderApiKeys::new().with_api_key(Provider::OpenAi, std::env::var("OPENAI_API_KEY")?)?;
//! let model = language_model(&keys.client_credentials("openai")?, "gpt-5", None, ClientSettings::default())?;
//!
//! let request = ModelRequest {
//!     system: vec!["You are a weather assistant.".into()],
//!     messages: vec![Message::user_text("What is the weather in Paris?")],
//!     tools: vec![ToolDefinition {
//!         name: "get_weather".into(),
//!         description: "Current weather for a city".into(),
//!         input_schema: RawJson::from_json(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#)?,
//!     }],
//!     ..Default::default()
//! };
//! let mut stream = model.stream(request);
//! while let Some(part) = stream.next().await {
//!     match part {
//!         Ok(StreamPart::TextDelta { delta, .. }) => print!("{delta}"),
//!         Ok(StreamPart::ToolCall(call)) => println!("call {}({})", call.name, call.arguments),
//!         Ok(StreamPart::Finish { reason, usage }) => println!("\n{reason}, {usage:?}"),
//!         Ok(_) => {}
//!         Err(err) => {
//!             // Kind, user-facing message and Retry-After in one call.
//!             let classified = chaterror::classify(&err);
//!             eprintln!("{}: {}", classified.retry_message(), classified.is_retryable());
//!             break;
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Example: who pays
//!
//! ```
//! use chatprovider::{
//!     resolve_user_provider_keys, ConfiguredProvider, Provider, ProviderApiKeys,
//!     UserProviderKey,
//! };
//! use uuid::Uuid;
//!
//! // The deployment's own key (e.g. from OPENAI_API_KEY).
//! let deployment = ProviderApiKeys::new().with_api_key(Provider::OpenAi, "sk-deploy-0123456789abcdef")?;
//!
//! // OpenAI: users may bring a key, the deployment key is the fallback.
//! // Anthropic: users must bring their own key.
//! let openai_id = Uuid::new_v4();
//! let anthropic_id = Uuid::new_v4();
//! let providers = [
//!     ConfiguredProvider {
//!         id: openai_id,
//!         provider: "openai".into(),
//!         allow_user_api_key: true,
//!         allow_central_api_key_fallback: true,
//!         ..Default::default()
//!     },
//!     ConfiguredProvider {
//!         id: anthropic_id,
//!         provider: "anthropic".into(),
//!         central_api_key_enabled: false,
//!         allow_user_api_key: true,
//!         ..Default::default()
//!     },
//! ];
//! let user_keys: [UserProviderKey; 0] = [];
//!
//! let keys = resolve_user_provider_keys(&deployment, &providers, &user_keys);
//! assert!(keys.is_available("openai"));
//! assert_eq!(keys.credential("openai").map(|c| c.as_str()), Some("central"));
//! assert!(!keys.is_available("anthropic"));
//! assert_eq!(keys.unavailable_reason("anthropic"), Some("user_api_key_required"));
//!
//! // What a provider client connects with.
//! let creds = keys.client_credentials("openai")?;
//! assert_eq!(creds.api_key(), Some("sk-deploy-0123456789abcdef"));
//! let err = keys.client_credentials("anthropic").unwrap_err();
//! assert_eq!(err.to_string(), "ANTHROPIC_API_KEY is not set");
//!
//! // Safe to log: no key, only a masked hint.
//! let audit = serde_json::to_string(&keys)?;
//! assert!(!audit.contains("sk-deploy-0123456789abcdef"));
//! assert!(audit.contains(r#""key_hint":"sk-…cdef""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None.

mod admin;
mod anthropic;
mod bedrock;
mod catalog;
mod convert;
mod error;
mod factory;
pub mod gateway;
mod gemini;
mod image;
mod keys;
mod language_model;
mod openai_chat;
mod openai_responses;
mod options;
mod policy;
mod reasoning;
mod request;
mod resolve;
mod response;
pub mod sse;
mod transport;

pub use admin::{
    validate_create_provider_request, validate_update_provider_request,
    validate_user_provider_key_request,
};
pub use anthropic::*;
/// AWS credentials for [`AwsEnvironment::fixed`] (from `aws-credential-types`).
pub use aws_credential_types::Credentials as AwsCredentials;
pub use bedrock::*;
pub use catalog::{
    azure_base_url, is_env_preset_provider, normalize_provider,
    provider_allows_ambient_credentials, provider_display_name, supported_providers, Provider,
    ProviderCatalog, AZURE_DEFAULT_API_VERSION, SUPPORTED_PROVIDERS,
};
pub use convert::{
    message_from_parts, request_role, response_to_parts, AnthropicReplay, GoogleReplay,
    OpenAiReplay, ReplayMetadata,
};
pub use error::{Error, ErrorKind, MAX_ECHOED_INPUT_BYTES};
pub use factory::{language_model, streams, OpenAiApi};
pub use gemini::*;
pub use image::{
    check_inline_image, check_inline_images, client_image_byte_budget, inline_image_byte_cap,
    InlineAttachment, ANTHROPIC_INLINE_IMAGE_CAP_BYTES, CLIENT_IMAGE_BUDGET_HEADROOM_BYTES,
};
pub use keys::{
    key_hint, merge_provider_api_keys, prune_disabled_provider_keys, ProviderApiKeys,
    ProviderCredentials, KEY_HINT_MAX_SHOWN_DENOMINATOR, KEY_HINT_PREFIX_CHARS,
    KEY_HINT_SUFFIX_CHARS, MAX_API_KEY_BYTES,
};
pub use language_model::{decode_body, redact_errors, LanguageModel, ModelStream, StreamDecoder};
pub use openai_chat::*;
pub use openai_responses::*;
pub use options::{
    apply_reasoning_effort, call_options, is_openai_responses_model,
    merge_missing_provider_options, provider_request_options, uses_openai_responses_api,
    AnthropicRequestOptions, AnthropicWebSearchOptions, CallOptions, GoogleRequestOptions,
    GoogleSafetySetting, GoogleThinkingOptions, OpenAiChatOptions, OpenAiCompatRequestOptions,
    OpenAiLogprobs, OpenAiRequestOptions, OpenAiResponsesOptions, OpenAiWebSearchOptions,
    OpenRouterRequestOptions, ProviderRequestOptions, ReasoningRequestOptions,
    VercelRequestOptions, OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT, OPENAI_RESPONSES_INCLUDES,
};
pub use policy::{
    resolve_user_provider_keys, unavailable_reason, ConfiguredProvider, CredentialSource,
    ProviderStatus, ResolvedProviderKeys, UnavailableReason, UserProviderKey,
};
pub use reasoning::{
    allowed_reasoning_efforts, effective_reasoning_effort, openai_search_context_size,
    openai_service_tier, openai_text_verbosity, reasoning_effort_from_chat,
    requested_reasoning_effort, resolve_reasoning_effort, ReasoningEffort,
};
pub use request::{
    CallSettings, CorrelationHeaders, Message, ModelRequest, Part, Role, ToolChoice, ToolDefinition,
};
pub use resolve::{
    canonical_model_id, is_openai_reasoning_model, list_configured_models,
    list_provider_availability, resolve_model_with_provider_hint, ConfiguredModel,
};
pub use response::{
    FinishReason, ModelResponse, ReasoningBlock, ResponseCollector, StreamPart, ToolCall,
};
pub use transport::{
    default_http_client, default_user_agent, ClientSettings, DEFAULT_STARTUP_TIMEOUT,
    MAX_ERROR_BODY_BYTES, MAX_REDIRECTS, MAX_TRANSPORT_ERROR_CAUSES,
};
