//! Absolute http(s) URLs, as provider base URLs, MCP server URLs and `diff_url` searches take them.

/// Longest URL accepted anywhere (provider base URLs, `diff_url` searches), in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks that `raw` is an absolute `http://` or `https://` URL with a host: at most
/// [`MAX_URL_BYTES`], no whitespace or control characters, a host of letters, digits,
/// `.`, `-`, `_` (or a bracketed IPv6 address) and an optional port 1–65535. The reason
/// is a sentence fragment that never repeats the URL, because URLs can carry credentials.
pub fn validate_http_url(raw: &str) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("must not be empty");
    }
    if raw.len() > MAX_URL_BYTES {
        return Err("is longer than the 2048-byte limit");
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err("must be an absolute URL starting with http:// or https://");
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err("must start with http:// or https://");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an unterminated IPv6 address");
        };
        let v6_ok = addr.contains(':')
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !v6_ok {
            return Err("has an invalid IPv6 address");
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err("has an invalid host"),
            },
        }
    } else {
        let (host, port) = match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err("must name a host");
        }
        if !host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err("has an invalid host");
        }
        port
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err("has an invalid port");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn http_url_table() {
        let at = format!("https://a.com/{}", "x".repeat(MAX_URL_BYTES - 14));
        let over = format!("{at}x");
        assert_eq!(at.len(), MAX_URL_BYTES);
        let cases: &[(&str, bool)] = &[
            ("http://a", true),
            ("https://api.openai.com/v1", true),
            ("HTTPS://EXAMPLE.COM", true),
            ("https://user:pw@host:8080/x?y=1#z", true),
            ("http://[::1]:3000/", true),
            ("http://[2001:db8::1]", true),
            ("http://localhost:65535", true),
            ("http://127.0.0.1:1", true),
            ("https://bücher.example/", true),
            (&at, true),
            (&over, false),
            ("", false),
            ("ftp://a", false),
            ("example.com", false),
            ("//example.com", false),
            ("http://", false),
            ("http:///path", false),
            ("http://:80", false),
            ("http://a:0", false),
            ("http://a:65536", false),
            ("http://a:", false),
            ("http://a:80:90", false),
            ("http://a b", false),
            ("http://a\n", false),
            ("http://[::1", false),
            ("http://[zz]", false),
            ("http://[::1]x", false),
            ("http://ex%ample.com", false),
        ];
        for (url, ok) in cases {
            assert_eq!(validate_http_url(url).is_ok(), *ok, "{url}");
        }
    }

    proptest! {
        #[test]
        fn url_validator_never_panics(s in any::<String>()) {
            let _ = validate_http_url(&s);
        }
    }
}
