//! [`Error`]: an error that carries its classification, and the ways one is made.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{BoxError, ClassifiedError};

/// An error with its classification attached, or the reason [`retry`](crate::retry())
/// stopped.
///
/// It keeps the error it was made from: [`get_ref`](Self::get_ref) returns it and
/// [`source`](StdError::source) leads to it. [`classify`](crate::classify) of an `Error` (or
/// of any error whose chain contains one) returns the attached classification unchanged.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    classified: Option<ClassifiedError>,
    // Shared so that `Error` is `Clone` and a caller's cancel cause can be returned as is.
    source: Arc<dyn StdError + Send + Sync + 'static>,
}

/// Why an [`Error`] exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A classification was attached with [`with_classification`](crate::with_classification).
    Classified,
    /// [`retry`](crate::retry()) stopped because the error is not retryable.
    NotRetryable,
    /// [`retry`](crate::retry()) made [`MAX_ATTEMPTS`](crate::retry::MAX_ATTEMPTS) attempts
    /// and all failed.
    RetriesExhausted,
    /// [`retry`](crate::retry()) stopped because the caller cancelled. The source is the
    /// caller's cancel cause, or [`Canceled`](crate::Canceled).
    Canceled,
}

/// Attaches a classification to an error so that every later [`classify`](crate::classify)
/// of it, even after further wrapping, returns `classified` (normalized) instead of deriving
/// one.
///
/// The result shows `err`'s text. Use it for failures the caller understands better than
/// the text does: a startup timeout, a missing API key, a content-filter block.
///
/// ```
/// use chaterror::{classify, with_classification, Canceled, ChatErrorKind, ClassifiedError};
///
/// let timeout = ClassifiedError::builder(ChatErrorKind::StartupTimeout)
///     .provider("openai")
///     .retryable(true)
///     .build();
/// let err = with_classification(Canceled, timeout.clone());
/// assert_eq!(err.to_string(), "context canceled");
/// assert_eq!(classify(&err), timeout);
/// ```
pub fn with_classification(err: impl Into<BoxError>, classified: ClassifiedError) -> Error {
    Error::new(
        ErrorKind::Classified,
        Some(classified.normalized()),
        Arc::from(err.into()),
    )
}

impl Error {
    fn new(
        kind: ErrorKind,
        classified: Option<ClassifiedError>,
        source: Arc<dyn StdError + Send + Sync + 'static>,
    ) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                classified,
                source,
            }),
        }
    }

    pub(crate) fn not_retryable(err: BoxError, classified: ClassifiedError) -> Self {
        Error::new(ErrorKind::NotRetryable, Some(classified), Arc::from(err))
    }

    pub(crate) fn retries_exhausted(err: BoxError, classified: ClassifiedError) -> Self {
        Error::new(
            ErrorKind::RetriesExhausted,
            Some(classified),
            Arc::from(err),
        )
    }

    pub(crate) fn canceled(cause: Arc<dyn StdError + Send + Sync + 'static>) -> Self {
        Error::new(ErrorKind::Canceled, None, cause)
    }

    /// Why this error exists.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The attached classification; `None` for [`ErrorKind::Canceled`], whose
    /// classification is that of its cause.
    pub fn classification(&self) -> Option<&ClassifiedError> {
        self.inner.classified.as_ref()
    }

    /// Whether the caller cancelled a [`retry`](crate::retry()).
    pub fn is_canceled(&self) -> bool {
        self.inner.kind == ErrorKind::Canceled
    }

    /// Whether [`retry`](crate::retry()) gave up after its last attempt.
    pub fn is_retries_exhausted(&self) -> bool {
        self.inner.kind == ErrorKind::RetriesExhausted
    }

    /// Whether the attached classification says a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        self.classification()
            .is_some_and(ClassifiedError::is_retryable)
    }

    /// The upstream HTTP status of the attached classification.
    pub fn status(&self) -> Option<u16> {
        self.classification().and_then(ClassifiedError::status)
    }

    /// The provider's minimum retry delay from the attached classification.
    pub fn retry_after(&self) -> Duration {
        self.classification()
            .map_or(Duration::ZERO, ClassifiedError::retry_after)
    }

    /// The error this one was made from (for [`ErrorKind::Canceled`], the cancel cause).
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner.source
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.kind {
            ErrorKind::RetriesExhausted => write!(
                f,
                "max retry attempts ({}) exceeded: {}",
                crate::retry::MAX_ATTEMPTS,
                self.inner.source
            ),
            _ => fmt::Display::fmt(&self.inner.source, f),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("chaterror::Error")
            .field("kind", &self.inner.kind)
            .field("classified", &self.inner.classified)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.inner.source)
    }
}
