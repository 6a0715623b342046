//! Which request and response headers cross the gateway.
//!
//! Towards the upstream: everything the client sent except hop-by-hop headers, every
//! `X-Coder-*` header (chatd's own: the governance token, the correlation id), the other
//! spelling of the governance token, the client's credentials (replaced by the instance's
//! or, with a client's own key, set again from it), `Host`, `Content-Length` (the HTTP
//! client sets both), cookies, and `Accept-Encoding`: the gateway must read what it
//! forwards, so it asks for an unencoded body. Back to the client: everything except
//! hop-by-hop headers.

use reqwest::header::{HeaderMap, HeaderName};

/// Header carrying the caller's chatd token when its provider key is in the standard
/// header (BYOK).
pub const GOVERNANCE_TOKEN_HEADER: &str = "x-coder-ai-governance-token";

/// The other accepted spelling of [`GOVERNANCE_TOKEN_HEADER`].
pub const GOVERNANCE_TOKEN_ALT_HEADER: &str = "x-ai-gov-token";

/// Header carrying a client's id for log correlation.
pub const GOVERNANCE_REQUEST_ID_HEADER: &str = "x-coder-ai-governance-request-id";

/// The prefix of chatd's own headers, none of which reaches an upstream.
pub const CODER_HEADER_PREFIX: &str = "x-coder-";

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the proxy-era ones): they describe one
/// connection, not the message, and are never forwarded in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers that carry the caller's credentials towards chatd or the provider.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "coder-session-token",
    "cookie",
];

/// Whether a request header named `name` (lowercase, as `http` keeps names) is forwarded
/// upstream. Names listed in a `Connection` header are removed separately
/// ([`upstream_request_headers`]).
pub fn forwards_request_header(name: &str) -> bool {
    !(HOP_BY_HOP.contains(&name)
        || CREDENTIAL_HEADERS.contains(&name)
        || name.starts_with(CODER_HEADER_PREFIX)
        || name == GOVERNANCE_TOKEN_ALT_HEADER
        || name == "host"
        || name == "content-length"
        || name == "accept-encoding"
        || name == "expect")
}

/// Whether a response header named `name` goes back to the client.
pub fn forwards_response_header(name: &str) -> bool {
    !HOP_BY_HOP.contains(&name)
}

/// The names a `Connection` header lists: hop-by-hop for this message too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The client's headers as sent upstream, before the credential is set: see the module
/// documentation for what is removed.
pub fn upstream_request_headers(incoming: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let n = name.as_str();
        if forwards_request_header(n) && !listed.iter().any(|l| l == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The upstream's response headers as sent to the client.
pub fn client_response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        if forwards_response_header(n) && !listed.iter().any(|l| l == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The first value of `name` as text, trimmed, when present and not blank.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = header_text(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn coder_credentials_and_hop_by_hop_headers_never_reach_the_upstream() {
        let incoming = map(&[
            ("authorization", "Bearer chatd-token"),
            ("x-api-key", "sk-ant-user"),
            ("X-Coder-AI-Governance-Token", "chatd-token"),
            ("x-coder-ai-governance-request-id", "req-1"),
            ("x-coder-anything", "x"),
            ("x-ai-gov-token", "chatd-token"),
            ("coder-session-token", "chatd-token"),
            ("cookie", "coder_session_token=chatd-token"),
            ("host", "gateway.example"),
            ("content-length", "12"),
            ("accept-encoding", "gzip"),
            ("connection", "keep-alive, x-private-hop"),
            ("x-private-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic abc"),
            ("upgrade", "h2c"),
            ("expect", "100-continue"),
            // Kept:
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "a"),
            ("anthropic-beta", "b"),
            ("openai-beta", "responses=v1"),
            ("user-agent", "claude-cli/1.0"),
            ("x-claude-code-session-id", "s-1"),
            ("session_id", "codex-1"),
            ("x-stainless-lang", "js"),
        ]);
        let out = upstream_request_headers(&incoming);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "anthropic-version",
                "anthropic-beta",
                "openai-beta",
                "user-agent",
                "x-claude-code-session-id",
                "session_id",
                "x-stainless-lang"
            ]
        );
        assert_eq!(out.get_all("anthropic-beta").iter().count(), 2);
        assert!(out.keys().all(|k| !k.as_str().starts_with("x-coder-")));
    }

    #[test]
    fn response_headers_lose_only_hop_by_hop_ones() {
        let upstream = map(&[
            ("content-type", "text/event-stream"),
            ("retry-after", "7"),
            ("x-request-id", "abc"),
            ("transfer-encoding", "chunked"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("anthropic-ratelimit-requests-remaining", "5"),
        ]);
        let out = client_response_headers(&upstream);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "retry-after",
                "x-request-id",
                "anthropic-ratelimit-requests-remaining"
            ]
        );
    }

    #[test]
    fn bearer_tokens_and_header_text_are_read_leniently() {
        assert_eq!(
            bearer_token(&map(&[("authorization", "Bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&map(&[("authorization", "bearer abc")])),
            Some("abc")
        );
        assert_eq!(bearer_token(&map(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer_token(&map(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
        assert_eq!(header_text(&map(&[("x-a", "  ")]), "x-a"), None);
        assert_eq!(header_text(&map(&[("x-a", " v ")]), "X-A"), Some("v"));
    }
}
