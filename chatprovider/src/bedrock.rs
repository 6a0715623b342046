//! Claude on AWS Bedrock: [`BedrockModel`], the Anthropic Messages API on Bedrock's runtime
//! (`InvokeModelWithResponseStream`), as Coder's Anthropic client does it in Bedrock mode.
//!
//! - **Request**: `POST {base}/model/{url-encoded model id}/invoke-with-response-stream`,
//!   with the body [`AnthropicModel`](crate::AnthropicModel) builds minus `model` and
//!   `stream`, plus `anthropic_version: "bedrock-2023-05-31"` and the beta flags as
//!   `anthropic_beta`. No `x-api-key` or `anthropic-version` header is ever sent (they would
//!   break the signature). Thinking, tools, prompt caching and effort carry over unchanged.
//! - **Credentials** ([`BedrockAuth`]): a stored key is a Bedrock API key sent as
//!   `Authorization: Bearer`; without one, ambient AWS credentials from the standard chain
//!   (environment, shared profile, web identity, ECS/EC2 roles) sign each request with
//!   SigV4 (service `bedrock`). The chain is loaded once per process, at the first turn
//!   that needs it ([`AwsEnvironment::process`]), never when listing models.
//! - **Region**: ambient mode takes it from the AWS chain (`AWS_REGION`, the profile, …)
//!   and fails with a `config` error without one; bearer mode reads `AWS_REGION` /
//!   `AWS_DEFAULT_REGION` and falls back to [`BEDROCK_DEFAULT_REGION`].
//! - **Body**: `application/vnd.amazon.eventstream` frames ([`BedrockFramer`]); each
//!   `chunk` event carries one base64 Anthropic stream event, decoded by the Anthropic
//!   decoder. Exception frames (`throttlingException`, `modelStreamErrorException`, …)
//!   become [`ProviderError`]s with the HTTP status Bedrock documents for them.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_types::event_stream::{HeaderValue, Message};
use base64::Engine as _;
use bytes::BytesMut;
use chaterror::{ClassifiedError, ProviderError};
use codersdk::{ChatErrorKind, SecretString};

use crate::anthropic::{request_body, AnthropicDecoder, Dialect};
use crate::catalog::Provider;
use crate::language_model::{LanguageModel, ModelStream, StreamDecoder};
use crate::request::ModelRequest;
use crate::response::StreamPart;
use crate::sse::SseEvent;
use crate::transport::{self, BodyFramer, ClientSettings, MAX_ERROR_BODY_BYTES};

/// The `anthropic_version` Bedrock requires in the body of Anthropic models.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The region of a bearer-token (API key) provider when the environment names none.
/// Ambient mode has no fallback: its region comes from the AWS chain.
pub const BEDROCK_DEFAULT_REGION: &str = "us-east-1";

/// The SigV4 signing name of the Bedrock runtime.
pub const BEDROCK_SIGNING_NAME: &str = "bedrock";

/// The `Accept` value of a streaming invocation.
pub const BEDROCK_EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Largest event-stream frame accepted (the framing's own maximum message size is
/// 16 MiB); a larger announced length fails the stream instead of growing a buffer.
pub const BEDROCK_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Smallest valid frame: a 12-byte prelude and a 4-byte message CRC.
const MIN_FRAME_BYTES: usize = 16;

const PROVIDER: &str = "bedrock";

/// The default endpoint of `region`.
pub fn bedrock_default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The path of a streaming invocation of `model` (the model id or inference-profile ARN,
/// URL-encoded as one path segment, so an ARN's `:` and `/` become `%3A` and `%2F`).
pub fn bedrock_invoke_path(model: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(model.as_bytes()).collect();
    format!("/model/{encoded}/invoke-with-response-stream")
}

/// The region a bearer-token provider uses: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then
/// [`BEDROCK_DEFAULT_REGION`]. Reads the environment only (no profile, no IMDS).
pub fn bearer_region_from_env() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| BEDROCK_DEFAULT_REGION.to_owned())
}

/// Where ambient AWS credentials and the region come from.
///
/// [`AwsEnvironment::process`] is the standard AWS chain (`aws-config`), loaded once per
/// process on first use and shared by every model; [`AwsEnvironment::chain`] is a private
/// one (tests that change the environment); [`AwsEnvironment::fixed`] uses given
/// credentials and region. Nothing is resolved until a request is signed.
#[derive(Clone)]
pub struct AwsEnvironment {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Chain(Arc<tokio::sync::OnceCell<AwsSigningConfig>>),
    Fixed(AwsSigningConfig),
}

#[derive(Clone)]
struct AwsSigningConfig {
    region: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
}

impl fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.source {
            Source::Chain(cell) if cell.initialized() => "aws chain (loaded)",
            Source::Chain(_) => "aws chain (not loaded)",
            Source::Fixed(_) => "fixed",
        };
        f.debug_struct("AwsEnvironment")
            .field("source", &kind)
            .finish()
    }
}

impl AwsEnvironment {
    /// The process-wide standard AWS chain, loaded at the first signed request.
    pub fn process() -> Self {
        static PROCESS: OnceLock<AwsEnvironment> = OnceLock::new();
        PROCESS.get_or_init(AwsEnvironment::chain).clone()
    }

    /// A standard AWS chain of its own, loaded at its first signed request (reads the
    /// environment at that time).
    pub fn chain() -> Self {
        AwsEnvironment {
            source: Source::Chain(Arc::new(tokio::sync::OnceCell::new())),
        }
    }

    /// Fixed credentials and region (`None`: requests fail with a `config` error).
    pub fn fixed(credentials: Credentials, region: Option<&str>) -> Self {
        AwsEnvironment {
            source: Source::Fixed(AwsSigningConfig {
                region: region.map(str::to_owned),
                credentials: Some(SharedCredentialsProvider::new(credentials)),
            }),
        }
    }

    async fn config(&self) -> AwsSigningConfig {
        match &self.source {
            Source::Fixed(c) => c.clone(),
            Source::Chain(cell) => cell
                .get_or_init(|| async {
                    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .load()
                        .await;
                    AwsSigningConfig {
                        region: sdk.region().map(|r| r.as_ref().to_owned()),
                        credentials: sdk.credentials_provider(),
                    }
                })
                .await
                .clone(),
        }
    }

    /// The region and current credentials (cached and refreshed by the chain).
    pub async fn resolve(&self) -> Result<(String, Credentials), ProviderError> {
        let (region, credentials) = self.resolve_with_region(None).await?;
        Ok((region, credentials))
    }

    /// Like [`AwsEnvironment::resolve`], with `region` (when given) instead of the chain's:
    /// a configured region needs none in the AWS environment.
    pub async fn resolve_with_region(
        &self,
        region: Option<&str>,
    ) -> Result<(String, Credentials), ProviderError> {
        let config = self.config().await;
        let region = region
            .map(str::to_owned)
            .or(config.region)
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                config_error(
                    "no AWS region for Bedrock: set AWS_REGION (or a region in the AWS profile)",
                )
            })?;
        let provider = config
            .credentials
            .ok_or_else(|| config_error("no AWS credentials provider is configured for Bedrock"))?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            // "No credentials" and friends: the operator has to configure AWS.
            let classified = ClassifiedError::builder(ChatErrorKind::Auth)
                .provider(PROVIDER)
                .retryable(false)
                .build();
            let text = format!("load AWS credentials for bedrock: {}", error_text(&e));
            ProviderError::new(text.clone())
                .with_provider(PROVIDER)
                .with_source(chaterror::with_classification(text, classified))
        })?;
        Ok((region, credentials))
    }
}

fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut node = err.source();
    while let Some(e) = node {
        let piece = e.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        node = e.source();
    }
    text
}

fn config_error(message: &str) -> ProviderError {
    let classified = ClassifiedError::builder(ChatErrorKind::Config)
        .provider(PROVIDER)
        .retryable(false)
        .build();
    ProviderError::new(message)
        .with_provider(PROVIDER)
        .with_source(chaterror::with_classification(message, classified))
}

/// How a [`BedrockModel`] authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum BedrockAuth {
    /// A Bedrock API key, sent as `Authorization: Bearer`.
    Bearer(SecretString),
    /// AWS credentials and region from an [`AwsEnvironment`], signed with SigV4.
    Aws(AwsEnvironment),
}

impl fmt::Debug for BedrockAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BedrockAuth::Bearer(token) => f.debug_tuple("Bearer").field(token).finish(),
            BedrockAuth::Aws(env) => f.debug_tuple("Aws").field(env).finish(),
        }
    }
}

/// A Claude model on AWS Bedrock (see the module docs).
///
/// `Debug` never shows the token or AWS secrets; [`LanguageModel::redactor`] knows the
/// token, the endpoint's credentials and every AWS secret this model has signed with.
#[derive(Clone)]
pub struct BedrockModel {
    model: String,
    auth: BedrockAuth,
    /// The configured base URL override (trailing `/` removed).
    base_url: Option<String>,
    /// The bearer-mode region (ambient mode asks the chain per request).
    bearer_region: String,
    settings: ClientSettings,
    redactor: chaterror::Redactor,
    /// AWS secrets seen while signing, so [`LanguageModel::redactor`] covers them.
    seen_secrets: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for BedrockModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockModel")
            .field("model", &self.model)
            .field("auth", &self.auth)
            .field("base_url", &self.base_url.as_ref().map(|_| "[set]"))
            .field("settings", &self.settings)
            .finish()
    }
}

impl BedrockModel {
    /// A model `model` (a Bedrock model id such as `anthropic.claude-sonnet-4-5-…-v1:0`, or
    /// an inference-profile id or ARN) reached with `auth` at `base_url` (blank or `None`:
    /// `https://bedrock-runtime.{region}.amazonaws.com`). Bearer mode takes its region from
    /// [`bearer_region_from_env`].
    pub fn new(
        model: impl Into<String>,
        auth: BedrockAuth,
        base_url: Option<&str>,
        settings: ClientSettings,
    ) -> Self {
        Self::with_bearer_region(model, auth, base_url, bearer_region_from_env(), settings)
    }

    /// [`BedrockModel::new`] with the bearer-mode region given instead of read from the
    /// environment.
    pub fn with_bearer_region(
        model: impl Into<String>,
        auth: BedrockAuth,
        base_url: Option<&str>,
        bearer_region: impl Into<String>,
        settings: ClientSettings,
    ) -> Self {
        let base_url = base_url
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| b.trim_end_matches('/').to_owned());
        let token = match &auth {
            BedrockAuth::Bearer(t) => Some(t.expose().to_owned()),
            BedrockAuth::Aws(_) => None,
        };
        let redactor = transport::client_redactor(
            token.as_deref(),
            base_url
                .as_deref()
                .and_then(|b| url::Url::parse(b).ok())
                .as_ref(),
            &settings,
        );
        BedrockModel {
            model: model.into(),
            auth,
            base_url,
            bearer_region: bearer_region.into(),
            settings,
            redactor,
            seen_secrets: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The JSON body sent for `request`.
    pub fn request_json(&self, request: &ModelRequest) -> Result<String, ProviderError> {
        request_body(Dialect::Bedrock, request, PROVIDER)
    }

    /// The invocation URL in `region` (the base URL override wins over the region).
    pub fn invoke_url(&self, region: &str) -> String {
        let base = self
            .base_url
            .clone()
            .unwrap_or_else(|| bedrock_default_base_url(region));
        format!("{base}{}", bedrock_invoke_path(&self.model))
    }

    fn remember_secrets(&self, credentials: &Credentials) {
        if let Ok(mut seen) = self.seen_secrets.lock() {
            for secret in [
                Some(credentials.secret_access_key()),
                credentials.session_token(),
            ]
            .into_iter()
            .flatten()
            {
                if !seen.iter().any(|s| s == secret) {
                    seen.push(secret.to_owned());
                }
            }
        }
    }

    async fn build_http_request(
        &self,
        request: &ModelRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let body = self.request_json(request)?;
        let (url, auth_headers) = match &self.auth {
            BedrockAuth::Bearer(token) => {
                let mut value =
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                        .map_err(|_| invalid_token_error())?;
                value.set_sensitive(true);
                (
                    self.invoke_url(&self.bearer_region),
                    vec![(reqwest::header::AUTHORIZATION, value)],
                )
            }
            BedrockAuth::Aws(env) => {
                let (region, credentials) = env.resolve().await?;
                self.remember_secrets(&credentials);
                let url = self.invoke_url(&region);
                let headers = bedrock_signed_headers(&url, body.as_bytes(), &credentials, &region)?;
                (url, headers)
            }
        };
        let mut req = self
            .settings
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, BEDROCK_EVENT_STREAM_CONTENT_TYPE);
        for (name, value) in auth_headers {
            req = req.header(name, value);
        }
        Ok(transport::with_common_headers(req, &self.settings, &request.correlation).body(body))
    }
}

/// The headers that sign a Bedrock invocation — `POST url` with the JSON `body` — with
/// SigV4 for `region` (service `bedrock`, signing `content-type` besides `host`), at this
/// moment: `x-amz-date`, `authorization` and, for temporary credentials,
/// `x-amz-security-token`, each marked sensitive. The request must then be sent with
/// exactly this URL, body and `Content-Type: application/json`.
pub fn bedrock_signed_headers(
    url: &str,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
) -> Result<Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>, ProviderError> {
    let signed = sigv4_headers(
        &SigV4Request {
            method: "POST",
            url,
            headers: &[("content-type", "application/json")],
            body,
        },
        credentials,
        region,
        BEDROCK_SIGNING_NAME,
        SystemTime::now(),
    )?;
    let mut headers = Vec::with_capacity(signed.len());
    for (name, value) in signed {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid_token_error())?;
        let mut value =
            reqwest::header::HeaderValue::from_str(&value).map_err(|_| invalid_token_error())?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(headers)
}

fn invalid_token_error() -> ProviderError {
    let classified = ClassifiedError::builder(ChatErrorKind::Config)
        .provider(PROVIDER)
        .retryable(false)
        .build();
    let inner = chaterror::with_classification(
        "bedrock credentials contain characters not allowed in an HTTP header",
        classified,
    );
    ProviderError::new("bedrock credentials are not a valid header value")
        .with_provider(PROVIDER)
        .with_source(inner)
}

#[async_trait::async_trait]
impl LanguageModel for BedrockModel {
    fn provider(&self) -> Provider {
        Provider::Bedrock
    }

    fn model_id(&self) -> &str {
        &self.model
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        use futures_util::{StreamExt, TryStreamExt};
        let this = self.clone();
        let start = async move {
            let req = this.build_http_request(&request).await?;
            let deadline = transport::startup_deadline(&this.settings);
            let resp = transport::send(req, PROVIDER, &this.settings, deadline).await?;
            let framer = BedrockFramer::new(BEDROCK_MAX_FRAME_BYTES);
            let events = transport::body_events(resp, &this.settings, PROVIDER, deadline, framer);
            Ok::<ModelStream, ProviderError>(crate::language_model::decode_events(
                events,
                AnthropicDecoder::new(),
            ))
        };
        let stream: ModelStream = Box::pin(futures_util::stream::once(start).try_flatten());
        // The Anthropic decoder names Anthropic in its errors; these are Bedrock's. The
        // redactor is built after the stream ends so it covers the secrets it signed with.
        let model = self.clone();
        Box::pin(stream.map(move |item| {
            item.map_err(|e| {
                model
                    .redactor()
                    .redact_provider_error(e.with_provider(PROVIDER))
            })
        }))
    }

    fn redactor(&self) -> chaterror::Redactor {
        let mut redactor = self.redactor.clone();
        if let Ok(seen) = self.seen_secrets.lock() {
            for secret in seen.iter() {
                redactor.add_secret(secret);
            }
        }
        redactor
    }
}

/// One HTTP request to sign with [`sigv4_headers`].
#[derive(Debug, Clone, Copy)]
pub struct SigV4Request<'a> {
    /// The method (`POST`).
    pub method: &'a str,
    /// The full URL, already percent-encoded as it will be sent.
    pub url: &'a str,
    /// Headers to sign besides `host` (which is derived from the URL).
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Signs `request` with AWS Signature Version 4 (`aws-sigv4`, header placement, no
/// `x-amz-content-sha256` header, as the AWS SDK signs Bedrock calls) and returns the
/// headers to add: `x-amz-date`, `authorization` and, for temporary credentials,
/// `x-amz-security-token`.
pub fn sigv4_headers(
    request: &SigV4Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, ProviderError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let url = url::Url::parse(request.url).map_err(|e| {
        ProviderError::new(format!("bedrock URL is not valid: {e}")).with_provider(PROVIDER)
    })?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => {
            return Err(ProviderError::new("bedrock URL has no host").with_provider(PROVIDER))
        }
    };
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e))?
        .into();
    let headers = std::iter::once(("host", host.as_str())).chain(request.headers.iter().copied());
    let signable = SignableRequest::new(
        request.method,
        request.url,
        headers,
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| signing_error(&e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

fn signing_error(err: &(dyn std::error::Error + 'static)) -> ProviderError {
    config_error(&format!("sign bedrock request: {}", error_text(err)))
}

/// Splits a Bedrock response body into the Anthropic events its `chunk` frames carry
/// (AWS event-stream framing, CRCs checked by `aws-smithy-eventstream`), as
/// [`SseEvent`]s with the event JSON as `data`. An exception or error frame fails with a
/// [`ProviderError`]; a frame over the limit, a bad CRC or a body cut inside a frame fail
/// too.
#[derive(Debug)]
pub struct BedrockFramer {
    buffer: BytesMut,
    max_frame_bytes: usize,
}

impl BedrockFramer {
    /// A framer accepting frames up to `max_frame_bytes` (see [`BEDROCK_MAX_FRAME_BYTES`]).
    pub fn new(max_frame_bytes: usize) -> Self {
        BedrockFramer {
            buffer: BytesMut::new(),
            max_frame_bytes,
        }
    }

    /// Takes the next body chunk, appending the events of every frame it completes.
    pub fn push_bytes(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError> {
        self.buffer.extend_from_slice(chunk);
        loop {
            let Some(prelude) = self.buffer.get(..4) else {
                return Ok(());
            };
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(prelude);
            let total = u32::from_be_bytes(len_bytes) as usize;
            if !(MIN_FRAME_BYTES..=self.max_frame_bytes).contains(&total) {
                return Err(ProviderError::new(format!(
                    "bedrock event-stream frame of {total} bytes is outside 16..={} bytes",
                    self.max_frame_bytes
                ))
                .with_provider(PROVIDER));
            }
            if self.buffer.len() < total {
                return Ok(());
            }
            let frame = self.buffer.split_to(total).freeze();
            let message = aws_smithy_eventstream::frame::read_message_from(frame).map_err(|e| {
                ProviderError::new(format!("bedrock event-stream frame is not valid: {e}"))
                    .with_provider(PROVIDER)
                    .with_source(e)
            })?;
            if let Some(event) = frame_event(&message)? {
                out.push(event);
            }
        }
    }

    /// The body ended: fails when it stopped inside a frame.
    pub fn finish_body(&mut self) -> Result<(), ProviderError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        Err(ProviderError::new(format!(
            "{} (body ended inside an event-stream frame)",
            crate::anthropic::ANTHROPIC_STREAM_CLOSED_MESSAGE
        ))
        .with_provider(PROVIDER))
    }
}

impl BodyFramer for BedrockFramer {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.push_bytes(chunk, out)
    }

    fn finish(&mut self, _out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.finish_body()
    }
}

fn header_str<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// The Anthropic event of a `chunk` frame; `None` for other event frames; an error for
/// exception and error frames.
fn frame_event(message: &Message) -> Result<Option<SseEvent>, ProviderError> {
    match header_str(message, ":message-type").unwrap_or("event") {
        "event" => {
            if header_str(message, ":event-type") != Some("chunk") {
                return Ok(None);
            }
            #[derive(serde::Deserialize)]
            struct Chunk {
                bytes: String,
            }
            let chunk: Chunk = serde_json::from_slice(message.payload()).map_err(|e| {
                ProviderError::new(format!("bedrock chunk is not valid JSON: {e}"))
                    .with_provider(PROVIDER)
                    .with_source(e)
            })?;
            let json = base64::engine::general_purpose::STANDARD
                .decode(chunk.bytes.trim())
                .map_err(|e| {
                    ProviderError::new(format!("bedrock chunk bytes are not base64: {e}"))
                        .with_provider(PROVIDER)
                        .with_source(e)
                })?;
            let data = String::from_utf8(json).map_err(|e| {
                ProviderError::new(format!("bedrock chunk is not UTF-8: {e}"))
                    .with_provider(PROVIDER)
                    .with_source(e)
            })?;
            Ok(Some(SseEvent {
                event: String::new(),
                data,
                id: None,
            }))
        }
        "exception" => {
            let kind = header_str(message, ":exception-type").unwrap_or("exception");
            Err(exception_error(kind, message.payload()))
        }
        other => {
            let code = header_str(message, ":error-code").unwrap_or(other);
            let text = header_str(message, ":error-message").unwrap_or_default();
            let body = serde_json::json!({ "message": text }).to_string();
            Err(exception_error(code, body.as_bytes()))
        }
    }
}

/// The HTTP status Bedrock documents for an exception (in-stream exceptions have none of
/// their own), so they classify like the same error returned before streaming.
pub fn bedrock_exception_status(exception: &str) -> Option<u16> {
    let name = exception.trim().to_ascii_lowercase();
    let name = name.strip_suffix("exception").unwrap_or(&name);
    Some(match name {
        "validation" => 400,
        "accessdenied" | "expiredtoken" | "unrecognizedclient" => 403,
        "resourcenotfound" => 404,
        "modeltimeout" => 408,
        "modelerror" | "modelstreamerror" => 424,
        "throttling" | "modelnotready" | "servicequotaexceeded" => 429,
        "internalserver" => 500,
        "serviceunavailable" => 503,
        _ => return None,
    })
}

/// An exception frame as a [`ProviderError`]: the message names the exception, the body is
/// its JSON payload, the status the one Bedrock documents for it. A
/// `modelStreamErrorException` (the model failed mid-stream, HTTP 424) is pre-classified as
/// a retryable `generic` error: a retry of the same request usually succeeds.
fn exception_error(kind: &str, payload: &[u8]) -> ProviderError {
    #[derive(serde::Deserialize, Default)]
    struct Payload {
        #[serde(default, alias = "Message")]
        message: Option<String>,
    }
    let parsed: Payload = serde_json::from_slice(payload).unwrap_or_default();
    let message: String = parsed
        .message
        .unwrap_or_default()
        .chars()
        .take(crate::anthropic::ANTHROPIC_MAX_ERROR_MESSAGE_CHARS)
        .collect();
    let text = if message.is_empty() {
        format!("bedrock stream error: {kind}")
    } else {
        format!("bedrock stream error: {kind}: {message}")
    };
    let body = payload.get(..MAX_ERROR_BODY_BYTES).unwrap_or(payload);
    let mut err = ProviderError::new(text.clone())
        .with_provider(PROVIDER)
        .with_header("x-amzn-errortype", kind)
        .with_body(body.to_vec());
    let status = bedrock_exception_status(kind);
    if let Some(status) = status {
        err = err.with_status(status);
    }
    if status == Some(424) {
        let classified = ClassifiedError::builder(ChatErrorKind::Generic)
            .provider(PROVIDER)
            .retryable(true)
            .status(424)
            .build();
        err = err.with_source(chaterror::with_classification(text, classified));
    }
    err
}

/// Decodes a whole recorded Bedrock body (event-stream frames) with the Anthropic decoder
/// (tests and tools).
pub fn decode_bedrock_body(body: &[u8]) -> Result<Vec<StreamPart>, ProviderError> {
    let mut framer = BedrockFramer::new(BEDROCK_MAX_FRAME_BYTES);
    let mut events = Vec::new();
    let framed = framer
        .push_bytes(body, &mut events)
        .and_then(|()| framer.finish_body());
    let mut decoder = AnthropicDecoder::new();
    let mut out = Vec::new();
    for event in &events {
        if decoder.is_done() {
            break;
        }
        decoder.on_event(event, &mut out)?;
    }
    framed?;
    decoder.on_end(&mut out)?;
    Ok(out)
}

/// Builds one `chunk` frame carrying `event_json` (tests, fixtures and mock servers).
pub fn encode_chunk_frame(event_json: &str) -> Vec<u8> {
    let payload = serde_json::json!({
        "bytes": base64::engine::general_purpose::STANDARD.encode(event_json),
    })
    .to_string();
    let message = Message::new(payload.into_bytes())
        .add_header(header(":message-type", "event"))
        .add_header(header(":event-type", "chunk"))
        .add_header(header(":content-type", "application/json"));
    write_frame(&message)
}

/// Builds one exception frame (`:exception-type` `kind`, JSON `{"message": …}`).
pub fn encode_exception_frame(kind: &str, message: &str) -> Vec<u8> {
    let payload = serde_json::json!({ "message": message }).to_string();
    let frame = Message::new(payload.into_bytes())
        .add_header(header(":message-type", "exception"))
        .add_header(header(":exception-type", kind))
        .add_header(header(":content-type", "application/json"));
    write_frame(&frame)
}

fn header(name: &'static str, value: &str) -> aws_smithy_types::event_stream::Header {
    aws_smithy_types::event_stream::Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn write_frame(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing fails only for headers or payloads over the framing's limits, which the
    // callers' small test frames never reach; an empty frame then fails the decode.
    if aws_smithy_eventstream::frame::write_message_to(message, &mut out).is_err() {
        out.clear();
    }
    out
}
