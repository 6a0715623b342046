//! The legacy MCP transport, HTTP with Server-Sent Events (protocol 2024-11-05): the client
//! opens a `GET` event stream, the server's first `endpoint` event names the URL to `POST`
//! messages to, and every answer arrives on the stream as a `message` event.
//!
//! Ours rather than the SDK's: `rmcp` dropped this transport, and servers that speak only
//! it are still common. The stream is read with chatprovider's [`SseDecoder`], so one event
//! is bounded like every provider stream.

use std::fmt;
use std::time::Duration;

use chatprovider::sse::{SseDecoder, SseEvent};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

/// Messages read from the stream but not yet taken by the client; the reader waits when
/// the client falls this far behind (back-pressure, not buffering without end).
pub const SSE_CHANNEL_CAPACITY: usize = 64;

/// How long one `POST` of a message may take.
pub const SSE_POST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the legacy transport failed. Messages never carry header values.
#[derive(Debug)]
#[non_exhaustive]
pub enum SseTransportError {
    /// The event stream could not be opened (status or network).
    Open(String),
    /// The stream ended or broke before the `endpoint` event.
    NoEndpoint(String),
    /// The `endpoint` event named a URL on another origin: credentials are never sent
    /// there.
    ForeignEndpoint,
    /// Posting a message failed.
    Post(String),
}

impl fmt::Display for SseTransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseTransportError::Open(e) => write!(f, "could not open the SSE stream: {e}"),
            SseTransportError::NoEndpoint(e) => {
                write!(f, "the SSE stream sent no endpoint event: {e}")
            }
            SseTransportError::ForeignEndpoint => {
                f.write_str("the SSE endpoint event names another origin; refused")
            }
            SseTransportError::Post(e) => write!(f, "posting a message failed: {e}"),
        }
    }
}

impl std::error::Error for SseTransportError {}

/// An open legacy-SSE connection; a [`Transport`] for an `rmcp` client.
#[derive(Debug)]
pub struct LegacySseTransport {
    http: reqwest::Client,
    headers: HeaderMap,
    endpoint: Url,
    rx: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: JoinHandle<()>,
}

impl Drop for LegacySseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

impl LegacySseTransport {
    /// Opens the stream at `url` with `headers` on every request and waits for the
    /// `endpoint` event (the caller bounds the wait). Events larger than `max_event_bytes`
    /// end the stream.
    pub async fn connect(
        http: reqwest::Client,
        url: Url,
        headers: HeaderMap,
        max_event_bytes: usize,
    ) -> Result<Self, SseTransportError> {
        let response = http
            .get(url.clone())
            .headers(headers.clone())
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .send()
            .await
            .map_err(|e| SseTransportError::Open(describe(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SseTransportError::Open(format!("HTTP {}", status.as_u16())));
        }
        let mut body: ByteStream = Box::pin(response.bytes_stream());
        let mut decoder = SseDecoder::new(max_event_bytes);
        let mut events = Vec::new();
        let endpoint = loop {
            if let Some(i) = events.iter().position(|e: &SseEvent| e.event == "endpoint") {
                break events.remove(i).data;
            }
            match body.next().await {
                Some(Ok(chunk)) => decoder
                    .push(&chunk, &mut events)
                    .map_err(|e| SseTransportError::NoEndpoint(e.to_string()))?,
                Some(Err(e)) => return Err(SseTransportError::NoEndpoint(describe(e))),
                None => return Err(SseTransportError::NoEndpoint("the stream ended".to_owned())),
            }
        };
        let endpoint = url
            .join(endpoint.trim())
            .map_err(|e| SseTransportError::NoEndpoint(format!("bad endpoint URL: {e}")))?;
        if endpoint.origin() != url.origin() {
            return Err(SseTransportError::ForeignEndpoint);
        }
        let (tx, rx) = mpsc::channel(SSE_CHANNEL_CAPACITY);
        let reader = tokio::spawn(read_messages(body, decoder, events, tx));
        Ok(LegacySseTransport {
            http,
            headers,
            endpoint,
            rx,
            reader,
        })
    }
}

/// Forwards every `message` event (already decoded ones first) until the stream ends, breaks,
/// sends an oversized event, or the client goes away. An event that is not a JSON-RPC
/// message is skipped: one bad event must not end a session whose other answers are fine
/// (the call it belonged to times out).
async fn read_messages(
    mut body: ByteStream,
    mut decoder: SseDecoder,
    mut pending: Vec<SseEvent>,
    tx: mpsc::Sender<ServerJsonRpcMessage>,
) {
    loop {
        for event in pending.drain(..) {
            if !(event.event.is_empty() || event.event == "message") {
                continue;
            }
            match serde_json::from_str::<ServerJsonRpcMessage>(&event.data) {
                Ok(message) => {
                    if tx.send(message).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "MCP SSE stream sent an unreadable message"),
            }
        }
        match body.next().await {
            Some(Ok(chunk)) => {
                if let Err(e) = decoder.push(&chunk, &mut pending) {
                    tracing::warn!(error = %e, "MCP SSE stream closed");
                    return;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %describe(e), "MCP SSE stream broke");
                return;
            }
            None => return,
        }
    }
}

/// A reqwest error without its URL (which may carry a session id or a key in the query).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        e.without_url().to_string()
    }
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let http = self.http.clone();
        let endpoint = self.endpoint.clone();
        let headers = self.headers.clone();
        async move {
            let message: &ClientJsonRpcMessage = &item;
            let body =
                serde_json::to_vec(message).map_err(|e| SseTransportError::Post(e.to_string()))?;
            let response = http
                .post(endpoint)
                .headers(headers)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .timeout(SSE_POST_TIMEOUT)
                .body(body)
                .send()
                .await
                .map_err(|e| SseTransportError::Post(describe(e)))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseTransportError::Post(format!(
                    "HTTP {}",
                    response.status().as_u16()
                )))
            }
        }
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.rx.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        self.rx.close();
        Ok(())
    }
}
