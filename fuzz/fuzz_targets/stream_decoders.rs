//! The provider stream decoders (Anthropic Messages, OpenAI Chat Completions, OpenAI
//! Responses, Claude on Bedrock's event stream) behind their framers, and the AI Gateway's
//! Bedrock translation: any body decodes to parts or a typed error, never a panic. The
//! first byte picks the decoder.
#![no_main]

use std::convert::Infallible;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use chatprovider::gateway::{
    bedrock_invocation, event_stream_to_sse, BedrockSettings, Observer, WireApi,
};
use chatprovider::{
    decode_bedrock_body, decode_body, AnthropicDecoder, OpenAiChatDecoder,
    OpenAiResponsesDecoder, Provider,
};
use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;

const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The gateway's work on a Bedrock call: the body as a Messages request to rewrite, and as
/// an event stream (in two chunks) to turn into server-sent events and observe.
fn gateway_bedrock(body: &[u8]) {
    let _ = bedrock_invocation(body, &http::HeaderMap::new(), &BedrockSettings::default());
    let cut = body.len() / 2;
    let (first, second) = body.split_at(cut);
    let chunks = [Bytes::copy_from_slice(first), Bytes::copy_from_slice(second)];
    let mut events = event_stream_to_sse(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, Infallible>),
    ));
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", http::HeaderValue::from_static("text/event-stream"));
    let mut observer = Observer::new(WireApi::Messages, 200, &headers, chaterror::Redactor::new());
    // The upstream is an in-memory iterator: every poll is ready.
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(Ok(chunk))) = events.poll_next_unpin(&mut cx) {
        observer.observe(&chunk);
    }
    let _ = observer.finish(true);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => drop(decode_body(AnthropicDecoder::new(), body, MAX_EVENT_BYTES)),
        1 => drop(decode_body(OpenAiChatDecoder::new(Provider::OpenAi), body, MAX_EVENT_BYTES)),
        2 => drop(decode_body(OpenAiChatDecoder::new(Provider::OpenAiCompat), body, MAX_EVENT_BYTES)),
        3 => drop(decode_body(OpenAiResponsesDecoder::new(Provider::OpenAi), body, MAX_EVENT_BYTES)),
        4 => drop(decode_bedrock_body(body)),
        _ => gateway_bedrock(body),
    }
});
