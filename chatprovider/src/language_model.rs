//! The one interface to every provider: [`LanguageModel`].

use std::fmt;
use std::pin::Pin;

use chaterror::{ProviderError, Redactor};
use futures_util::{Stream, StreamExt};

use crate::catalog::Provider;
use crate::request::ModelRequest;
use crate::response::{ModelResponse, ResponseCollector, StreamPart};
use crate::sse::SseEvent;
use crate::transport::EventStream;

/// A stream of provider-neutral parts; ends after [`StreamPart::Finish`] or with an error.
pub type ModelStream = Pin<Box<dyn Stream<Item = Result<StreamPart, ProviderError>> + Send>>;

/// A model of some provider, ready to stream turns.
///
/// Object safe: the engine holds `Arc<dyn LanguageModel>`. Failures are
/// [`chaterror::ProviderError`]s carrying status, headers and body, so
/// [`chaterror::classify`] yields the kind and the Retry-After hint.
#[async_trait::async_trait]
pub trait LanguageModel: Send + Sync + fmt::Debug {
    /// The provider.
    fn provider(&self) -> Provider;

    /// The provider's model id.
    fn model_id(&self) -> &str;

    /// Starts one model call. The request is sent when the stream is first polled;
    /// dropping the stream cancels the call.
    fn stream(&self, request: ModelRequest) -> ModelStream;

    /// The credentials this model sends with its requests (API key, header values, the
    /// base URL's user info and query values), for redacting failures.
    ///
    /// Every error of [`LanguageModel::stream`] is already redacted with it; a caller that
    /// turns a failure into text (a stored error, an event, a log line) redacts with it as
    /// well, together with its own secrets. The default knows no secrets and removes
    /// key-shaped text only: a custom model that sends credentials should return them here.
    fn redactor(&self) -> Redactor {
        Redactor::new()
    }

    /// Runs one model call to completion.
    async fn generate(&self, request: ModelRequest) -> Result<ModelResponse, ProviderError> {
        let mut stream = self.stream(request);
        let mut collector = ResponseCollector::new();
        while let Some(part) = stream.next().await {
            collector.push(&part?);
        }
        Ok(collector.finish())
    }
}

/// Redacts every error `stream` yields with `redactor`
/// ([`Redactor::redact_provider_error`]): what each client does to its own stream, and what
/// a custom [`LanguageModel`] can do to its.
pub fn redact_errors(stream: ModelStream, redactor: Redactor) -> ModelStream {
    Box::pin(stream.map(move |item| item.map_err(|e| redactor.redact_provider_error(e))))
}

/// The pure half of a client: turns the provider's SSE events into [`StreamPart`]s.
///
/// Kept free of I/O so it can be tested on recorded streams event by event.
pub trait StreamDecoder: Send {
    /// Handles one event, appending any parts it completes.
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError>;

    /// The body ended. A stream that never reached its terminal event is an error here
    /// ("… stream closed before …").
    fn on_end(&mut self, out: &mut Vec<StreamPart>) -> Result<(), ProviderError>;

    /// Whether the terminal event was seen (further events are ignored).
    fn is_done(&self) -> bool;
}

/// Runs a [`StreamDecoder`] over an event stream.
pub(crate) fn decode_events<D: StreamDecoder + 'static>(
    events: EventStream,
    decoder: D,
) -> ModelStream {
    struct State<D> {
        events: EventStream,
        decoder: D,
        ready: std::collections::VecDeque<StreamPart>,
        finished: bool,
    }
    let state = State {
        events,
        decoder,
        ready: Default::default(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(part) = st.ready.pop_front() {
                return Some((Ok(part), st));
            }
            if st.finished {
                return None;
            }
            let mut out = Vec::new();
            let step = match st.events.next().await {
                Some(Ok(event)) if !st.decoder.is_done() => st.decoder.on_event(&event, &mut out),
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e),
                None => {
                    st.finished = true;
                    st.decoder.on_end(&mut out)
                }
            };
            match step {
                Ok(()) => st.ready.extend(out),
                Err(e) => {
                    st.finished = true;
                    st.ready.clear();
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

/// Decodes a whole recorded body with `decoder` (tests and tools): SSE framing included.
pub fn decode_body<D: StreamDecoder>(
    mut decoder: D,
    body: &[u8],
    max_event_bytes: usize,
) -> Result<Vec<StreamPart>, ProviderError> {
    let mut sse = crate::sse::SseDecoder::new(max_event_bytes);
    let mut events = Vec::new();
    sse.push(body, &mut events)
        .and_then(|()| sse.finish(&mut events))
        .map_err(|e| ProviderError::new(e.to_string()).with_source(e))?;
    let mut out = Vec::new();
    for event in &events {
        if decoder.is_done() {
            break;
        }
        decoder.on_event(event, &mut out)?;
    }
    decoder.on_end(&mut out)?;
    Ok(out)
}
