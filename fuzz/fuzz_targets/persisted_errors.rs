//! Error text from outside: a stored `last_error` column and a provider's error response
//! (status, headers, body). Decoding and classification never panic.
#![no_main]

use chaterror::{classify, decode_chat_error, ProviderError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_chat_error(data);
    let Some((&status, body)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    let err = ProviderError::new(text.clone())
        .with_status(400 + u16::from(status))
        .with_header("retry-after", text.chars().take(32).collect::<String>())
        .with_body(body.to_vec());
    let _ = classify(&err);
});
