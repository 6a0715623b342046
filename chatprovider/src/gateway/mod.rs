//! The forwarding half of the AI Gateway: an SSRF-safe HTTP client, which headers cross,
//! what a request says about itself, and an observer that decodes a copy of the response
//! with the chat engine's own decoders while the original bytes pass through untouched.
//!
//! The gateway (routes and authentication in the reference server, records in
//! `chatd-core`) forwards a client's request to a provider instance byte for byte; this
//! module knows providers' wire formats but nothing of users, tokens or storage.

mod address;
mod bedrock;
mod headers;
mod observe;
mod request;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chaterror::ProviderError;
use futures_util::Stream;

pub use address::{
    check_literal_host, is_private_or_reserved, AddressPolicy, AllowListError, GuardedResolver,
    RefusedAddress, MAX_ALLOWED_PRIVATE_CIDRS, MAX_RESOLVED_ADDRESSES,
};
pub use bedrock::{
    anthropic_error_body, anthropic_error_type, bedrock_invocation, bedrock_model_path,
    event_stream_to_sse, validate_bedrock_model_id, validate_bedrock_region, BedrockInvocation,
    BedrockSettings, EventStreamToSse, BEDROCK_BETAS, MAX_BEDROCK_MODEL_ID_BYTES,
    MAX_BEDROCK_REGION_BYTES,
};
pub use headers::{
    bearer_token, client_response_headers, forwards_request_header, forwards_response_header,
    header_text, upstream_request_headers, CODER_HEADER_PREFIX, CREDENTIAL_HEADERS,
    GOVERNANCE_REQUEST_ID_HEADER, GOVERNANCE_TOKEN_ALT_HEADER, GOVERNANCE_TOKEN_HEADER, HOP_BY_HOP,
};
pub use observe::{
    Observation, ObservedError, ObservedToolCall, Observer, MAX_OBSERVED_JSON_BYTES,
    MAX_OBSERVED_TOOL_CALLS, MAX_THOUGHT_BYTES,
};
pub use request::{
    inspect_request, session_from_claude_user_id, BadRequest, RequestFacts, MAX_PROMPT_BYTES,
    MAX_SESSION_ID_BYTES, MAX_TOOL_RESULT_IDS, SESSION_HEADERS,
};

use crate::catalog::Provider;

/// A provider API the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireApi {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// Anthropic `POST /v1/messages`.
    Messages,
}

impl WireApi {
    /// The name stored and shown: `chat_completions`, `responses` or `messages`.
    pub fn as_str(self) -> &'static str {
        match self {
            WireApi::ChatCompletions => "chat_completions",
            WireApi::Responses => "responses",
            WireApi::Messages => "messages",
        }
    }

    /// The provider family whose wire format this is.
    pub fn provider(self) -> Provider {
        match self {
            WireApi::ChatCompletions | WireApi::Responses => Provider::OpenAi,
            WireApi::Messages => Provider::Anthropic,
        }
    }

    /// The path below the instance's base URL: OpenAI base URLs end in `/v1` (as the
    /// provider configs keep them), Anthropic's do not.
    pub fn upstream_path(self) -> &'static str {
        match self {
            WireApi::ChatCompletions => "/chat/completions",
            WireApi::Responses => "/responses",
            WireApi::Messages => "/v1/messages",
        }
    }
}

/// The path of the model listing below an instance's base URL of provider family
/// `provider`.
pub fn models_path(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "/v1/models",
        _ => "/models",
    }
}

/// Default time to establish a connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time an upstream may take to answer with its status and headers. A stream's
/// body may then take as long as it takes (an agent's long generation is not a failure);
/// the client's disconnect ends it.
pub const DEFAULT_RESPONSE_HEADERS_TIMEOUT: Duration = Duration::from_secs(300);

/// Idle connections kept per upstream host for reuse.
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 256;

/// Settings of the gateway's HTTP client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewaySettings {
    /// Private and reserved ranges allowed as upstreams.
    pub policy: AddressPolicy,
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// [`DEFAULT_RESPONSE_HEADERS_TIMEOUT`].
    pub response_headers_timeout: Duration,
    /// [`DEFAULT_MAX_IDLE_PER_HOST`].
    pub max_idle_per_host: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            policy: AddressPolicy::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_headers_timeout: DEFAULT_RESPONSE_HEADERS_TIMEOUT,
            max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
        }
    }
}

impl GatewaySettings {
    /// Settings allowing `policy`'s ranges, other values default.
    pub fn with_policy(policy: AddressPolicy) -> Self {
        GatewaySettings {
            policy,
            ..GatewaySettings::default()
        }
    }
}

/// Why a request could not be forwarded.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardError {
    /// The upstream's address is private or reserved and not allow-listed.
    Refused(RefusedAddress),
    /// The upstream could not be reached or did not answer in time; classified like a
    /// provider client's transport failure.
    Transport(ProviderError),
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::Refused(r) => r.fmt(f),
            ForwardError::Transport(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ForwardError {}

/// The gateway's HTTP client: connects only to addresses its [`AddressPolicy`] permits
/// (names checked by its resolver at connect time, IP literals before sending), never
/// through an environment proxy (which would connect on its behalf, unchecked), and never
/// follows a redirect (the client gets it as the upstream sent it). Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    response_headers_timeout: Duration,
}

impl GatewayClient {
    /// A client with these settings.
    pub fn new(settings: GatewaySettings) -> Result<Self, ProviderError> {
        let policy = Arc::new(settings.policy);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(Arc::clone(&policy)))
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                ProviderError::new(format!("the gateway's HTTP client cannot be built: {e}"))
                    .with_source(e)
            })?;
        Ok(GatewayClient {
            http,
            policy,
            response_headers_timeout: settings.response_headers_timeout,
        })
    }

    /// The address policy.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Sends one request and waits for the upstream's status and headers; the body is
    /// then read by the caller ([`ObservedBody`]). Any status is a response: error
    /// statuses are forwarded as the upstream sent them.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        headers: reqwest::header::HeaderMap,
        body: Bytes,
        provider: Provider,
    ) -> Result<reqwest::Response, ForwardError> {
        check_literal_host(&url, &self.policy).map_err(ForwardError::Refused)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut request = self.http.request(method, url).headers(headers);
        if !body.is_empty() {
            request = request.body(body);
        }
        match tokio::time::timeout(self.response_headers_timeout, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                if refused_in_chain(&e) {
                    return Err(ForwardError::Refused(RefusedAddress::new(host)));
                }
                Err(ForwardError::Transport(crate::transport::transport_error(
                    provider.as_str(),
                    "send request",
                    e,
                )))
            }
            Err(_) => Err(ForwardError::Transport(
                ProviderError::new(format!(
                    "{} did not answer within {}s",
                    provider.as_str(),
                    self.response_headers_timeout.as_secs()
                ))
                .with_provider(provider.as_str())
                .with_connect_failure(true),
            )),
        }
    }
}

/// Whether a [`RefusedAddress`] from the resolver is in `err`'s source chain.
fn refused_in_chain(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut node: Option<&(dyn std::error::Error + 'static)> = Some(err);
    // Bounded like every chain walk: reqwest → hyper-util → resolver is a few levels.
    for _ in 0..16 {
        let Some(current) = node else { return false };
        if current.is::<RefusedAddress>() {
            return true;
        }
        node = current.source();
    }
    false
}

/// How a forwarded body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyEnd {
    /// The upstream's body ended normally and every byte was handed on.
    Complete,
    /// Reading the upstream's body failed.
    UpstreamFailed,
    /// The body was dropped before its end: the client went away.
    ClientGone,
}

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The upstream's body, chunk by chunk as it arrives, each chunk shown to an [`Observer`]
/// on the way; at the end — or when the body is dropped early because the client went
/// away — `on_end` gets the observation, exactly once. Nothing is buffered: a chunk is
/// yielded as soon as the upstream delivers it.
pub struct ObservedBody {
    upstream: Upstream,
    /// The upstream's `Content-Length`: once that many bytes passed, the body is complete
    /// even if the server drops it without polling for its end (hyper does, having
    /// written the length it announced).
    expected_len: Option<u64>,
    passed_len: u64,
    observer: Option<Observer>,
    on_end: Option<Box<dyn FnOnce(Observation, BodyEnd) + Send>>,
}

impl std::fmt::Debug for ObservedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody")
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

impl ObservedBody {
    /// Observes `response`'s body with `observer`; `on_end` gets the result.
    pub fn new(
        response: reqwest::Response,
        observer: Observer,
        on_end: impl FnOnce(Observation, BodyEnd) + Send + 'static,
    ) -> Self {
        let expected_len = response.content_length();
        Self::from_stream(response.bytes_stream(), expected_len, observer, on_end)
    }

    /// Observes a body the gateway made from the upstream's (Bedrock's event stream turned
    /// into server-sent events, an error rewritten in the client's shape) that is
    /// `expected_len` bytes long when known.
    pub fn from_stream(
        body: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
        expected_len: Option<u64>,
        observer: Observer,
        on_end: impl FnOnce(Observation, BodyEnd) + Send + 'static,
    ) -> Self {
        ObservedBody {
            expected_len,
            passed_len: 0,
            upstream: Box::pin(body),
            observer: Some(observer),
            on_end: Some(Box::new(on_end)),
        }
    }

    fn end(&mut self, how: BodyEnd) {
        if let (Some(observer), Some(on_end)) = (self.observer.take(), self.on_end.take()) {
            on_end(observer.finish(how == BodyEnd::Complete), how);
        }
    }
}

impl Stream for ObservedBody {
    type Item = Result<Bytes, reqwest::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(observer) = self.observer.as_mut() {
                    observer.observe(&chunk);
                }
                self.passed_len = self
                    .passed_len
                    .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
                if self.expected_len == Some(self.passed_len) {
                    self.end(BodyEnd::Complete);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(BodyEnd::UpstreamFailed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.end(BodyEnd::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.end(BodyEnd::ClientGone);
    }
}
