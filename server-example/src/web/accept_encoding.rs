//! The `Accept-Encoding` request header (RFC 9110 §12.5.3), read to pick which of a page
//! file's precompressed variants to send (docs/web.md, "Compression").
//!
//! [`AcceptEncoding`] is an extractor: it never rejects a request. A header that is absent,
//! longer than [`MAX_ACCEPT_ENCODING_LEN`], not visible ASCII or not of the header's syntax
//! is read as accepting no coding, so the file is sent as it is (the identity): never wrong,
//! only bigger. Likewise when every coding the file has is refused, even if the client
//! refused the identity too (`identity;q=0`, `*;q=0`): RFC 9110 allows a 406 there, but a
//! readable page beats an error page.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header::ACCEPT_ENCODING;
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// Longest `Accept-Encoding` value read, in bytes, summed over its field lines (the commas
/// joining them not counted). Browsers send
/// about 25 (`gzip, deflate, br, zstd`); a longer value is not parsed at all, and the file
/// goes uncompressed.
pub const MAX_ACCEPT_ENCODING_LEN: usize = 256;

/// A content coding the page's files are served in.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    /// Brotli (`br`), RFC 7932.
    Brotli,
    /// gzip (`gzip`, also read as `x-gzip`), RFC 1952.
    Gzip,
    /// No coding: the file as it is.
    Identity,
}

impl ContentCoding {
    /// The `Content-Encoding` value of a response in this coding; none for the identity,
    /// which is sent without the header.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Self::Brotli => Some("br"),
            Self::Gzip => Some("gzip"),
            Self::Identity => None,
        }
    }
}

/// A quality value in thousandths (`q=0.5` is 500): RFC 9110 §12.4.2 allows three decimals.
type Quality = u16;

/// The highest quality, `q=1`, which a coding listed without a weight has.
const FULL_QUALITY: Quality = 1000;

/// The codings a request accepts, with their quality values. A coding the header does not
/// name is not in it (`None`); `*` stands for every coding not named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    br: Option<Quality>,
    gzip: Option<Quality>,
    identity: Option<Quality>,
    any: Option<Quality>,
}

impl<S: Send + Sync> FromRequestParts<S> for AcceptEncoding {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

impl AcceptEncoding {
    /// Reads the request's `Accept-Encoding` field lines as one list (RFC 9110 §5.3: lines
    /// of a list-valued field are joined with commas). Anything unreadable is read as no
    /// header: the identity only.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut joined = String::new();
        let mut read = 0;
        for line in headers.get_all(ACCEPT_ENCODING) {
            let Ok(line) = line.to_str() else {
                return Self::default();
            };
            read += line.len();
            if read > MAX_ACCEPT_ENCODING_LEN {
                return Self::default();
            }
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(line);
        }
        Self::parse(&joined).unwrap_or_default()
    }

    /// Parses one `Accept-Encoding` value: comma-separated codings, each with an optional
    /// `;q=` weight. `None` when it does not follow that syntax (a bad token, a weight that
    /// is not a quality value, any other parameter). Codings other than `br`, `gzip`,
    /// `x-gzip`, `identity` and `*` are valid and ignored. A coding named twice keeps its
    /// lowest weight, so a refusal anywhere in the list stands.
    pub fn parse(value: &str) -> Option<Self> {
        let mut accepted = Self::default();
        for element in value.split(',') {
            let element = element.trim_matches(is_ows);
            if element.is_empty() {
                // The list syntax allows empty elements (`gzip, , br`).
                continue;
            }
            let mut pieces = element.split(';');
            let coding = pieces.next().unwrap_or_default().trim_matches(is_ows);
            if coding.is_empty() || !coding.bytes().all(is_tchar) {
                return None;
            }
            let mut quality = FULL_QUALITY;
            let mut weighted = false;
            for parameter in pieces {
                let (name, value) = parameter.trim_matches(is_ows).split_once('=')?;
                if weighted || !name.eq_ignore_ascii_case("q") {
                    return None;
                }
                quality = parse_quality(value)?;
                weighted = true;
            }
            let slot = if coding.eq_ignore_ascii_case("br") {
                &mut accepted.br
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                &mut accepted.gzip
            } else if coding.eq_ignore_ascii_case("identity") {
                &mut accepted.identity
            } else if coding == "*" {
                &mut accepted.any
            } else {
                continue;
            };
            *slot = Some(slot.map_or(quality, |q| q.min(quality)));
        }
        Some(accepted)
    }

    /// The coding to send a file in, of the compressed variants it has (`offered`) and the
    /// identity, which every file has. The highest quality wins; on a tie Brotli (the
    /// smaller) beats gzip, and either beats the identity. The identity's quality is its
    /// own weight, else that of `*`; a header naming neither leaves it acceptable but last,
    /// sent only when no offered coding is accepted. It is also what is sent when nothing is
    /// acceptable at all.
    pub fn choose(&self, offered: &[ContentCoding]) -> ContentCoding {
        let mut best: Option<(Quality, ContentCoding)> = None;
        for coding in [ContentCoding::Brotli, ContentCoding::Gzip] {
            if !offered.contains(&coding) {
                continue;
            }
            let quality = match coding {
                ContentCoding::Brotli => self.br,
                ContentCoding::Gzip => self.gzip,
                ContentCoding::Identity => None,
            }
            .or(self.any)
            .unwrap_or(0);
            // Strictly greater: of equal qualities the one tried first stays.
            if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, coding));
            }
        }
        match (best, self.identity.or(self.any)) {
            (Some((q, _)), Some(identity)) if identity > q => ContentCoding::Identity,
            (Some((_, coding)), _) => coding,
            (None, _) => ContentCoding::Identity,
        }
    }
}

/// Optional whitespace (RFC 9110 §5.6.3): spaces and tabs.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A quality value (RFC 9110 §12.4.2): `0` to `1` with at most three decimals, in
/// thousandths.
fn parse_quality(value: &str) -> Option<Quality> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |n: Quality, b| n * 10 + Quality::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(FULL_QUALITY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use ContentCoding::{Brotli, Gzip, Identity};

    const BOTH: &[ContentCoding] = &[Brotli, Gzip];

    /// The coding chosen for a file with both variants, or `None` when the value does not
    /// parse.
    fn chosen(value: &str) -> Option<ContentCoding> {
        AcceptEncoding::parse(value).map(|a| a.choose(BOTH))
    }

    #[test]
    fn browsers_get_brotli_and_others_what_they_name() {
        assert_eq!(chosen("gzip, deflate, br, zstd"), Some(Brotli));
        assert_eq!(chosen("gzip, deflate"), Some(Gzip));
        assert_eq!(chosen("x-gzip"), Some(Gzip));
        assert_eq!(chosen("GZIP"), Some(Gzip));
        assert_eq!(chosen("deflate, zstd, compress"), Some(Identity));
        assert_eq!(chosen("identity"), Some(Identity));
        assert_eq!(chosen(""), Some(Identity));
        assert_eq!(chosen(" , ,\t"), Some(Identity));
        // Only what the file has is offered.
        let accepted = AcceptEncoding::parse("br, gzip").unwrap_or_default();
        assert_eq!(accepted.choose(&[Gzip]), Gzip);
        assert_eq!(accepted.choose(&[]), Identity);
    }

    #[test]
    fn quality_values_rank_the_codings_and_zero_refuses() {
        assert_eq!(chosen("br;q=0.5, gzip"), Some(Gzip));
        assert_eq!(chosen("br;q=0.5, gzip;q=0.501"), Some(Gzip));
        assert_eq!(chosen("gzip;q=0.5, br;q=0.5"), Some(Brotli));
        assert_eq!(chosen("br;q=0, gzip;q=0"), Some(Identity));
        assert_eq!(chosen("br;q=0.000, gzip;Q=0.001"), Some(Gzip));
        assert_eq!(chosen("gzip ; q=1.000 , br;q=0.999"), Some(Gzip));
        // A coding named twice keeps its lowest weight.
        assert_eq!(chosen("br, br;q=0, gzip;q=0.1"), Some(Gzip));
        // The identity ranks by its weight; on a tie, compression wins.
        assert_eq!(chosen("gzip;q=0.5, identity"), Some(Identity));
        assert_eq!(chosen("gzip;q=0.5, identity;q=0.5"), Some(Gzip));
        assert_eq!(chosen("gzip;q=0.1"), Some(Gzip));
        // Refusing everything still gets the identity.
        assert_eq!(chosen("identity;q=0"), Some(Identity));
        assert_eq!(chosen("*;q=0"), Some(Identity));
    }

    #[test]
    fn the_wildcard_stands_for_every_coding_not_named() {
        assert_eq!(chosen("*"), Some(Brotli));
        assert_eq!(chosen("*, br;q=0"), Some(Gzip));
        assert_eq!(chosen("*;q=0, gzip"), Some(Gzip));
        assert_eq!(chosen("*;q=0.5, gzip;q=0.4"), Some(Brotli));
        assert_eq!(chosen("*;q=0.5, identity;q=1"), Some(Identity));
        assert_eq!(chosen("*;q=0.5, br;q=0, gzip;q=0"), Some(Identity));
    }

    #[test]
    fn malformed_values_do_not_parse() {
        for bad in [
            "gzip;q=1.1",
            "gzip;q=1.0001",
            "gzip;q=0.0001",
            "gzip;q=2",
            "gzip;q=-0.5",
            "gzip;q=.5",
            "gzip;q=",
            "gzip;q",
            "gzip;q=0.5;q=0.5",
            "gzip;level=9",
            "gzip;",
            "gz ip",
            "gzip/br",
            ";q=1",
            "br;q=0.5x",
        ] {
            assert_eq!(AcceptEncoding::parse(bad), None, "{bad}");
        }
        // As a header, each is read as accepting nothing: the identity.
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br;q=2, gzip"));
        assert_eq!(
            AcceptEncoding::from_headers(&headers).choose(BOTH),
            Identity
        );
    }

    #[test]
    fn quality_values_have_at_most_three_decimals() {
        assert_eq!(parse_quality("0"), Some(0));
        assert_eq!(parse_quality("0."), Some(0));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.05"), Some(50));
        assert_eq!(parse_quality("0.999"), Some(999));
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("1.001"), None);
        assert_eq!(parse_quality("0.9999"), None);
        assert_eq!(parse_quality("00.5"), None);
        assert_eq!(parse_quality("0.5 "), None);
    }

    #[test]
    fn the_header_is_read_up_to_its_limit_over_all_its_lines() {
        let headers = |lines: &[&str]| {
            let mut headers = HeaderMap::new();
            for line in lines {
                if let Ok(value) = HeaderValue::from_str(line) {
                    headers.append(ACCEPT_ENCODING, value);
                }
            }
            AcceptEncoding::from_headers(&headers).choose(BOTH)
        };
        assert_eq!(headers(&[]), Identity);
        assert_eq!(headers(&["gzip"]), Gzip);
        // Several lines are one list.
        assert_eq!(headers(&["gzip;q=0.5", "br;q=0.2"]), Gzip);
        assert_eq!(headers(&["gzip;q=0.5", "identity"]), Identity);
        // `gzip` padded with spaces to exactly the limit is read; a byte more is not.
        let padded = |len: usize| format!("{:<len$}", "gzip");
        assert_eq!(headers(&[&padded(MAX_ACCEPT_ENCODING_LEN)]), Gzip);
        assert_eq!(headers(&[&padded(MAX_ACCEPT_ENCODING_LEN + 1)]), Identity);
        // The limit counts every line.
        let half = MAX_ACCEPT_ENCODING_LEN / 2;
        assert_eq!(headers(&[&padded(half), &padded(half)]), Gzip);
        assert_eq!(headers(&[&padded(half), &padded(half + 1)]), Identity);
        // Bytes outside visible ASCII: not read.
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(b"gzip, \xffbr") {
            headers.insert(ACCEPT_ENCODING, value);
        }
        assert_eq!(
            AcceptEncoding::from_headers(&headers).choose(BOTH),
            Identity
        );
    }
}
