//! Property tests: classification never panics and always returns a well-formed value,
//! whatever the error text, headers, body or chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, SystemTime};

use chaterror::{
    classify, classify_text, decode_chat_error, parse_retry_after, with_classification, BoxError,
    Canceled, ClassifiedError, DeadlineExceeded, Http2ErrorCode, Http2StreamError, Interrupted,
    ProviderError, TransportReset, MAX_DETAIL_RUNES, MAX_RETRY_AFTER,
};
use proptest::prelude::*;

use crate::common;

/// Fragments that steer generated text into the interesting corners: patterns, statuses,
/// URLs, wrapper syntax, whitespace and multibyte text.
const FRAGMENTS: &[&str] = &[
    "status",
    "status code:",
    "http",
    "429",
    "503",
    "401",
    "529",
    "500",
    "stream ID",
    ":",
    "=",
    " ",
    "\n",
    "\t",
    "https://",
    "://",
    "user:pw@host",
    "?key=secret",
    "/path",
    "\"",
    "{",
    "}",
    "POST \"https://a/b\": 400 Bad ",
    "{\"message\":\"inner\"}",
    "overloaded",
    "rate limit",
    "timeout",
    "unauthorized",
    "forbidden",
    "quota",
    "insufficient_quota",
    "billing",
    "invalid model",
    "server error",
    "chat interrupted",
    "provider_disabled",
    "context deadline exceeded",
    "anthropic stream closed before message_stop",
    "openai",
    "azure openai",
    "claude",
    "no tool output found for function call",
    "received from peer",
    "é",
    "…",
    "🦀",
    "\u{0}",
    "\u{200b}",
    "x",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|v| v.concat()),
        // Long text: beyond the detail and scan limits.
        (prop::sample::select(FRAGMENTS), 0usize..3000).prop_map(|(f, n)| f.repeat(n)),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("inf".to_owned()),
        Just("-0".to_owned()),
        Just("false".to_owned()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("retry-after".to_owned()),
        Just("Retry-After-Ms".to_owned()),
        Just("x-should-retry".to_owned()),
        any::<String>(),
    ];
    prop::collection::vec((name, header_value()), 0..4)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        text().prop_map(String::into_bytes),
        (text(), text()).prop_map(|(m, t)| {
            serde_json::json!({"error": {"message": m, "type": t, "code": t}})
                .to_string()
                .into_bytes()
        }),
        (text(), 0usize..5000).prop_map(|(m, depth)| {
            format!(
                "{{\"message\":{},\"x\":{}{}}}",
                serde_json::json!(m),
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes()
        }),
        (text(), 60_000usize..70_000).prop_map(|(m, pad)| {
            format!(
                "HTTP/1.1 400 X\n\n{{\"message\":{},\"pad\":\"{}\"}}",
                serde_json::json!(m),
                "p".repeat(pad)
            )
            .into_bytes()
        }),
    ]
}

fn provider_error() -> impl Strategy<Value = ProviderError> {
    (text(), text(), any::<u16>(), headers(), body(), text()).prop_map(
        |(message, title, status, headers, body, p)| {
            ProviderError::new(message)
                .with_title(title)
                .with_status(status)
                .with_headers(headers)
                .with_body(body)
                .with_provider(p)
        },
    )
}

/// One link of a generated chain.
#[derive(Debug, Clone)]
enum Link {
    Text(String),
    Provider(ProviderError),
    Canceled,
    Deadline,
    Interrupted,
    Reset,
    Http2(u32, u32, bool),
    Classified(String),
}

fn link() -> impl Strategy<Value = Link> {
    prop_oneof![
        text().prop_map(Link::Text),
        provider_error().prop_map(Link::Provider),
        Just(Link::Canceled),
        Just(Link::Deadline),
        Just(Link::Interrupted),
        Just(Link::Reset),
        (any::<u32>(), 0u32..16, any::<bool>())
            .prop_map(|(id, code, peer)| Link::Http2(id, code, peer)),
        text().prop_map(Link::Classified),
    ]
}

/// Builds an error chain, innermost link last.
fn build(links: &[Link]) -> BoxError {
    let mut err: BoxError = Box::new(common::e("root"));
    for l in links.iter().rev() {
        err = match l.clone() {
            Link::Text(t) => Box::new(common::Wrap {
                context: t,
                source: err,
            }),
            Link::Provider(pe) => Box::new(pe.with_source(err)),
            Link::Canceled => Box::new(common::wrap("canceled", Canceled)),
            Link::Deadline => Box::new(common::wrap("deadline", DeadlineExceeded)),
            Link::Interrupted => Box::new(common::wrap("interrupted", Interrupted)),
            Link::Reset => Box::new(TransportReset::wrap(err)),
            Link::Http2(id, code, peer) => {
                let e = Http2StreamError::new(id, Http2ErrorCode::from_u32(code));
                Box::new(common::wrap(
                    "h2",
                    if peer { e.received_from_peer() } else { e },
                ))
            }
            Link::Classified(detail) => {
                let c = ClassifiedError::builder(chaterror::ChatErrorKind::Timeout)
                    .detail(detail)
                    .build();
                Box::new(with_classification(err, c))
            }
        };
    }
    err
}

fn assert_well_formed(c: &ClassifiedError) {
    if c.kind().is_some() {
        assert!(!c.message().is_empty(), "{c:?}");
    } else {
        assert!(c.is_empty(), "{c:?}");
    }
    assert!(c.retry_after() <= MAX_RETRY_AFTER, "{c:?}");
    assert!(c.detail().chars().count() <= MAX_DETAIL_RUNES, "{c:?}");
    assert!(!c.detail().contains("://"), "{c:?}");
    assert_eq!(c.detail(), c.detail().trim());
    assert_eq!(c.message(), c.message().trim());
    assert_eq!(c.to_chat_error().is_some(), !c.message().is_empty());
    // Normalization is idempotent and survives a round trip through a wrapper.
    assert_eq!(&c.with_provider(""), c);
    if !c.is_empty() {
        assert_eq!(
            &classify(&with_classification(common::e("x"), c.clone())),
            c
        );
    }
    serde_json::to_string(c).unwrap();
}

proptest! {
    #[test]
    fn classify_text_is_well_formed(t in text()) {
        let c = classify_text(&t);
        assert_well_formed(&c);
        prop_assert!(c.status_code() == 0 || (100..=999).contains(&c.status_code()));
    }

    #[test]
    fn classify_provider_error_is_well_formed(pe in provider_error()) {
        assert_well_formed(&classify(&pe));
    }

    #[test]
    fn classify_chain_is_well_formed(links in prop::collection::vec(link(), 0..6)) {
        let err = build(&links);
        assert_well_formed(&classify(&*err));
    }

    #[test]
    fn long_chains_are_bounded(depth in 0usize..300, t in text()) {
        let links: Vec<Link> = (0..depth).map(|_| Link::Text(t.clone())).collect();
        assert_well_formed(&classify(&*build(&links)));
    }

    #[test]
    fn with_provider_is_well_formed(t in text(), hint in text()) {
        assert_well_formed(&classify_text(&t).with_provider(&hint));
    }

    #[test]
    fn retry_after_never_panics(ms in proptest::option::of(header_value()), s in proptest::option::of(header_value())) {
        let d = parse_retry_after(ms.as_deref(), s.as_deref(), SystemTime::now());
        prop_assert!(d <= MAX_RETRY_AFTER);
    }

    #[test]
    fn decode_never_panics(raw in body()) {
        let e = decode_chat_error(&raw);
        prop_assert!(!e.message.is_empty());
        prop_assert!(e.kind.is_some());
    }

    #[test]
    fn delay_is_bounded_and_monotone(attempt in any::<u32>()) {
        let d = chaterror::retry::delay(attempt);
        prop_assert!(d >= Duration::from_secs(1) && d <= chaterror::retry::MAX_DELAY);
        prop_assert!(chaterror::retry::delay(attempt.saturating_add(1)) >= d);
    }
}
