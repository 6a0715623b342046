//! Stored message content (what a database row holds): any text in any version decodes or
//! fails with a typed error; what decodes re-encodes and decodes to the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&version, raw)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let version = i16::from(version % 3) - 1;
    if let Ok(parts) = codersdk::decode_message_content(version, raw) {
        if let Ok(encoded) = codersdk::encode_message_content(&parts) {
            let again = codersdk::decode_message_content(1, &encoded)
                .expect("encoded content decodes");
            assert_eq!(again, parts);
        }
    }
});
