//! The `q` parameter of `GET /chats`: any text parses or is refused with a `Response`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = codersdk::parse_chat_search_query(q);
    }
});
