//! The crate's single error type, pre-classified for `chaterror`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use chaterror::ClassifiedError;
use codersdk::ChatErrorKind;

use crate::catalog::{Provider, ProviderCatalog};

/// Longest piece of caller input (a model name, a provider name) repeated in an error
/// message, in bytes; longer input is cut on a character boundary and marked with `…`.
pub const MAX_ECHOED_INPUT_BYTES: usize = 256;

/// What went wrong, coarsely. Match on this rather than on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No usable API key for the provider (and no ambient credentials). Classified
    /// `missing_key`.
    MissingApiKey,
    /// The provider needs a base URL and none is configured (Azure). Classified `config`.
    MissingBaseUrl,
    /// A base URL is not an absolute `http`/`https` URL. Classified `config`.
    InvalidBaseUrl,
    /// An API key is blank, too long or contains control characters. Classified `config`.
    InvalidApiKey,
    /// A provider name is not one of the supported ids. Classified `config`.
    UnsupportedProvider,
    /// A model reference is blank. Classified `config`.
    ModelRequired,
    /// A model reference names no provider and matches no known model family. Classified
    /// `config`.
    UnknownModel,
    /// An inline image is at or above the provider's cap. Classified `config`.
    ImageTooLarge,
    /// An administrator disabled the provider. Classified `provider_disabled`.
    ProviderDisabled,
}

impl ErrorKind {
    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MissingApiKey => "missing_api_key",
            ErrorKind::MissingBaseUrl => "missing_base_url",
            ErrorKind::InvalidBaseUrl => "invalid_base_url",
            ErrorKind::InvalidApiKey => "invalid_api_key",
            ErrorKind::UnsupportedProvider => "unsupported_provider",
            ErrorKind::ModelRequired => "model_required",
            ErrorKind::UnknownModel => "unknown_model",
            ErrorKind::ImageTooLarge => "image_too_large",
            ErrorKind::ProviderDisabled => "provider_disabled",
        }
    }

    /// The chat error kind this failure is reported as: `missing_key` for
    /// [`ErrorKind::MissingApiKey`], `provider_disabled` for
    /// [`ErrorKind::ProviderDisabled`], `config` for everything else.
    pub fn chat_error_kind(self) -> ChatErrorKind {
        match self {
            ErrorKind::MissingApiKey => ChatErrorKind::MissingKey,
            ErrorKind::ProviderDisabled => ChatErrorKind::ProviderDisabled,
            _ => ChatErrorKind::Config,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// Error of every fallible operation in this crate.
///
/// Cheap to move (one pointer) and to clone. [`Error::kind`] says what went wrong,
/// [`Error::provider`] which provider it concerns. Every error is **pre-classified** for
/// the chat loop: its source chain holds a [`chaterror::Error`] carrying
/// [`Error::classification`], so [`chaterror::classify`] of this error, or of any error that
/// wraps it, returns `missing_key`, `provider_disabled` or `config` (never retryable)
/// without looking at the text. No message ever contains an API key or a base URL.
///
/// ```
/// use chatprovider::{Error, ProviderApiKeys};
/// use codersdk::ChatErrorKind;
///
/// let err: Error = ProviderApiKeys::new().client_credentials("openai").unwrap_err();
/// assert_eq!(err.to_string(), "OPENAI_API_KEY is not set");
/// assert!(err.is_missing_key());
/// assert_eq!(chaterror::classify(&err).kind(), Some(&ChatErrorKind::MissingKey));
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    provider: Option<Provider>,
    message: String,
    file_name: Option<String>,
    user_message: Option<String>,
    source: Option<SharedError>,
    classified: ClassifiedError,
    // The pre-classified node of the source chain; rebuilt whenever a field changes.
    wrapper: chaterror::Error,
}

/// The error a `chaterror` wrapper holds: this error's text and its underlying cause.
#[derive(Debug)]
struct Cause {
    message: String,
    source: Option<SharedError>,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        let classified = ClassifiedError::default();
        let wrapper = chaterror::with_classification(
            Cause {
                message: message.clone(),
                source: None,
            },
            classified.clone(),
        );
        let mut err = Error {
            inner: Box::new(Inner {
                kind,
                provider: None,
                message,
                file_name: None,
                user_message: None,
                source: None,
                classified,
                wrapper,
            }),
        };
        err.refresh();
        err
    }

    fn refresh(&mut self) {
        let inner = &mut *self.inner;
        let mut builder = ClassifiedError::builder(inner.kind.chat_error_kind())
            .provider(inner.provider.map(Provider::as_str).unwrap_or_default())
            .retryable(false);
        if let Some(message) = &inner.user_message {
            builder = builder.message(message.clone());
        } else if inner.kind.chat_error_kind() == ChatErrorKind::Config {
            // The generic config sentence gains the concrete reason; the missing-key and
            // disabled sentences are complete on their own.
            builder = builder.detail(inner.message.clone());
        }
        inner.classified = builder.build();
        inner.wrapper = chaterror::with_classification(
            Cause {
                message: inner.message.clone(),
                source: inner.source.clone(),
            },
            inner.classified.clone(),
        );
    }

    pub(crate) fn with_provider(mut self, provider: Provider) -> Self {
        self.inner.provider = Some(provider);
        self.refresh();
        self
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self.refresh();
        self
    }

    pub(crate) fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.inner.file_name = Some(name.into());
        self
    }

    pub(crate) fn with_user_message(mut self, message: impl Into<String>) -> Self {
        self.inner.user_message = Some(message.into());
        self.refresh();
        self
    }

    /// The missing-key error: `OPENAI_API_KEY is not set` and friends, or
    /// `API key for provider "bedrock" is not set` for providers without a variable.
    pub(crate) fn missing_key(provider: Provider) -> Self {
        let message = match provider.api_key_env_var() {
            Some(var) => format!("{var} is not set"),
            None => format!("API key for provider \"{}\" is not set", provider.as_str()),
        };
        Error::new(ErrorKind::MissingApiKey, message).with_provider(provider)
    }

    pub(crate) fn missing_base_url(provider: Provider) -> Self {
        let message = match provider {
            Provider::Azure => "AZURE_OPENAI_BASE_URL is not set".to_owned(),
            other => format!("base URL for provider \"{}\" is not set", other.as_str()),
        };
        Error::new(ErrorKind::MissingBaseUrl, message).with_provider(provider)
    }

    pub(crate) fn unsupported_provider(name: &str) -> Self {
        Error::new(
            ErrorKind::UnsupportedProvider,
            format!("unsupported model provider {}", quote_bounded(name)),
        )
    }

    pub(crate) fn model_required() -> Self {
        Error::new(ErrorKind::ModelRequired, "model is required")
    }

    pub(crate) fn unknown_model(model: &str) -> Self {
        Error::new(
            ErrorKind::UnknownModel,
            format!("unknown model {}", quote_bounded(model)),
        )
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The provider the error concerns, when known.
    pub fn provider(&self) -> Option<Provider> {
        self.inner.provider
    }

    /// The attachment's file name, for [`ErrorKind::ImageTooLarge`].
    pub fn file_name(&self) -> Option<&str> {
        self.inner.file_name.as_deref()
    }

    /// The classification [`chaterror::classify`] returns for this error: kind
    /// `missing_key` or `config`, never retryable, with the provider set.
    pub fn classification(&self) -> &ClassifiedError {
        &self.inner.classified
    }

    /// The pre-classified `chaterror` error this one carries, for callers that keep
    /// `chaterror::Error`s.
    pub fn to_chat_error(&self) -> chaterror::Error {
        self.inner.wrapper.clone()
    }

    /// Whether no usable API key exists (kind `missing_key`).
    pub fn is_missing_key(&self) -> bool {
        self.inner.kind == ErrorKind::MissingApiKey
    }

    /// Whether this is a configuration problem (kind `config`).
    pub fn is_config(&self) -> bool {
        self.inner.kind.chat_error_kind() == ChatErrorKind::Config
    }

    /// Whether an administrator disabled the provider (kind `provider_disabled`).
    pub fn is_provider_disabled(&self) -> bool {
        self.inner.kind == ErrorKind::ProviderDisabled
    }

    /// Whether a model reference could not be resolved (blank or unknown).
    pub fn is_model(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::ModelRequired | ErrorKind::UnknownModel
        )
    }

    /// Whether an inline image was too large for the provider.
    pub fn is_image_too_large(&self) -> bool {
        self.inner.kind == ErrorKind::ImageTooLarge
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("chatprovider::Error");
        d.field("kind", &self.inner.kind);
        if let Some(p) = self.inner.provider {
            d.field("provider", &p);
        }
        d.field("message", &self.inner.message);
        if let Some(name) = &self.inner.file_name {
            d.field("file_name", name);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.inner.wrapper)
    }
}

impl From<Error> for chaterror::Error {
    fn from(err: Error) -> Self {
        err.inner.wrapper
    }
}

/// Quotes caller input for an error message the way Go's `%q` does (escapes included),
/// cut to [`MAX_ECHOED_INPUT_BYTES`].
pub(crate) fn quote_bounded(s: &str) -> String {
    if s.len() <= MAX_ECHOED_INPUT_BYTES {
        return format!("{s:?}");
    }
    let mut end = MAX_ECHOED_INPUT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let head = s.get(..end).unwrap_or_default();
    format!("{:?}", format!("{head}…"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn missing_key_texts() {
        // Bedrock has no variable of its own.
        let table = [
            (Provider::Anthropic, "ANTHROPIC_API_KEY is not set"),
            (Provider::Azure, "AZURE_OPENAI_API_KEY is not set"),
            (
                Provider::Bedrock,
                "API key for provider \"bedrock\" is not set",
            ),
            (Provider::Google, "GOOGLE_API_KEY is not set"),
            (Provider::OpenAi, "OPENAI_API_KEY is not set"),
            (Provider::OpenAiCompat, "OPENAI_COMPAT_API_KEY is not set"),
            (Provider::OpenRouter, "OPENROUTER_API_KEY is not set"),
            (Provider::Vercel, "VERCEL_API_KEY is not set"),
        ];
        for (p, text) in table {
            let e = Error::missing_key(p);
            assert_eq!(e.to_string(), text);
            assert_eq!(e.kind(), ErrorKind::MissingApiKey);
            assert_eq!(e.provider(), Some(p));
            assert!(e.is_missing_key() && !e.is_config());
            let c = chaterror::classify(&e);
            assert_eq!(c.kind(), Some(&ChatErrorKind::MissingKey));
            assert!(!c.is_retryable());
            assert_eq!(c.provider(), p.as_str());
            assert_eq!(
                c.message(),
                "This conversation was started with an API key that is no longer available. \
                 Send your message again to continue."
            );
            assert_eq!(&c, e.classification());
        }
    }

    #[test]
    fn config_texts_and_classification() {
        let table = [
            (
                Error::model_required(),
                "model is required",
                ErrorKind::ModelRequired,
            ),
            (
                Error::unknown_model("llama-3"),
                "unknown model \"llama-3\"",
                ErrorKind::UnknownModel,
            ),
            (
                Error::unsupported_provider("acme"),
                "unsupported model provider \"acme\"",
                ErrorKind::UnsupportedProvider,
            ),
            (
                Error::missing_base_url(Provider::Azure),
                "AZURE_OPENAI_BASE_URL is not set",
                ErrorKind::MissingBaseUrl,
            ),
            (
                Error::missing_base_url(Provider::OpenAiCompat),
                "base URL for provider \"openai-compat\" is not set",
                ErrorKind::MissingBaseUrl,
            ),
        ];
        for (e, text, kind) in table {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.kind(), kind);
            assert!(e.is_config());
            let c = chaterror::classify(&e);
            assert_eq!(c.kind(), Some(&ChatErrorKind::Config), "{text}");
            assert!(!c.is_retryable());
            assert_eq!(c.detail(), text);
            // Wrapping further keeps the classification.
            let wrapped = std::io::Error::other(e.clone());
            assert_eq!(chaterror::classify(&wrapped), c);
            let chat: chaterror::Error = e.into();
            assert_eq!(chat.to_string(), text);
            assert_eq!(chaterror::classify(&chat), c);
        }
        assert!(Error::model_required().is_model());
        assert!(Error::unknown_model("x").is_model());
    }

    #[test]
    fn source_chain_keeps_the_cause() {
        let parse = url::Url::parse("not a url").unwrap_err();
        let e = Error::new(
            ErrorKind::InvalidBaseUrl,
            "base URL is not a valid absolute URL",
        )
        .with_source(parse)
        .with_provider(Provider::OpenAi);
        let mut texts = Vec::new();
        let mut node: Option<&(dyn StdError + 'static)> = Some(&e);
        while let Some(n) = node {
            texts.push(n.to_string());
            node = n.source();
        }
        assert_eq!(
            texts.last().map(String::as_str),
            Some(parse.to_string().as_str())
        );
        assert!(format!("{e:?}").contains("InvalidBaseUrl"));
        assert_eq!(e.kind().to_string(), "invalid_base_url");
    }

    #[test]
    fn quoting_is_bounded_and_escaped() {
        assert_eq!(quote_bounded("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "é".repeat(MAX_ECHOED_INPUT_BYTES);
        let q = quote_bounded(&long);
        assert!(q.len() <= MAX_ECHOED_INPUT_BYTES + 8, "{}", q.len());
        assert!(q.ends_with("…\""));
        let exact = "a".repeat(MAX_ECHOED_INPUT_BYTES);
        assert_eq!(quote_bounded(&exact), format!("\"{exact}\""));
        let over = "a".repeat(MAX_ECHOED_INPUT_BYTES + 1);
        assert!(quote_bounded(&over).ends_with("a…\""));
    }
}
