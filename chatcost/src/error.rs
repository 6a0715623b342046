//! The crate's single error type.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, coarsely. Match on this rather than on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CostErrorKind {
    /// A price is negative, not a number, or cannot be represented exactly.
    InvalidPrice,
    /// A token count is negative.
    InvalidTokenCount,
    /// Token counts contradict each other (e.g. more cached tokens than prompt tokens).
    InconsistentUsage,
    /// A result does not fit its integer type (cost above [`crate::MAX_COST_MICROS`], or a
    /// token sum above `i64::MAX`).
    Overflow,
    /// A JSON text could not be parsed into the expected shape.
    Json,
    /// The upstream models.dev data given to a generator is larger than
    /// [`crate::MAX_UPSTREAM_JSON_BYTES`].
    UpstreamTooLarge,
    /// A provider a generator must cover is missing from the upstream data or has no models.
    MissingProviders,
    /// The generator produced no row with an input or output price.
    NoPricingData,
    /// A price seed (the price book's JSON) is empty or breaks the seed rules.
    InvalidPriceSeed,
    /// The context-limit generator produced no row.
    NoContextLimits,
    /// A context-limit table (the JSON beside the price book) is empty or breaks its rules.
    InvalidContextLimits,
}

impl CostErrorKind {
    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CostErrorKind::InvalidPrice => "invalid_price",
            CostErrorKind::InvalidTokenCount => "invalid_token_count",
            CostErrorKind::InconsistentUsage => "inconsistent_usage",
            CostErrorKind::Overflow => "overflow",
            CostErrorKind::Json => "json",
            CostErrorKind::UpstreamTooLarge => "upstream_too_large",
            CostErrorKind::MissingProviders => "missing_providers",
            CostErrorKind::NoPricingData => "no_pricing_data",
            CostErrorKind::InvalidPriceSeed => "invalid_price_seed",
            CostErrorKind::NoContextLimits => "no_context_limits",
            CostErrorKind::InvalidContextLimits => "invalid_context_limits",
        }
    }
}

impl fmt::Display for CostErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Error of every fallible operation in this crate.
///
/// Cheap to move (one pointer). [`CostError::kind`] classifies it, [`CostError::field`]
/// names the price or token field at fault when there is one, and
/// [`std::error::Error::source`] keeps the underlying parse error.
pub struct CostError {
    inner: Box<Inner>,
}

struct Inner {
    kind: CostErrorKind,
    field: Option<String>,
    message: String,
    source: Option<BoxError>,
}

impl CostError {
    pub(crate) fn new(kind: CostErrorKind, message: impl Into<String>) -> Self {
        CostError {
            inner: Box::new(Inner {
                kind,
                field: None,
                message: message.into(),
                source: None,
            }),
        }
    }

    pub(crate) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.inner.field = Some(field.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The classification of this error.
    pub fn kind(&self) -> CostErrorKind {
        self.inner.kind
    }

    /// The JSON field at fault (`input_price_per_million_tokens`, `prompt_tokens`, …), if
    /// the error concerns one field. Suitable for a validation response's `field`.
    pub fn field(&self) -> Option<&str> {
        self.inner.field.as_deref()
    }

    /// Whether a price was rejected.
    pub fn is_invalid_price(&self) -> bool {
        self.inner.kind == CostErrorKind::InvalidPrice
    }

    /// Whether token counts were rejected (negative or contradictory).
    pub fn is_invalid_usage(&self) -> bool {
        matches!(
            self.inner.kind,
            CostErrorKind::InvalidTokenCount | CostErrorKind::InconsistentUsage
        )
    }

    /// Whether a number did not fit its integer type.
    pub fn is_overflow(&self) -> bool {
        self.inner.kind == CostErrorKind::Overflow
    }

    /// Whether a JSON text could not be parsed.
    pub fn is_json(&self) -> bool {
        self.inner.kind == CostErrorKind::Json
    }

    /// Whether a generator or loader of the embedded models.dev tables (the price seed and
    /// the context-limit table) refused its input.
    pub fn is_price_seed(&self) -> bool {
        matches!(
            self.inner.kind,
            CostErrorKind::UpstreamTooLarge
                | CostErrorKind::MissingProviders
                | CostErrorKind::NoPricingData
                | CostErrorKind::InvalidPriceSeed
                | CostErrorKind::NoContextLimits
                | CostErrorKind::InvalidContextLimits
        )
    }
}

impl fmt::Debug for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CostError");
        d.field("kind", &self.inner.kind);
        if let Some(field) = &self.inner.field {
            d.field("field", field);
        }
        d.field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl StdError for CostError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<CostError>();
        assert_eq!(
            std::mem::size_of::<CostError>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn predicates_and_source_chain() {
        let parse = codersdk::parse_decimal("x").err();
        let mut e = CostError::new(CostErrorKind::InvalidPrice, "bad price").with_field("p");
        if let Some(p) = parse {
            e = e.with_source(p);
        }
        assert!(e.is_invalid_price());
        assert!(!e.is_invalid_usage() && !e.is_overflow() && !e.is_json() && !e.is_price_seed());
        assert_eq!(e.field(), Some("p"));
        assert_eq!(e.to_string(), "bad price");
        assert!(e.source().is_some());
        assert_eq!(e.kind().to_string(), "invalid_price");
        assert!(format!("{e:?}").contains("InvalidPrice"));
        let u = CostError::new(CostErrorKind::InconsistentUsage, "u");
        assert!(u.is_invalid_usage());
        assert!(CostError::new(CostErrorKind::NoPricingData, "n").is_price_seed());
        assert!(CostError::new(CostErrorKind::InvalidContextLimits, "c").is_price_seed());
        assert_eq!(CostErrorKind::NoContextLimits.as_str(), "no_context_limits");
    }
}
