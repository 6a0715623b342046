//! [`ProviderError`]: the structured failure a provider client reports.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::BoxError;

/// Retry-After hints are capped at this duration.
///
/// Coder applies no cap. We do, because the hint is a floor on the retry delay
/// ([`retry::effective_delay`](crate::retry::effective_delay)) and a misbehaving proxy that
/// answers `retry-after: 99999999` would otherwise park a chat for years (DESIGN
/// invariant 7, bounded timeouts). An hour is far above any rate-limit window providers use.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// Header carrying the provider's minimum retry delay in (fractional) milliseconds
/// (OpenAI convention); read before [`RETRY_AFTER`].
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Standard header carrying the provider's minimum retry delay, as seconds or an HTTP date.
pub const RETRY_AFTER: &str = "retry-after";

/// Header by which a provider overrides whether a request may be retried (Anthropic,
/// OpenAI). `false` makes an error terminal.
pub const X_SHOULD_RETRY: &str = "x-should-retry";

/// A failed call to an LLM provider, as a provider client reports it.
///
/// It carries what classification needs: the message, the HTTP status, the response
/// headers (looked up case-insensitively) and the response body or a dump of the whole HTTP
/// response. [`classify`](crate::classify) finds it anywhere in an error's source chain.
///
/// ```
/// use chaterror::{classify, ChatErrorKind, ProviderError};
///
/// let err = ProviderError::new("upstream failed")
///     .with_status(429)
///     .with_header("Retry-After", "30")
///     .with_body(r#"{"error":{"message":"Slow down."}}"#)
///     .with_provider("openai");
/// let c = classify(&err);
/// assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit));
/// assert_eq!(c.detail(), "Slow down.");
/// assert_eq!(c.retry_after().as_secs(), 30);
/// ```
#[derive(Clone, Default)]
pub struct ProviderError {
    // Boxed so `Result<_, ProviderError>` stays one pointer wide on the hot path of every
    // stream part (the fields are only touched on failure).
    inner: Box<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    message: String,
    title: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    provider: String,
    connect_failure: bool,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl ProviderError {
    /// A provider error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        ProviderError {
            inner: Box::new(Inner {
                message: message.into(),
                ..Default::default()
            }),
        }
    }

    /// Sets a short title (such as the HTTP reason phrase) shown before the message.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.inner.title = title.into();
        self
    }

    /// Sets the HTTP status of the response; `0` means unknown.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = status;
        self
    }

    /// Adds a response header. Names compare case-insensitively; the first of several
    /// headers with the same name wins.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// Adds several response headers.
    pub fn with_headers<N, V>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<String>,
        V: Into<String>,
    {
        self.inner
            .headers
            .extend(headers.into_iter().map(|(n, v)| (n.into(), v.into())));
        self
    }

    /// Sets the response body, or a dump of the whole response (status line, headers, blank
    /// line, body). It need not be UTF-8 or JSON; bodies over
    /// [`MAX_PARSED_BODY_BYTES`](crate::MAX_PARSED_BODY_BYTES) are kept but never parsed.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = body.into();
        self
    }

    /// Names the provider that failed (`openai`, `anthropic`, …). It is normalized on
    /// classification and beats guessing the provider from the message.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.inner.provider = provider.into();
        self
    }

    /// Marks (or unmarks) the error as a failure to reach the provider at all: the DNS
    /// lookup failed, the connection was refused or the host unreachable, the TLS handshake
    /// failed, or the transport timed out before any response. No HTTP status exists then.
    ///
    /// Classification reads it as a retryable `timeout` when no status is known, like a cut
    /// stream: the provider may well be reachable a moment later. Without the mark only the
    /// error text decides, and texts such as `dns error` match no transport pattern.
    pub fn with_connect_failure(mut self, failed: bool) -> Self {
        self.inner.connect_failure = failed;
        self
    }

    /// Sets the lower-level error that caused this one (a transport error, say).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(Arc::from(source.into()));
        self
    }

    /// The provider's message.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The title, empty when none.
    pub fn title(&self) -> &str {
        &self.inner.title
    }

    /// The HTTP status, `None` when unknown.
    pub fn status(&self) -> Option<u16> {
        (self.inner.status != 0).then_some(self.inner.status)
    }

    /// The value of a response header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All response headers in the order they were added.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The response body or dump, empty when none.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Whether the provider could not be reached at all (see
    /// [`ProviderError::with_connect_failure`]).
    pub fn is_connect_failure(&self) -> bool {
        self.inner.connect_failure
    }

    /// The provider id as given, `None` when not set.
    pub fn provider(&self) -> Option<&str> {
        (!self.inner.provider.trim().is_empty()).then_some(self.inner.provider.as_str())
    }

    /// The provider's minimum retry delay from `retry-after-ms` or `retry-after`; zero when
    /// absent or unusable. See [`parse_retry_after`].
    ///
    /// Without a usable header, a Google RPC `RetryInfo` in the body counts as well: Gemini
    /// answers a 429 `RESOURCE_EXHAUSTED` with
    /// `{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}`
    /// and no `Retry-After` ([`parse_google_retry_delay`]).
    pub fn retry_after(&self) -> Duration {
        let from_headers = parse_retry_after(
            self.header(RETRY_AFTER_MS),
            self.header(RETRY_AFTER),
            SystemTime::now(),
        );
        if from_headers.is_zero() {
            parse_google_retry_delay(&self.inner.body).unwrap_or(Duration::ZERO)
        } else {
            from_headers
        }
    }

    /// Rewrites every text the error shows (message, title, header names and values) with
    /// `text` and the body with `body`; used by redaction.
    pub(crate) fn map_text(
        mut self,
        text: impl Fn(&str) -> String,
        body: impl Fn(&[u8]) -> Vec<u8>,
    ) -> Self {
        let inner = &mut *self.inner;
        inner.message = text(&inner.message);
        inner.title = text(&inner.title);
        for (name, value) in &mut inner.headers {
            *name = text(name);
            *value = text(value);
        }
        inner.body = body(&inner.body);
        self
    }

    /// The source, shared.
    pub(crate) fn shared_source(&self) -> Option<Arc<dyn StdError + Send + Sync + 'static>> {
        self.inner.source.clone()
    }

    /// Replaces the source.
    pub(crate) fn replace_source(&mut self, source: Arc<dyn StdError + Send + Sync + 'static>) {
        self.inner.source = Some(source);
    }

    /// The provider's `x-should-retry` verdict, `None` when absent or not a boolean.
    pub fn should_retry(&self) -> Option<bool> {
        let v = self.header(X_SHOULD_RETRY)?.trim();
        if v.eq_ignore_ascii_case("true") {
            Some(true)
        } else if v.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.title.is_empty() {
            f.write_str(&self.inner.message)
        } else {
            write!(f, "{}: {}", self.inner.title, self.inner.message)
        }
    }
}

impl fmt::Debug for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body can be large; its size is what matters when debugging.
        f.debug_struct("ProviderError")
            .field("message", &self.inner.message)
            .field("title", &self.inner.title)
            .field("status", &self.inner.status)
            .field("headers", &self.inner.headers)
            .field("body_len", &self.inner.body.len())
            .field("provider", &self.inner.provider)
            .field("connect_failure", &self.inner.connect_failure)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl StdError for ProviderError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Parses a provider's minimum retry delay from the values of the `retry-after-ms` and
/// `retry-after` headers, relative to `now`.
///
/// `retry-after-ms` (fractional milliseconds) wins when it is a positive number.
/// Otherwise `retry-after` is read as seconds (a number; zero or negative gives zero) or
/// as an HTTP date (the time left until then, zero if past). Anything unparseable,
/// non-finite or too large to represent gives zero; results are capped at
/// [`MAX_RETRY_AFTER`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let now = SystemTime::now();
/// assert_eq!(chaterror::parse_retry_after(Some("1500"), Some("30"), now), Duration::from_millis(1500));
/// assert_eq!(chaterror::parse_retry_after(None, Some("30"), now), Duration::from_secs(30));
/// assert_eq!(chaterror::parse_retry_after(None, Some("soon"), now), Duration::ZERO);
/// ```
pub fn parse_retry_after(ms: Option<&str>, seconds: Option<&str>, now: SystemTime) -> Duration {
    if let Some(ms) = ms.and_then(positive_float) {
        if let Ok(d) = Duration::try_from_secs_f64(ms / 1000.0) {
            return d.min(MAX_RETRY_AFTER);
        }
    }
    let Some(value) = seconds.map(str::trim) else {
        return Duration::ZERO;
    };
    if let Ok(secs) = value.parse::<f64>() {
        return match Duration::try_from_secs_f64(secs) {
            Ok(d) if secs.is_finite() && secs > 0.0 => d.min(MAX_RETRY_AFTER),
            _ => Duration::ZERO,
        };
    }
    match httpdate::parse_http_date(value) {
        Ok(at) => at
            .duration_since(now)
            .map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER)),
        Err(_) => Duration::ZERO,
    }
}

/// The `retryDelay` of the first Google RPC `RetryInfo` detail in an error body
/// (`{"error":{"details":[{"@type":"…google.rpc.RetryInfo","retryDelay":"1.5s"}]}}`, or a
/// JSON array of such errors, as streaming endpoints send), capped at [`MAX_RETRY_AFTER`].
/// The delay is a protobuf `Duration` in JSON form: decimal seconds with an `s` suffix.
/// `None` when the body is not such JSON, is larger than
/// [`MAX_PARSED_BODY_BYTES`](crate::MAX_PARSED_BODY_BYTES), or the delay is not a positive
/// duration.
///
/// ```
/// use std::time::Duration;
/// let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[
///   {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17.5s"}]}}"#;
/// assert_eq!(chaterror::parse_google_retry_delay(body), Some(Duration::from_millis(17_500)));
/// assert_eq!(chaterror::parse_google_retry_delay(b"not json"), None);
/// ```
pub fn parse_google_retry_delay(body: &[u8]) -> Option<Duration> {
    // Like classification, never parse a body above the limit, and parse only a body that
    // can hold a RetryInfo: the common error costs one scan and no allocation.
    const MARKER: &[u8] = b"RetryInfo";
    if body.len() > crate::MAX_PARSED_BODY_BYTES || !body.windows(MARKER.len()).any(|w| w == MARKER)
    {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = match &value {
        serde_json::Value::Array(items) => items.first()?.get("error")?,
        other => other.get("error")?,
    };
    let delay = error
        .get("details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay").and_then(serde_json::Value::as_str))?;
    let secs = positive_float(delay.trim().strip_suffix('s')?)?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .map(|d| d.min(MAX_RETRY_AFTER))
}

fn positive_float(s: &str) -> Option<f64> {
    let v = s.trim().parse::<f64>().ok()?;
    (v.is_finite() && v > 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive() {
        let e = ProviderError::new("m")
            .with_header("ReTrY-AfTeR-Ms", "1500")
            .with_header("retry-after-ms", "9");
        assert_eq!(e.header("retry-after-ms"), Some("1500"));
        assert_eq!(e.header("RETRY-AFTER-MS"), Some("1500"));
        assert_eq!(e.header("missing"), None);
    }

    #[test]
    fn display_joins_title_and_message() {
        assert_eq!(ProviderError::new("m").to_string(), "m");
        assert_eq!(ProviderError::new("m").with_title("T").to_string(), "T: m");
        assert_eq!(ProviderError::new("").to_string(), "");
    }

    #[test]
    fn google_retry_delay() {
        let body = |delay: &str| {
            format!(
                r#"{{"error":{{"code":429,"details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure"}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
            )
        };
        let p = |delay: &str| parse_google_retry_delay(body(delay).as_bytes());
        assert_eq!(p("30s"), Some(Duration::from_secs(30)));
        assert_eq!(p("0.25s"), Some(Duration::from_millis(250)));
        assert_eq!(p("3600s"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("3601s"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("0s"), None);
        assert_eq!(p("-1s"), None);
        assert_eq!(p("30"), None);
        assert_eq!(p("NaNs"), None);
        let arr = format!("[{}]", body("2s"));
        assert_eq!(
            parse_google_retry_delay(arr.as_bytes()),
            Some(Duration::from_secs(2))
        );
        // Bodies above MAX_PARSED_BODY_BYTES are not parsed: the edge.
        let padded = |len: usize| {
            let base = body("5s");
            let inner = base.strip_suffix('}').unwrap();
            let pad = len - inner.len() - r#","pad":""}"#.len();
            format!(r#"{inner},"pad":"{}"}}"#, "p".repeat(pad))
        };
        let at = padded(crate::MAX_PARSED_BODY_BYTES);
        assert_eq!(at.len(), crate::MAX_PARSED_BODY_BYTES);
        assert_eq!(
            parse_google_retry_delay(at.as_bytes()),
            Some(Duration::from_secs(5))
        );
        let over = padded(crate::MAX_PARSED_BODY_BYTES + 1);
        assert_eq!(over.len(), crate::MAX_PARSED_BODY_BYTES + 1);
        assert_eq!(parse_google_retry_delay(over.as_bytes()), None);
        // The header wins; the body is the fallback.
        let err = ProviderError::new("quota")
            .with_status(429)
            .with_body(body("9s").into_bytes());
        assert_eq!(err.retry_after(), Duration::from_secs(9));
        let err = err.with_header("Retry-After", "3");
        assert_eq!(err.retry_after(), Duration::from_secs(3));
    }

    #[test]
    fn retry_after_parsing() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = |ms: Option<&str>, s: Option<&str>| parse_retry_after(ms, s, now);
        assert_eq!(p(None, Some("30")), Duration::from_secs(30));
        assert_eq!(p(Some("1500"), Some("30")), Duration::from_millis(1500));
        assert_eq!(p(Some("0"), Some("30")), Duration::from_secs(30));
        assert_eq!(p(Some("-5"), Some("2")), Duration::from_secs(2));
        assert_eq!(p(Some("garbage"), None), Duration::ZERO);
        assert_eq!(p(None, Some("-3")), Duration::ZERO);
        assert_eq!(p(None, Some("0")), Duration::ZERO);
        assert_eq!(p(None, Some("0.25")), Duration::from_millis(250));
        assert_eq!(p(None, Some(" 7 ")), Duration::from_secs(7));
        assert_eq!(p(None, Some("NaN")), Duration::ZERO);
        assert_eq!(p(None, Some("inf")), Duration::ZERO);
        assert_eq!(p(Some("inf"), None), Duration::ZERO);
        assert_eq!(p(None, Some("1e300")), Duration::ZERO);
        assert_eq!(p(None, Some("definitely not a delay")), Duration::ZERO);
        assert_eq!(p(None, Some("")), Duration::ZERO);
        // Cap edge: exactly the cap survives, one second more is capped.
        assert_eq!(p(None, Some("3600")), MAX_RETRY_AFTER);
        assert_eq!(p(None, Some("3601")), MAX_RETRY_AFTER);
        assert_eq!(p(Some("3600001"), None), MAX_RETRY_AFTER);
        // HTTP dates in all three formats.
        let at = now + Duration::from_secs(3);
        let imf = httpdate::fmt_http_date(at);
        assert_eq!(p(None, Some(&imf)), Duration::from_secs(3));
        assert_eq!(
            p(None, Some("Tue, 14 Nov 2023 22:13:23 GMT")),
            Duration::from_secs(3)
        );
        assert_eq!(
            p(None, Some("Tuesday, 14-Nov-23 22:13:23 GMT")),
            Duration::from_secs(3)
        );
        assert_eq!(
            p(None, Some("Tue Nov 14 22:13:23 2023")),
            Duration::from_secs(3)
        );
        // A date in the past gives zero.
        assert_eq!(
            p(None, Some("Tue, 14 Nov 2023 22:13:10 GMT")),
            Duration::ZERO
        );
    }

    #[test]
    fn should_retry_header() {
        let e = ProviderError::new("m").with_header("X-Should-Retry", " FALSE ");
        assert_eq!(e.should_retry(), Some(false));
        let e = ProviderError::new("m").with_header("x-should-retry", "true");
        assert_eq!(e.should_retry(), Some(true));
        let e = ProviderError::new("m").with_header("x-should-retry", "maybe");
        assert_eq!(e.should_retry(), None);
    }
}
