//! HTTP plumbing shared by the streaming clients: settings, request headers, turning error
//! responses into [`ProviderError`]s, and turning a response body into SSE events under the
//! startup timeout and the event size limit.

use std::pin::Pin;
use std::time::Duration;

use chaterror::{ClassifiedError, ProviderError};
use codersdk::ChatErrorKind;
use futures_util::{Stream, StreamExt};

use codersdk::SecretString;

use crate::request::CorrelationHeaders;
use crate::sse::{SseDecoder, SseEvent, DEFAULT_MAX_EVENT_BYTES};

/// Default time allowed from sending a request until the first byte of the response body.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Most bytes of an error response body kept (and handed to classification).
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Most redirects the default HTTP client follows (all within one origin).
pub const MAX_REDIRECTS: usize = 5;

/// The HTTP client models use unless [`ClientSettings::http`] is replaced.
///
/// It follows redirects only within the same origin (scheme, host and port), at most
/// [`MAX_REDIRECTS`]: provider keys travel in headers (`x-api-key`, Azure's `api-key`)
/// that reqwest does not strip on a redirect, so a cross-origin redirect must never be
/// followed. A caller supplying its own client must give it the same policy.
pub fn default_http_client() -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    // Building only fails when the TLS backend cannot initialize, in which case reqwest's
    // own default client cannot be built either.
    reqwest::Client::builder()
        .redirect(policy)
        .build()
        .unwrap_or_default()
}

/// The `User-Agent` every client sends: `chatd/<version> (<os>/<arch>)`.
pub fn default_user_agent() -> String {
    format!(
        "chatd/{} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Settings shared by every client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `User-Agent` header.
    pub user_agent: String,
    /// Time allowed from sending until the first body byte; the attempt then fails with a
    /// retryable `startup_timeout`.
    pub startup_timeout: Duration,
    /// Largest single stream event (see [`crate::sse::DEFAULT_MAX_EVENT_BYTES`]).
    pub max_event_bytes: usize,
    /// Extra headers sent with every request (after the client's own).
    pub extra_headers: Vec<(String, String)>,
    /// The HTTP client; share one across models to reuse connections. Defaults to
    /// [`default_http_client`], which never follows a redirect to another origin.
    pub http: reqwest::Client,
    /// Where Bedrock models without a key get AWS credentials and their region; `None`
    /// (the default) is the process-wide standard chain,
    /// [`AwsEnvironment::process`](crate::AwsEnvironment::process). Tests and embedders
    /// with credentials of their own set [`AwsEnvironment::fixed`](crate::AwsEnvironment::fixed).
    pub aws: Option<crate::AwsEnvironment>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            user_agent: default_user_agent(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            extra_headers: Vec::new(),
            http: default_http_client(),
            aws: None,
        }
    }
}

/// Stand-in for a startup timeout too large to add to the clock: far enough to never fire.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The startup deadline of a request sent now. Saturates rather than overflowing when the
/// configured timeout is enormous (`Instant + Duration` would panic).
pub(crate) fn startup_deadline(settings: &ClientSettings) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(settings.startup_timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// Query parameters of an endpoint whose values are credentials: their names contain one
/// of these (`key`, `api_key`, `access_token`, Azure SAS `sig`, …). Others, such as Azure's
/// `api-version`, are not secret and are left in error text.
const CREDENTIAL_QUERY_NAMES: &[&str] = &["key", "token", "secret", "sig", "auth", "pass"];

/// A client's base URL: `configured` trimmed, else `default` when it is blank or absent,
/// without a trailing `/` (paths are appended with their own).
pub(crate) fn base_url_or(configured: Option<&str>, default: &str) -> String {
    configured
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_owned()
}

/// Where a keyed client sends its requests: the API key (sent in a provider-specific
/// header), the normalized base URL, the HTTP settings, and the redactor built from all
/// three. One value for every client that is "a key and an endpoint", so the key's
/// handling (sealed, never in `Debug`, known to the redactor) is written once.
#[derive(Clone)]
pub(crate) struct KeyedEndpoint {
    pub(crate) api_key: SecretString,
    pub(crate) base_url: String,
    pub(crate) settings: ClientSettings,
    pub(crate) redactor: chaterror::Redactor,
}

impl KeyedEndpoint {
    /// `api_key` at `base_url` (blank or `None`: `default`; see [`base_url_or`]).
    pub(crate) fn new(
        api_key: String,
        base_url: Option<&str>,
        default: &str,
        settings: ClientSettings,
    ) -> Self {
        let base_url = base_url_or(base_url, default);
        let api_key = SecretString::new(api_key);
        let redactor = client_redactor(
            Some(api_key.expose()),
            url::Url::parse(&base_url).ok().as_ref(),
            &settings,
        );
        KeyedEndpoint {
            api_key,
            base_url,
            settings,
            redactor,
        }
    }

    /// The key as a header value marked sensitive (so `reqwest` and `http` never print it).
    /// A key `http` refuses (control characters) is a non-retryable `config` error of
    /// `provider`, which names the provider and never the key.
    pub(crate) fn key_header(
        &self,
        provider: &str,
    ) -> Result<reqwest::header::HeaderValue, ProviderError> {
        let mut key =
            reqwest::header::HeaderValue::from_str(self.api_key.expose()).map_err(|_| {
                let classified = ClassifiedError::builder(ChatErrorKind::Config)
                    .provider(provider)
                    .retryable(false)
                    .build();
                let inner = chaterror::with_classification(
                    format!("{provider} API key contains characters not allowed in an HTTP header"),
                    classified,
                );
                ProviderError::new(format!("{provider} API key is not a valid header value"))
                    .with_provider(provider)
                    .with_source(inner)
            })?;
        key.set_sensitive(true);
        Ok(key)
    }
}

impl std::fmt::Debug for KeyedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedEndpoint")
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The secrets a client sends besides its key: every extra header value (the client
/// cannot tell a proxy credential from a label), and the user info and credential query
/// values of the endpoint, which gateways use for credentials.
pub(crate) fn client_redactor(
    api_key: Option<&str>,
    endpoint: Option<&url::Url>,
    settings: &ClientSettings,
) -> chaterror::Redactor {
    let mut redactor = chaterror::Redactor::new();
    if let Some(key) = api_key {
        redactor.add_secret(key);
    }
    for (_, value) in &settings.extra_headers {
        redactor.add_secret(value);
    }
    if let Some(url) = endpoint {
        if let Some(password) = url.password() {
            redactor.add_secret(password);
        }
        if !url.username().is_empty() {
            redactor.add_secret(url.username());
        }
        for (name, value) in url.query_pairs() {
            let name = name.to_ascii_lowercase();
            if CREDENTIAL_QUERY_NAMES.iter().any(|n| name.contains(n)) {
                redactor.add_secret(value);
            }
        }
    }
    redactor
}

/// Sends a prepared request and streams its SSE body through `decoder`: the common path of
/// every client. Nothing happens until the stream is first polled; the startup deadline
/// covers sending and the first body byte.
pub(crate) fn stream_sse<D: crate::StreamDecoder + 'static>(
    request: Result<reqwest::RequestBuilder, ProviderError>,
    provider: &'static str,
    settings: ClientSettings,
    decoder: D,
) -> crate::ModelStream {
    use futures_util::TryStreamExt;
    let start = async move {
        let req = request?;
        let deadline = startup_deadline(&settings);
        let resp = send(req, provider, &settings, deadline).await?;
        let events = sse_events(resp, &settings, provider, deadline);
        Ok::<crate::ModelStream, ProviderError>(crate::language_model::decode_events(
            events, decoder,
        ))
    };
    Box::pin(futures_util::stream::once(start).try_flatten())
}

/// A stream of SSE events or the failure that ended it.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

/// Adds the user agent, correlation and extra headers.
pub(crate) fn with_common_headers(
    mut req: reqwest::RequestBuilder,
    settings: &ClientSettings,
    correlation: &CorrelationHeaders,
) -> reqwest::RequestBuilder {
    req = req.header(reqwest::header::USER_AGENT, &settings.user_agent);
    for (name, value) in correlation.pairs() {
        req = req.header(name, value);
    }
    for (name, value) in &settings.extra_headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req
}

/// The error for a provider that sent nothing in time: pre-classified `startup_timeout`,
/// retryable.
pub(crate) fn startup_timeout_error(provider: &str, after: Duration) -> ProviderError {
    let classified = ClassifiedError::builder(ChatErrorKind::StartupTimeout)
        .provider(provider)
        .retryable(true)
        .build();
    let inner = chaterror::with_classification(
        format!(
            "{provider} stream produced no data within {}s",
            after.as_secs()
        ),
        classified,
    );
    ProviderError::new(format!(
        "{provider} stream did not start within {}s",
        after.as_secs()
    ))
    .with_provider(provider)
    .with_source(inner)
}

/// Most causes of a transport error written into its message (reqwest → hyper → connector →
/// resolver → OS error is five); the full chain stays reachable through `source()`.
pub const MAX_TRANSPORT_ERROR_CAUSES: usize = 8;

/// A transport failure (DNS, connect, TLS, reset, timeout) while sending or reading.
///
/// The message is `<what> (<host>): <cause>: <cause>…`, so the stored chat error says *why*
/// (`dns error: failed to lookup address information`), not only "error sending request".
/// It names the host but never the URL, which may carry credentials or a signed query; the
/// reqwest error kept as `source()` has its URL removed for the same reason. A failure to
/// reach the provider at all (reqwest's connect and timeout errors) is marked
/// [`ProviderError::with_connect_failure`], which classifies as a retryable `timeout`.
pub(crate) fn transport_error(provider: &str, what: &str, err: reqwest::Error) -> ProviderError {
    let host = err.url().and_then(|u| u.host_str()).map(str::to_owned);
    let connect_failure = err.is_connect() || err.is_timeout();
    let err = err.without_url();
    let causes = cause_chain_text(&err);
    let message = match host {
        Some(host) => format!("{what} ({host}): {causes}"),
        None => format!("{what}: {causes}"),
    };
    ProviderError::new(message)
        .with_provider(provider)
        .with_connect_failure(connect_failure)
        .with_source(err)
}

/// An error and its causes joined with `": "`, at most [`MAX_TRANSPORT_ERROR_CAUSES`] of
/// them, skipping a cause whose text the message already shows.
fn cause_chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut node = Some(err);
    for _ in 0..MAX_TRANSPORT_ERROR_CAUSES {
        let Some(current) = node else { break };
        let piece = current.to_string();
        if !piece.is_empty() && !text.contains(&piece) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&piece);
        }
        node = current.source();
    }
    text
}

/// Sends the request and waits for a successful response before `deadline` (the startup
/// deadline, which also covers the first body byte in [`sse_events`]). A non-2xx answer
/// becomes a [`ProviderError`] with status, headers and (capped) body.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    provider: &str,
    settings: &ClientSettings,
    deadline: tokio::time::Instant,
) -> Result<reqwest::Response, ProviderError> {
    let sent = tokio::time::timeout_at(deadline, req.send()).await;
    let resp = match sent {
        Err(_) => return Err(startup_timeout_error(provider, settings.startup_timeout)),
        Ok(Err(e)) => return Err(transport_error(provider, "send request", e)),
        Ok(Ok(resp)) => resp,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(error_response(resp, provider).await)
}

/// Reads an error response into a [`ProviderError`], keeping at most
/// [`MAX_ERROR_BODY_BYTES`] of the body.
pub(crate) async fn error_response(resp: reqwest::Response, provider: &str) -> ProviderError {
    let status = resp.status();
    let mut err = ProviderError::new(format!(
        "{provider} API error: {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    ))
    .with_status(status.as_u16())
    .with_provider(provider);
    for (name, value) in resp.headers() {
        if let Ok(v) = value.to_str() {
            err = err.with_header(name.as_str(), v);
        }
    }
    let mut body = Vec::new();
    let mut chunks = resp.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else { break };
        let room = MAX_ERROR_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    err.with_body(body)
}

/// Splits a response body into events: SSE for most providers, the AWS event-stream
/// framing for Bedrock ([`crate::bedrock::BedrockFramer`]).
pub(crate) trait BodyFramer: Send + 'static {
    /// Takes the next body chunk, appending every event it completes.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError>;
    /// The body ended.
    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError>;
}

/// SSE framing with the provider named in its errors.
struct SseFramer {
    decoder: SseDecoder,
    provider: String,
}

impl BodyFramer for SseFramer {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.decoder.push(chunk, out).map_err(|e| {
            ProviderError::new(e.to_string())
                .with_provider(&self.provider)
                .with_source(e)
        })
    }

    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.decoder.finish(out).map_err(|e| {
            ProviderError::new(e.to_string())
                .with_provider(&self.provider)
                .with_source(e)
        })
    }
}

/// Decodes a successful response body into SSE events. The first body byte must arrive
/// before `deadline` (the startup deadline set when the request was sent); an event over
/// `settings.max_event_bytes` ends the stream with an error.
pub(crate) fn sse_events(
    resp: reqwest::Response,
    settings: &ClientSettings,
    provider: &str,
    deadline: tokio::time::Instant,
) -> EventStream {
    let framer = SseFramer {
        decoder: SseDecoder::new(settings.max_event_bytes),
        provider: provider.to_owned(),
    };
    body_events(resp, settings, provider, deadline, framer)
}

/// Decodes a successful response body into events with `framer`, under the startup
/// deadline (see [`sse_events`]).
pub(crate) fn body_events<F: BodyFramer>(
    resp: reqwest::Response,
    settings: &ClientSettings,
    provider: &str,
    deadline: tokio::time::Instant,
    framer: F,
) -> EventStream {
    let provider = provider.to_owned();
    let startup = settings.startup_timeout;
    let body = resp.bytes_stream();
    struct State<B, F> {
        body: B,
        framer: F,
        ready: std::collections::VecDeque<SseEvent>,
        failed: Option<ProviderError>,
        started: bool,
        done: bool,
    }
    let state = State {
        body,
        framer,
        ready: Default::default(),
        failed: None,
        started: false,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, move |mut st| {
        let provider = provider.clone();
        async move {
            loop {
                if let Some(ev) = st.ready.pop_front() {
                    return Some((Ok(ev), st));
                }
                if let Some(e) = st.failed.take() {
                    return Some((Err(e), st));
                }
                if st.done {
                    return None;
                }
                let next = if st.started {
                    st.body.next().await
                } else {
                    match tokio::time::timeout_at(deadline, st.body.next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            st.done = true;
                            return Some((Err(startup_timeout_error(&provider, startup)), st));
                        }
                    }
                };
                let mut out = Vec::new();
                let step = match next {
                    Some(Ok(chunk)) => {
                        st.started = true;
                        st.framer.push(&chunk, &mut out)
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(transport_error(&provider, "read stream", e)), st));
                    }
                    None => {
                        st.done = true;
                        st.framer.finish(&mut out)
                    }
                };
                // Events completed before a framing error are still delivered first.
                st.ready.extend(out);
                if let Err(e) = step {
                    st.done = true;
                    st.failed = Some(e);
                }
            }
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_endpoint_hides_its_key_and_refuses_one_http_cannot_send() {
        let endpoint = KeyedEndpoint::new(
            "sk-live-0123456789abcdef".into(),
            Some(" https://proxy.example/v1/ "),
            "https://default.example",
            ClientSettings::default(),
        );
        assert_eq!(endpoint.base_url, "https://proxy.example/v1");
        assert!(!format!("{endpoint:?}").contains("0123456789abcdef"));
        assert!(endpoint.key_header("anthropic").unwrap().is_sensitive());
        assert!(!endpoint
            .redactor
            .redact("echo sk-live-0123456789abcdef")
            .contains("0123456789abcdef"));

        let broken = KeyedEndpoint::new(
            "sk-bad\nkey-0123456789".into(),
            None,
            "https://default.example",
            ClientSettings::default(),
        );
        assert_eq!(broken.base_url, "https://default.example");
        let err = broken.key_header("google").unwrap_err();
        let classified = chaterror::classify(&err);
        assert_eq!(classified.kind(), Some(&ChatErrorKind::Config));
        assert!(!classified.is_retryable());
        assert!(!err.to_string().contains("0123456789"));
    }

    #[tokio::test]
    async fn an_enormous_startup_timeout_saturates_instead_of_panicking() {
        let settings = ClientSettings {
            startup_timeout: Duration::MAX,
            ..ClientSettings::default()
        };
        let deadline = startup_deadline(&settings);
        assert!(deadline > tokio::time::Instant::now() + Duration::from_secs(24 * 3600));
    }

    #[test]
    fn user_agent_names_the_crate_and_platform() {
        let ua = default_user_agent();
        assert!(ua.starts_with("chatd/"), "{ua}");
        assert!(
            ua.contains(std::env::consts::OS) && ua.contains(std::env::consts::ARCH),
            "{ua}"
        );
    }

    /// A model whose endpoint is `base_url`; nothing answers there.
    fn unreachable_model(base_url: &str) -> crate::OpenAiChatModel {
        crate::OpenAiChatModel::new(
            crate::Provider::OpenAi,
            "gpt-test",
            Some(codersdk::SecretString::new("sk-test-secret-0123456789")),
            Some(base_url),
            ClientSettings::default(),
        )
        .unwrap()
    }

    async fn first_error(base_url: &str) -> ProviderError {
        use crate::LanguageModel;
        let request = crate::ModelRequest {
            messages: vec![crate::Message::user_text("hi")],
            ..Default::default()
        };
        let mut stream = unreachable_model(base_url).stream(request);
        let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("an unreachable provider fails fast");
        match first {
            Some(Err(e)) => e,
            other => panic!("expected a transport error, got {other:?}"),
        }
    }

    /// A loopback port nobody listens on: bound, read, released.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn assert_retryable_transport_failure(err: &ProviderError, host: &str, cause: &str) {
        // The cause chain is kept: the reqwest error is the source, and its causes follow.
        let source = std::error::Error::source(err).expect("a source");
        let reqwest_err = source
            .downcast_ref::<reqwest::Error>()
            .expect("the reqwest error is the source");
        assert!(reqwest_err.is_connect());
        assert!(reqwest_err.url().is_none(), "the URL is not kept");
        let mut depth = 0;
        let mut node = Some(source);
        while let Some(n) = node {
            depth += 1;
            node = n.source();
        }
        assert!(depth >= 3, "the lower causes are kept too ({depth})");
        assert!(err.is_connect_failure());
        // The message says why, names the host and never the URL or the key.
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("send request ({host}): ")),
            "{text}"
        );
        assert!(text.to_lowercase().contains(cause), "{text}");
        assert!(!text.contains("://") && !text.contains("/v1"), "{text}");
        assert!(!format!("{err:?}").contains("sk-test-secret"));
        // Classified as the retryable transport failure it is.
        let c = chaterror::classify(err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout), "{c:?}");
        assert!(c.is_retryable());
        assert_eq!(c.provider(), "openai");
        assert_eq!(c.message(), "OpenAI is temporarily unavailable.");
        assert!(c.detail().to_lowercase().contains(cause), "{}", c.detail());
    }

    #[tokio::test]
    async fn a_refused_connection_keeps_its_cause_and_is_retryable() {
        let port = closed_port();
        let err = first_error(&format!("http://127.0.0.1:{port}/v1")).await;
        assert_retryable_transport_failure(&err, "127.0.0.1", "connection refused");
    }

    #[tokio::test]
    async fn a_dns_failure_keeps_its_cause_and_is_retryable() {
        // `.invalid` never resolves (RFC 2606), with or without a network.
        let err = first_error("http://chatd-test-host.invalid/v1").await;
        assert_retryable_transport_failure(&err, "chatd-test-host.invalid", "dns error");
    }

    #[test]
    fn cause_chain_text_is_bounded_and_skips_repeats() {
        #[derive(Debug)]
        struct Link {
            text: String,
            source: Option<Box<Link>>,
        }
        impl std::fmt::Display for Link {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.text)
            }
        }
        impl std::error::Error for Link {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source
                    .as_deref()
                    .map(|l| l as &(dyn std::error::Error + 'static))
            }
        }
        let chain = |texts: &[String]| {
            texts.iter().rev().fold(None, |source, text| {
                Some(Box::new(Link {
                    text: text.clone(),
                    source,
                }))
            })
        };
        // A repeated text (a wrapper that prints its cause) is written once.
        let texts: Vec<String> = [
            "error sending request",
            "error sending request",
            "dns error",
        ]
        .map(str::to_owned)
        .to_vec();
        let link = chain(&texts).unwrap();
        assert_eq!(cause_chain_text(&*link), "error sending request: dns error");
        // A long chain is cut at the limit.
        let texts: Vec<String> = (0..MAX_TRANSPORT_ERROR_CAUSES + 5)
            .map(|i| format!("cause {i}"))
            .collect();
        let link = chain(&texts).unwrap();
        let text = cause_chain_text(&*link);
        assert_eq!(text.split(": ").count(), MAX_TRANSPORT_ERROR_CAUSES);
        assert!(text.ends_with(&format!("cause {}", MAX_TRANSPORT_ERROR_CAUSES - 1)));
    }
}
