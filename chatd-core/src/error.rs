//! The crate's single error type.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, coarsely. Match on this rather than on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A key's text is not the base64 encoding of exactly [`crate::KEY_LEN`] bytes.
    InvalidKey,
    /// A key id is empty, longer than [`crate::MAX_KEY_ID_LEN`], or uses characters outside
    /// `A–Z a–z 0–9 . _ -`.
    InvalidKeyId,
    /// Two keys of one keyring share an id.
    DuplicateKeyId,
    /// The keyring has no key with the id a ciphertext (or a call) names.
    UnknownKeyId,
    /// The keyring has a key with the ciphertext's id, but not the key that sealed it: its
    /// key check differs, so the id was reused for different key bytes.
    KeyMismatch,
    /// The keyring configuration is unusable (empty, or the change would leave no active key).
    InvalidKeyring,
    /// The text is not a sealed secret in any format this crate writes.
    MalformedCiphertext,
    /// The text is a sealed secret of a format version this build does not know (written by a
    /// newer version).
    UnsupportedVersion,
    /// Authentication failed: the ciphertext was altered, or it is being opened with other
    /// associated data than it was sealed with (for example copied to another row).
    DecryptionFailed,
    /// A plaintext is longer than [`crate::MAX_PLAINTEXT_LEN`], or a sealed text longer than
    /// [`crate::MAX_SEALED_LEN`].
    TooLarge,
    /// The operating system's random number generator failed.
    Random,
    /// A decrypted secret is not UTF-8 text.
    NotUtf8,
    /// A chat or owner already has the configured maximum number of live subscribers.
    TooManySubscribers,
    /// A row the operation needs does not exist (a chat to lock, or a referenced user,
    /// organization or chat named by a foreign key).
    NotFound,
    /// The write would break a uniqueness rule (a taken username, organization name, …).
    Conflict,
    /// An argument is unusable before the database is asked (an unsupported database URL,
    /// an invalid schema name), or the request is refused by a chat rule that maps to
    /// HTTP 400: sending to or promoting in an archived chat.
    InvalidArgument,
    /// The chat's queue already holds [`crate::store::MAX_QUEUED_MESSAGES`] messages
    /// (HTTP 429 "Message queue is full.").
    QueueFull,
    /// A worker write named a lease the chat no longer honours (released, recovered,
    /// edited, promoted or claimed again): nothing was written and the worker must stop
    /// (HTTP 409 where it surfaces).
    LeaseLost,
    /// The caller may read the chat but not change it (an owner-only write; HTTP 403).
    Forbidden,
    /// A usage limit refuses the request (HTTP 409 "Chat usage limit exceeded.").
    UsageLimit,
    /// The engine is shutting down and takes no new work (HTTP 503).
    ShuttingDown,
    /// No model config was named (or the named ones cannot be used) and there is no usable
    /// default model config: "no default model config" (HTTP 400). A turn that meets it
    /// fails; chat creation answers 400.
    NoDefaultModelConfig,
    /// The database failed, or could not be reached, or a migration failed.
    Database,
    /// A server outside chatd that the operation needed (an MCP server's OAuth2
    /// authorization server) failed or refused (HTTP 502). The message is chatd's own
    /// summary — status and a registered error code at most — never the upstream's text,
    /// which may echo secrets.
    Upstream,
    /// A stored value could not be decoded (an id that is not a UUID, malformed JSON,
    /// content of an unknown version). The row was written by something other than this
    /// store, or by a newer version.
    CorruptRow,
}

impl ErrorKind {
    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::InvalidKeyId => "invalid_key_id",
            ErrorKind::DuplicateKeyId => "duplicate_key_id",
            ErrorKind::UnknownKeyId => "unknown_key_id",
            ErrorKind::KeyMismatch => "key_mismatch",
            ErrorKind::InvalidKeyring => "invalid_keyring",
            ErrorKind::MalformedCiphertext => "malformed_ciphertext",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::DecryptionFailed => "decryption_failed",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Random => "random",
            ErrorKind::NotUtf8 => "not_utf8",
            ErrorKind::TooManySubscribers => "too_many_subscribers",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::LeaseLost => "lease_lost",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::UsageLimit => "usage_limit",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::NoDefaultModelConfig => "no_default_model_config",
            ErrorKind::Database => "database",
            ErrorKind::Upstream => "upstream",
            ErrorKind::CorruptRow => "corrupt_row",
        }
    }
}

impl ErrorKind {
    /// The HTTP status this kind answers with at an API boundary. Kinds a caller cannot
    /// cause (database, corrupt rows, key handling) are 500: the server's problem.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::NoDefaultModelConfig => 400,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict | ErrorKind::LeaseLost | ErrorKind::UsageLimit => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::QueueFull | ErrorKind::TooManySubscribers => 429,
            ErrorKind::Upstream => 502,
            ErrorKind::ShuttingDown => 503,
            _ => 500,
        }
    }

    /// Whether the kind is the caller's fault (a 4xx status).
    pub fn is_client_error(self) -> bool {
        (400..500).contains(&self.http_status())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of every fallible operation in this crate.
///
/// Cheap to move (one pointer). [`Error::kind`] classifies it and [`Error::key_id`] names the
/// key concerned, when there is one. Messages never contain plaintext, key bytes or ciphertext
/// payloads: only key ids (which are names, validated before they are echoed), lengths and
/// limits.
///
/// Database failures keep the driver's error as their [`source`](std::error::Error::source)
/// (its message names constraints and columns, never bound values), so a caller can walk
/// the chain to what the database said. Key handling keeps no source, because decoder
/// errors quote the offending byte, which could be a byte of a key.
pub struct Error {
    inner: Box<Inner>,
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    key_id: Option<String>,
    response: Option<codersdk::Response>,
    /// The figures of a usage-limit refusal ([`Error::usage_limit_exceeded`]).
    exceeded: Option<codersdk::ChatUsageLimitExceededResponse>,
    source: Option<Source>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                key_id: None,
                response: None,
                exceeded: None,
                source: None,
            }),
        }
    }

    /// Keeps `source` as the error's cause (a driver error, or the error this one
    /// re-states for the caller).
    pub(crate) fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// An error whose API body is `response` (its message becomes the error's message);
    /// used for request validation failures that carry per-field details.
    pub fn with_response(kind: ErrorKind, response: codersdk::Response) -> Self {
        let mut e = Error::new(kind, response.message.clone());
        e.inner.response = Some(response);
        e
    }

    /// An [`ErrorKind::UsageLimit`] refusal with its figures (the 409 body of
    /// codersdk.md §13.3).
    pub fn usage_limit(exceeded: codersdk::ChatUsageLimitExceededResponse) -> Self {
        let mut e = Error::new(ErrorKind::UsageLimit, exceeded.message.clone());
        e.inner.response = Some(codersdk::Response::new(exceeded.message.clone()));
        e.inner.exceeded = Some(exceeded);
        e
    }

    /// The figures of a usage-limit refusal (spent, limit, when it resets): the body an API
    /// answers it with instead of the plain [`Error::to_response`].
    pub fn usage_limit_exceeded(&self) -> Option<&codersdk::ChatUsageLimitExceededResponse> {
        self.inner.exceeded.as_ref()
    }

    /// The `Response` body for an API boundary: the one given to
    /// [`Error::with_response`], or the message for client errors. Server errors (5xx) get
    /// a generic message so internal details (SQL, constraint names) stay in the logs.
    pub fn to_response(&self) -> codersdk::Response {
        if let Some(r) = &self.inner.response {
            return r.clone();
        }
        if self.inner.kind.is_client_error() {
            codersdk::Response::new(self.inner.message.to_string())
        } else if self.inner.kind == ErrorKind::ShuttingDown {
            codersdk::Response::new("The server is shutting down.")
        } else if self.inner.kind == ErrorKind::Upstream {
            // chatd's own summary of what the other server did (see the kind).
            codersdk::Response::new(self.inner.message.to_string())
        } else {
            codersdk::Response::new("Internal error.")
        }
    }

    /// The HTTP status of [`ErrorKind::http_status`].
    pub fn http_status(&self) -> u16 {
        self.inner.kind.http_status()
    }

    pub(crate) fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.inner.key_id = Some(key_id.into());
        self
    }

    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The key id concerned (the unknown id, the mismatching id, the duplicate id), if any.
    pub fn key_id(&self) -> Option<&str> {
        self.inner.key_id.as_deref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(id) = &self.inner.key_id {
            d.field("key_id", id);
        }
        d.field("message", &self.inner.message).finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// PostgreSQL's `character_not_in_repertoire`: text with a NUL byte.
const PG_UNSTORABLE_TEXT: &str = "22021";

impl Error {
    /// Classifies a driver error, keeping it as the source: unique violations are
    /// [`ErrorKind::Conflict`], foreign-key violations [`ErrorKind::NotFound`] (the
    /// referenced row is missing), text PostgreSQL cannot store (NUL)
    /// [`ErrorKind::InvalidArgument`], decode failures [`ErrorKind::CorruptRow`], anything else
    /// [`ErrorKind::Database`].
    ///
    /// Crate-private, like every conversion from sqlx (see [`DbResultExt`]): a public
    /// `From<sqlx::Error>` would make the driver's types part of this crate's API.
    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        let kind = match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => ErrorKind::Conflict,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => ErrorKind::NotFound,
            // PostgreSQL refuses text it cannot store (a NUL character): the input's fault,
            // not the server's.
            sqlx::Error::Database(db) if db.code().as_deref() == Some(PG_UNSTORABLE_TEXT) => {
                return Error::new(
                    ErrorKind::InvalidArgument,
                    "Text may not contain the NUL character (\\u0000).",
                )
                .with_source(e);
            }
            sqlx::Error::RowNotFound => ErrorKind::NotFound,
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => ErrorKind::CorruptRow,
            _ => ErrorKind::Database,
        };
        Error::new(kind, format!("database: {e}")).with_source(e)
    }

    /// A failed migration, kept as the source.
    pub(crate) fn from_migration(e: sqlx::migrate::MigrateError) -> Self {
        Error::new(ErrorKind::Database, format!("migration failed: {e}")).with_source(e)
    }
}

/// `.db()?` turns a driver result into this crate's [`Result`] ([`Error::from_sqlx`]); the
/// crate's stand-in for a `From<sqlx::Error>` impl, which would be public.
pub(crate) trait DbResultExt<T> {
    /// The result with a driver error classified.
    fn db(self) -> Result<T>;
}

impl<T> DbResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn db(self) -> Result<T> {
        self.map_err(Error::from_sqlx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique() {
        let kinds = [
            ErrorKind::InvalidKey,
            ErrorKind::InvalidKeyId,
            ErrorKind::DuplicateKeyId,
            ErrorKind::UnknownKeyId,
            ErrorKind::KeyMismatch,
            ErrorKind::InvalidKeyring,
            ErrorKind::MalformedCiphertext,
            ErrorKind::UnsupportedVersion,
            ErrorKind::DecryptionFailed,
            ErrorKind::TooLarge,
            ErrorKind::Random,
            ErrorKind::NotUtf8,
            ErrorKind::TooManySubscribers,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::InvalidArgument,
            ErrorKind::QueueFull,
            ErrorKind::LeaseLost,
            ErrorKind::Forbidden,
            ErrorKind::UsageLimit,
            ErrorKind::ShuttingDown,
            ErrorKind::NoDefaultModelConfig,
            ErrorKind::Database,
            ErrorKind::CorruptRow,
        ];
        let names: std::collections::HashSet<_> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), kinds.len());
        assert_eq!(ErrorKind::KeyMismatch.to_string(), "key_mismatch");
    }

    #[test]
    fn kinds_map_onto_http_statuses() {
        assert_eq!(ErrorKind::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorKind::NoDefaultModelConfig.http_status(), 400);
        assert_eq!(ErrorKind::Forbidden.http_status(), 403);
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::Conflict.http_status(), 409);
        assert_eq!(ErrorKind::UsageLimit.http_status(), 409);
        assert_eq!(ErrorKind::TooLarge.http_status(), 413);
        assert_eq!(ErrorKind::QueueFull.http_status(), 429);
        assert_eq!(ErrorKind::Database.http_status(), 500);
        let internal = Error::new(ErrorKind::Database, "database: relation chats missing");
        assert_eq!(internal.to_response().message, "Internal error.");
        let resp = codersdk::Response::new("Invalid labels.").with_validation("labels", "bad");
        let e = Error::with_response(ErrorKind::InvalidArgument, resp.clone());
        assert_eq!(e.to_response(), resp);
        assert_eq!(e.to_string(), "Invalid labels.");
    }

    #[test]
    fn database_errors_keep_the_driver_error_as_their_source() {
        use std::error::Error as _;
        let e = Error::from_sqlx(sqlx::Error::RowNotFound);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let source = e.source();
        assert!(source.is_some_and(|s| s.downcast_ref::<sqlx::Error>().is_some()));
        assert_eq!(
            source.map(|s| s.to_string()),
            Some(sqlx::Error::RowNotFound.to_string())
        );
        // Errors of this crate's own making have none.
        assert!(Error::new(ErrorKind::InvalidArgument, "bad")
            .source()
            .is_none());
    }

    #[test]
    fn error_is_one_pointer_and_shows_key_id() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        let e = Error::new(ErrorKind::UnknownKeyId, "no key").with_key_id("k1");
        assert_eq!(e.key_id(), Some("k1"));
        assert_eq!(e.to_string(), "no key");
        assert!(format!("{e:?}").contains("k1"));
    }
}
