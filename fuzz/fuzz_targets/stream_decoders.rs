//! The provider stream decoders (Anthropic Messages, OpenAI Chat Completions, OpenAI
//! Responses) behind the SSE framer: any body decodes to parts or a typed error, never a
//! panic. The first byte picks the decoder.
#![no_main]

use chatprovider::{
    decode_body, AnthropicDecoder, OpenAiChatDecoder, OpenAiResponsesDecoder, Provider,
};
use libfuzzer_sys::fuzz_target;

const MAX_EVENT_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let _ = match which % 4 {
        0 => decode_body(AnthropicDecoder::new(), body, MAX_EVENT_BYTES),
        1 => decode_body(OpenAiChatDecoder::new(Provider::OpenAi), body, MAX_EVENT_BYTES),
        2 => decode_body(OpenAiChatDecoder::new(Provider::OpenAiCompat), body, MAX_EVENT_BYTES),
        _ => decode_body(OpenAiResponsesDecoder::new(Provider::OpenAi), body, MAX_EVENT_BYTES),
    };
});
