//! Redaction: the one function every path uses before an upstream failure becomes text
//! (a chat's `last_error`, a stream event, a log line, an HTTP response).
//!
//! Two things are removed and replaced by [`REDACTED`]:
//!
//! - **Known secrets**: every credential the failing request used, as the caller lists them
//!   in a [`Redactor`] (the resolved API key, bearer tokens, header values, MCP secrets),
//!   in the forms a server might echo them (plain, JSON-escaped, percent-encoded, and the
//!   token of an `Authorization` value without its scheme).
//! - **Key-shaped text**, whoever's key it is: `sk-…` (OpenAI, Anthropic `sk-ant-…`,
//!   OpenRouter `sk-or-…`), AWS access key ids (`AKIA…`, `ASIA…`), Google `AIza…`,
//!   GitHub `ghp_…`/`github_pat_…`, xAI `xai-…`, Slack `xox?-…`, long `Bearer` tokens, and
//!   the value after a credential-named field (`x-api-key: …`, `"api_key":"…"`,
//!   `password=…`).
//!
//! Redaction works on the whole text before anything cuts it: a detail is truncated to
//! [`MAX_DETAIL_RUNES`](crate::MAX_DETAIL_RUNES) only after, so a key cut in half can
//! never leave a recognisable prefix behind. All matches are found on the original text,
//! overlapping matches merged, and each merged range replaced once, so two secrets that
//! overlap cannot leave a piece of either.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use codersdk::{ChatError, ChatStreamRetry};

use crate::{ClassifiedError, ProviderError};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Known secrets at least this long are removed wherever they occur, even inside a word.
///
/// Shorter ones (a test key `abc`, a header value `1`) are removed only where they stand
/// as a whole token (no ASCII letter or digit on either side): removing every `e` of a
/// message because a key was `e` would destroy the message, and a real key is never that
/// short.
pub const MIN_SUBSTRING_SECRET_BYTES: usize = 8;

/// Characters after a key prefix (`sk-`, `AKIA`, …) that make the text key-shaped.
/// `sk-` plus 16 is far shorter than any real key and longer than any word such as
/// `sk-learn`.
pub const MIN_KEY_SHAPE_CHARS: usize = 16;

/// A `Bearer` token at least this long is redacted even when it is not a known secret.
pub const MIN_BEARER_TOKEN_CHARS: usize = 16;

/// The value after a credential-named field (`api_key=…`) is redacted when it is at least
/// this long; shorter values are words of a sentence (`token: expired`).
pub const MIN_ASSIGNED_SECRET_CHARS: usize = 8;

/// Field names whose value is a credential, compared case-insensitively. A name matches
/// only as a whole name: `max_tokens` is not `token`.
const CREDENTIAL_FIELDS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "api_key",
    "apikey",
    "x-goog-api-key",
    "access_token",
    "refresh_token",
    "id_token",
    "session_token",
    "coder_session_token",
    "coder-session-token",
    "x-amz-security-token",
    "aws_secret_access_key",
    "client_secret",
    "secret_key",
    "secret",
    "password",
    "passwd",
    "token",
];

/// Authorization schemes skipped before a credential field's value.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token"];

/// A key prefix and the characters that may follow it.
struct KeyShape {
    prefix: &'static str,
    body: fn(u8) -> bool,
    min: usize,
}

fn key_body(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// RFC 7235 `token68`, the alphabet of bearer tokens.
fn token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

const KEY_SHAPES: &[KeyShape] = &[
    KeyShape {
        prefix: "sk-",
        body: key_body,
        min: MIN_KEY_SHAPE_CHARS,
    },
    KeyShape {
        prefix: "AKIA",
        body: upper_digit,
        min: MIN_KEY_SHAPE_CHARS,
    },
    KeyShape {
        prefix: "ASIA",
        body: upper_digit,
        min: MIN_KEY_SHAPE_CHARS,
    },
    KeyShape {
        prefix: "AIza",
        body: key_body,
        min: 30,
    },
    KeyShape {
        prefix: "ghp_",
        body: alnum,
        min: 30,
    },
    KeyShape {
        prefix: "gho_",
        body: alnum,
        min: 30,
    },
    KeyShape {
        prefix: "ghu_",
        body: alnum,
        min: 30,
    },
    KeyShape {
        prefix: "ghs_",
        body: alnum,
        min: 30,
    },
    KeyShape {
        prefix: "ghr_",
        body: alnum,
        min: 30,
    },
    KeyShape {
        prefix: "github_pat_",
        body: alnum_underscore,
        min: 20,
    },
    KeyShape {
        prefix: "xai-",
        body: alnum,
        min: 20,
    },
    KeyShape {
        prefix: "xoxa-",
        body: alnum_dash,
        min: 10,
    },
    KeyShape {
        prefix: "xoxb-",
        body: alnum_dash,
        min: 10,
    },
    KeyShape {
        prefix: "xoxp-",
        body: alnum_dash,
        min: 10,
    },
    KeyShape {
        prefix: "xoxr-",
        body: alnum_dash,
        min: 10,
    },
    KeyShape {
        prefix: "xoxs-",
        body: alnum_dash,
        min: 10,
    },
];

/// The credentials of one request (or one component), and the redaction of text with them.
///
/// Cheap to clone (the secrets are shared). `Debug` shows how many secrets it holds, never
/// them. The empty redactor ([`Redactor::new`]) still removes key-shaped text.
///
/// ```
/// use chaterror::{Redactor, REDACTED};
///
/// let r = Redactor::new().with_secret("Bearer opaque-token-1234");
/// assert_eq!(r.redact("echo: opaque-token-1234"), format!("echo: {REDACTED}"));
/// // Key-shaped text goes whoever's it is.
/// assert_eq!(
///     r.redact("bad key sk-proj-abcdefghijklmnopqrstuvwx"),
///     format!("bad key {REDACTED}")
/// );
/// assert_eq!(r.redact("nothing to hide"), "nothing to hide");
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor with no known secrets: it removes key-shaped text only.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds a secret (see [`Redactor::add_secret`]).
    pub fn with_secret(mut self, secret: impl AsRef<str>) -> Self {
        self.add_secret(secret);
        self
    }

    /// Adds several secrets.
    pub fn with_secrets<S: AsRef<str>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        for s in secrets {
            self.add_secret(s);
        }
        self
    }

    /// Adds every secret of `other`.
    pub fn merge(mut self, other: &Redactor) -> Self {
        if !other.secrets.is_empty() {
            let list = Arc::make_mut(&mut self.secrets);
            for s in other.secrets.iter() {
                if !list.contains(s) {
                    list.push(s.clone());
                }
            }
        }
        self
    }

    /// Adds a secret: a key, a token, a header value. Blank values are ignored; surrounding
    /// whitespace is not part of the secret. Besides the value itself, the forms a server
    /// may echo it in are added: the credential of an `Authorization`-style value without
    /// its scheme (`Bearer x` → `x`), JSON-escaped and percent-encoded.
    pub fn add_secret(&mut self, secret: impl AsRef<str>) {
        let secret = secret.as_ref().trim();
        if secret.is_empty() {
            return;
        }
        let mut forms = vec![secret.to_owned()];
        if let Some((scheme, rest)) = secret.split_once([' ', '\t']) {
            let rest = rest.trim();
            if AUTH_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !rest.is_empty() {
                forms.push(rest.to_owned());
            }
        }
        for i in 0..forms.len() {
            let Some(form) = forms.get(i).cloned() else {
                break;
            };
            let json = json_escaped(&form);
            if json != form {
                forms.push(json);
            }
            if form.contains('/') {
                forms.push(form.replace('/', "\\/"));
            }
            let pct = percent_encoded(&form);
            if pct != form {
                forms.push(pct);
            }
        }
        let list = Arc::make_mut(&mut self.secrets);
        for form in forms {
            if !list.contains(&form) {
                list.push(form);
            }
        }
    }

    /// Whether no secret is known (key-shaped text is still redacted).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret and key-shaped piece replaced by [`REDACTED`];
    /// borrowed when nothing had to go.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut spans = Vec::new();
        self.secret_spans(text, &mut spans);
        shape_spans(text, &mut spans);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(replace_spans(text, spans))
    }

    /// [`Redactor::redact`] for bytes (a response body). Text that is not UTF-8 is read
    /// lossily first, so the result is always UTF-8.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match std::str::from_utf8(bytes) {
            Ok(text) => match self.redact(text) {
                Cow::Borrowed(_) => Cow::Borrowed(bytes),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            },
            Err(_) => {
                let lossy = String::from_utf8_lossy(bytes);
                Cow::Owned(self.redact(&lossy).into_owned().into_bytes())
            }
        }
    }

    /// A `Display` of `value` with its text redacted, for log fields:
    /// `tracing::warn!(error = %redactor.display(&err))`.
    pub fn display<'a, T: fmt::Display + ?Sized>(&'a self, value: &'a T) -> RedactedDisplay<'a, T> {
        RedactedDisplay {
            redactor: self,
            value,
        }
    }

    /// The error with its message, title, header values and body redacted.
    ///
    /// The source chain is kept as it is when no error in it shows anything to redact (its
    /// typed markers, such as a transport error's connect flag, still reach
    /// [`classify`](crate::classify)). Otherwise it is replaced by one error showing the
    /// chain's redacted text, carrying the classification the original chain gave (with a
    /// detail derived from redacted text only), so classification does not change.
    pub fn redact_provider_error(&self, err: ProviderError) -> ProviderError {
        let mut err = err.map_text(
            |t| self.redact(t).into_owned(),
            |b| self.redact_bytes(b).into_owned(),
        );
        let Some(source) = err.shared_source() else {
            return err;
        };
        let text = chain_texts(&*source);
        let redacted = self.redact(&text);
        if matches!(redacted, Cow::Borrowed(_)) {
            return err;
        }
        let redacted = redacted.into_owned();
        // Classification from the original chain (kind, status, retry hint), detail from
        // a chain holding only redacted text.
        let structural = crate::classify(&err);
        err.replace_source(Arc::new(TextError(redacted.clone())));
        let textual = crate::classify(&err);
        let mut pinned = self.redact_classified(structural);
        pinned.set_detail(textual.detail().to_owned());
        err.replace_source(Arc::new(crate::with_classification(
            TextError(redacted),
            pinned,
        )));
        err
    }

    /// The classification with its message and detail redacted.
    pub fn redact_classified(&self, mut c: ClassifiedError) -> ClassifiedError {
        if let Cow::Owned(m) = self.redact(c.message()) {
            c.set_message(m);
        }
        if let Cow::Owned(d) = self.redact(c.detail()) {
            c.set_detail(d);
        }
        c
    }

    /// The chat error (a `last_error`, an `error` event) with message and detail redacted.
    pub fn redact_chat_error(&self, mut e: ChatError) -> ChatError {
        if let Cow::Owned(m) = self.redact(&e.message) {
            e.message = m;
        }
        if let Cow::Owned(d) = self.redact(&e.detail) {
            e.detail = d;
        }
        e
    }

    /// The `retry` event payload with its message redacted.
    pub fn redact_stream_retry(&self, mut r: ChatStreamRetry) -> ChatStreamRetry {
        if let Cow::Owned(m) = self.redact(&r.error) {
            r.error = m;
        }
        r
    }

    fn secret_spans(&self, text: &str, spans: &mut Vec<(usize, usize)>) {
        let bytes = text.as_bytes();
        for secret in self.secrets.iter() {
            let whole_token_only = secret.len() < MIN_SUBSTRING_SECRET_BYTES;
            for (start, m) in text.match_indices(secret.as_str()) {
                let end = start + m.len();
                if whole_token_only {
                    let before = start
                        .checked_sub(1)
                        .and_then(|i| bytes.get(i))
                        .is_some_and(u8::is_ascii_alphanumeric);
                    let after = bytes.get(end).is_some_and(u8::is_ascii_alphanumeric);
                    if before || after {
                        continue;
                    }
                }
                spans.push((start, end));
            }
        }
    }
}

/// Redacts key-shaped text only: [`Redactor::redact`] of the empty redactor.
///
/// ```
/// assert_eq!(chaterror::redact("AKIAIOSFODNN7EXAMPLE leaked"), "[REDACTED] leaked");
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut spans = Vec::new();
    shape_spans(text, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(replace_spans(text, spans))
}

/// See [`Redactor::display`].
pub struct RedactedDisplay<'a, T: ?Sized> {
    redactor: &'a Redactor,
    value: &'a T,
}

impl<T: fmt::Display + ?Sized> fmt::Display for RedactedDisplay<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.value.to_string();
        f.write_str(&self.redactor.redact(&text))
    }
}

impl<T: fmt::Display + ?Sized> fmt::Debug for RedactedDisplay<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error that is only (already redacted) text.
#[derive(Debug)]
struct TextError(String);

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for TextError {}

/// `Display` and `Debug` of every error of a chain, one per line: everything a log line or
/// a classification could show of it.
fn chain_texts(err: &(dyn StdError + 'static)) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for node in crate::chain::Chain::new(err) {
        let _ = writeln!(out, "{node}");
        let _ = writeln!(out, "{node:?}");
    }
    out
}

/// Whether the byte before `i` ends a word (so a shape may start at `i`).
fn starts_word(bytes: &[u8], i: usize, word: fn(u8) -> bool) -> bool {
    i.checked_sub(1)
        .and_then(|j| bytes.get(j))
        .is_none_or(|&b| !word(b))
}

fn run_len(bytes: &[u8], from: usize, class: fn(u8) -> bool) -> usize {
    bytes
        .get(from..)
        .map_or(0, |rest| rest.iter().take_while(|&&b| class(b)).count())
}

fn starts_with_ignore_case(bytes: &[u8], at: usize, word: &str) -> bool {
    bytes
        .get(at..at + word.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()))
}

fn skip(bytes: &[u8], mut i: usize, class: fn(u8) -> bool) -> usize {
    while bytes.get(i).is_some_and(|&b| class(b)) {
        i += 1;
    }
    i
}

fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn quote(b: u8) -> bool {
    b == b'"' || b == b'\'' || b == b'\\'
}

/// The characters of a credential field's value.
fn value_char(b: u8) -> bool {
    !(b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\'' | b'`' | b',' | b';' | b'&' | b'<' | b'>' | b')' | b'}' | b']' | b'\\'
        ))
}

/// Finds key-shaped pieces of `text`.
fn shape_spans(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        // Every shape starts with an ASCII letter.
        if !b.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        if let Some(end) = key_shape_at(bytes, i) {
            spans.push((i, end));
            i = end;
            continue;
        }
        if let Some((start, end)) = bearer_at(bytes, i) {
            spans.push((start, end));
            i = end;
            continue;
        }
        if let Some((start, end)) = credential_field_at(bytes, i) {
            spans.push((start, end));
            i = end;
            continue;
        }
        i += 1;
    }
}

fn key_shape_at(bytes: &[u8], i: usize) -> Option<usize> {
    if !starts_word(bytes, i, alnum) {
        return None;
    }
    for shape in KEY_SHAPES {
        let p = shape.prefix.as_bytes();
        if bytes.get(i..i + p.len()) != Some(p) {
            continue;
        }
        let n = run_len(bytes, i + p.len(), shape.body);
        if n >= shape.min {
            return Some(i + p.len() + n);
        }
    }
    None
}

/// `Bearer <token>`: the token's range.
fn bearer_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    if !starts_word(bytes, i, alnum) || !starts_with_ignore_case(bytes, i, "bearer") {
        return None;
    }
    let after = i + "bearer".len();
    let start = skip(bytes, after, space);
    if start == after {
        return None;
    }
    let n = run_len(bytes, start, token68);
    (n >= MIN_BEARER_TOKEN_CHARS).then_some((start, start + n))
}

/// `<credential name>["']? *[:=] *["']?(<scheme> )?<value>`: the value's range.
fn credential_field_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    if !starts_word(bytes, i, name_char) {
        return None;
    }
    let name = CREDENTIAL_FIELDS
        .iter()
        .filter(|n| starts_with_ignore_case(bytes, i, n))
        .max_by_key(|n| n.len())?;
    let mut j = i + name.len();
    if bytes.get(j).is_some_and(|&b| name_char(b)) {
        return None;
    }
    j = skip(bytes, j, quote);
    j = skip(bytes, j, space);
    if !matches!(bytes.get(j), Some(b':' | b'=')) {
        return None;
    }
    j = skip(bytes, j + 1, space);
    j = skip(bytes, j, quote);
    for scheme in AUTH_SCHEMES {
        if starts_with_ignore_case(bytes, j, scheme) {
            let after = j + scheme.len();
            let next = skip(bytes, after, space);
            if next > after {
                j = next;
                break;
            }
        }
    }
    if bytes
        .get(j..)
        .is_some_and(|rest| rest.starts_with(REDACTED.as_bytes()))
    {
        return None; // already redacted
    }
    let n = run_len(bytes, j, value_char);
    if n < MIN_ASSIGNED_SECRET_CHARS {
        return None;
    }
    Some((j, j + n))
}

/// Replaces the (possibly overlapping) byte ranges of `text` by [`REDACTED`].
fn replace_spans(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut kept_from = 0usize;
    let mut current: Option<(usize, usize)> = None;
    for (start, end) in spans {
        match current {
            Some((s, e)) if start <= e => current = Some((s, e.max(end))),
            Some((s, e)) => {
                out.push_str(text.get(kept_from..s).unwrap_or_default());
                out.push_str(REDACTED);
                kept_from = e;
                current = Some((start, end));
            }
            None => current = Some((start, end)),
        }
    }
    if let Some((s, e)) = current {
        out.push_str(text.get(kept_from..s).unwrap_or_default());
        out.push_str(REDACTED);
        kept_from = e;
    }
    out.push_str(text.get(kept_from..).unwrap_or_default());
    out
}

/// The secret as it appears inside a JSON string (without the quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(s)
        .to_owned()
}

/// The secret percent-encoded as a URL query value (everything but RFC 3986 unreserved
/// characters).
fn percent_encoded(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        redact(text).into_owned()
    }

    #[test]
    fn key_shapes() {
        let sixteen = "a".repeat(MIN_KEY_SHAPE_CHARS);
        let fifteen = "a".repeat(MIN_KEY_SHAPE_CHARS - 1);
        assert_eq!(r(&format!("k sk-{sixteen} x")), "k [REDACTED] x");
        assert_eq!(r(&format!("k sk-{fifteen} x")), format!("k sk-{fifteen} x"));
        assert_eq!(
            r("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz_0123-xyz."),
            "[REDACTED]."
        );
        // Inside a word it is not a key prefix.
        assert_eq!(r(&format!("task-{sixteen}")), format!("task-{sixteen}"));
        assert_eq!(r("AKIAIOSFODNN7EXAMPLE"), "[REDACTED]");
        assert_eq!(r("ASIAIOSFODNN7EXAMPL"), "ASIAIOSFODNN7EXAMPL");
        assert_eq!(
            r("key=AIzaSyA-abcdefghijklmnopqrstuvwxyz0123"),
            "key=[REDACTED]"
        );
        assert_eq!(r("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), "[REDACTED]");
        assert_eq!(
            r("no keys here, sk-learn is a library"),
            "no keys here, sk-learn is a library"
        );
        assert_eq!(
            r("Incorrect API key provided: sk-***."),
            "Incorrect API key provided: sk-***."
        );
    }

    #[test]
    fn bearer_tokens() {
        let tok = "t".repeat(MIN_BEARER_TOKEN_CHARS);
        let short = "t".repeat(MIN_BEARER_TOKEN_CHARS - 1);
        assert_eq!(
            r(&format!("got Bearer {tok}, then")),
            "got Bearer [REDACTED], then"
        );
        assert_eq!(r(&format!("got bearer  {tok}")), "got bearer  [REDACTED]");
        assert_eq!(
            r(&format!("got Bearer {short}")),
            format!("got Bearer {short}")
        );
        assert_eq!(r("a bearer of bad news"), "a bearer of bad news");
    }

    #[test]
    fn credential_fields() {
        assert_eq!(r("x-api-key: abcdefgh"), "x-api-key: [REDACTED]");
        assert_eq!(r("x-api-key: abcdefg"), "x-api-key: abcdefg");
        assert_eq!(
            r(r#"{"api_key":"s3cr3t-v4lue"}"#),
            r#"{"api_key":"[REDACTED]"}"#
        );
        assert_eq!(
            r(r#"{\"api_key\": \"s3cr3t-v4lue\"}"#),
            r#"{\"api_key\": \"[REDACTED]\"}"#
        );
        assert_eq!(
            r("Authorization: Basic dXNlcjpwYXNz"),
            "Authorization: Basic [REDACTED]"
        );
        assert_eq!(r("password=hunter22&x=1"), "password=[REDACTED]&x=1");
        // Whole names only, and sentences survive.
        assert_eq!(r("max_tokens: 409600000"), "max_tokens: 409600000");
        assert_eq!(r("invalid token: expired"), "invalid token: expired");
        assert_eq!(r("invalid x-api-key"), "invalid x-api-key");
        // Idempotent.
        assert_eq!(r("x-api-key: [REDACTED]"), "x-api-key: [REDACTED]");
    }

    #[test]
    fn known_secrets_in_every_form() {
        let red = Redactor::new()
            .with_secret("  Bearer plain/secret+value  ")
            .with_secret("q\"uote")
            .with_secret("");
        assert!(!red.is_empty());
        for text in [
            "Bearer plain/secret+value",
            "plain/secret+value",
            r"plain\/secret+value",
            "plain%2Fsecret%2Bvalue",
            r#"q\"uote"#,
        ] {
            assert_eq!(red.redact(&format!("<{text}>")), "<[REDACTED]>", "{text}");
        }
        assert!(format!("{red:?}").contains("secrets"));
        assert!(!format!("{red:?}").contains("plain"));
    }

    #[test]
    fn short_secrets_only_as_whole_tokens() {
        let short = "a".repeat(MIN_SUBSTRING_SECRET_BYTES - 1);
        let long = "b".repeat(MIN_SUBSTRING_SECRET_BYTES);
        let red = Redactor::new().with_secret(&short).with_secret(&long);
        assert_eq!(red.redact(&format!("x{short}x")), format!("x{short}x"));
        assert_eq!(red.redact(&format!("x {short}.")), "x [REDACTED].");
        assert_eq!(red.redact(&format!("x{long}x")), "x[REDACTED]x");
    }

    #[test]
    fn overlapping_secrets_leave_no_piece() {
        let red = Redactor::new()
            .with_secret("abcdefgh12")
            .with_secret("12345678xy");
        assert_eq!(red.redact("<abcdefgh12345678xy>"), "<[REDACTED]>");
        assert_eq!(
            red.redact("abcdefgh12 and 12345678xy"),
            "[REDACTED] and [REDACTED]"
        );
    }

    #[test]
    fn bytes_and_non_utf8() {
        let red = Redactor::new().with_secret("secret-value-1");
        assert!(matches!(red.redact_bytes(b"clean"), Cow::Borrowed(_)));
        assert_eq!(&*red.redact_bytes(b"a secret-value-1 b"), b"a [REDACTED] b");
        let mut body = b"\xff secret-value-1".to_vec();
        body.push(b'!');
        let out = red.redact_bytes(&body);
        assert!(std::str::from_utf8(&out).unwrap().ends_with("[REDACTED]!"));
    }

    #[test]
    fn multibyte_text_is_kept_intact() {
        let red = Redactor::new().with_secret("ключ-секрет");
        assert_eq!(red.redact("é ключ-секрет ü"), "é [REDACTED] ü");
        assert_eq!(r("é sk-ééééééééééééééééé"), "é sk-ééééééééééééééééé");
    }
}
