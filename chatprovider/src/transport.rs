//! HTTP plumbing shared by the streaming clients: settings, request headers, turning error
//! responses into [`ProviderError`]s, and turning a response body into SSE events under the
//! startup timeout and the event size limit.

use std::pin::Pin;
use std::time::Duration;

use chaterror::{ClassifiedError, ProviderError};
use codersdk::ChatErrorKind;
use futures_util::{Stream, StreamExt};

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
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            user_agent: default_user_agent(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            extra_headers: Vec::new(),
            http: default_http_client(),
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

/// A transport failure (connect, TLS, reset) while sending or reading.
pub(crate) fn transport_error(provider: &str, what: &str, err: reqwest::Error) -> ProviderError {
    ProviderError::new(format!("{what}: {err}"))
        .with_provider(provider)
        .with_source(err)
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

/// Decodes a successful response body into SSE events. The first body byte must arrive
/// before `deadline` (the startup deadline set when the request was sent); an event over
/// `settings.max_event_bytes` ends the stream with an error.
pub(crate) fn sse_events(
    resp: reqwest::Response,
    settings: &ClientSettings,
    provider: &str,
    deadline: tokio::time::Instant,
) -> EventStream {
    let provider = provider.to_owned();
    let startup = settings.startup_timeout;
    let decoder = SseDecoder::new(settings.max_event_bytes);
    let body = resp.bytes_stream();
    struct State<B> {
        body: B,
        decoder: SseDecoder,
        ready: std::collections::VecDeque<SseEvent>,
        started: bool,
        done: bool,
    }
    let state = State {
        body,
        decoder,
        ready: Default::default(),
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
                        st.decoder.push(&chunk, &mut out)
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(transport_error(&provider, "read stream", e)), st));
                    }
                    None => {
                        st.done = true;
                        st.decoder.finish(&mut out)
                    }
                };
                if let Err(e) = step {
                    st.done = true;
                    return Some((
                        Err(ProviderError::new(e.to_string())
                            .with_provider(&provider)
                            .with_source(e)),
                        st,
                    ));
                }
                st.ready.extend(out);
            }
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

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
}
