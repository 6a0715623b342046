//! Request extractors of the HTTP layer: typed path ids, strict query parameters, and the
//! queries of the MCP OAuth2 pages ([`ConnectQuery`], [`OAuth2CallbackQuery`]).
//!
//! Every rejection is a JSON `codersdk::Response` (400) that names the bad parameter, so a
//! handler that takes these extractors never parses ids or query strings itself:
//!
//! - **Path ids** ([`ChatId`], [`MessageId`], [`QueuedMessageId`], [`FileId`],
//!   [`ModelConfigId`], [`ProviderConfigId`], [`McpServerId`], [`KeyId`], [`UserPath`],
//!   [`OverrideContext`]) read their route parameter by name (`{chat}`, `{message}`, …), so
//!   one handler may take several, in any order.
//! - **[`Query<T>`]** deserializes the query string into `T` with serde, strictly: a key `T`
//!   does not declare is refused (declare `T` with `#[serde(deny_unknown_fields)]`), a key
//!   given twice is refused unless its field is a sequence (`label=a:b&label=c:d` into a
//!   `Vec<String>`), malformed percent-encoding and non-UTF-8 values are refused. The session
//!   token parameter ([`SESSION_TOKEN_QUERY`]) is an authentication parameter, accepted on
//!   every route and never handed to `T`. [`NoQuery`] is the query of a route that takes
//!   none.
//!
//! Extractors run in the order of the handler's arguments: routes put the caller first
//! (401/403 before anything else is judged), then path ids, then the query, then the body.

use std::fmt;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use chatd_core::UserRef;
use codersdk::{ChatModelOverrideContext, Response, Uuid};
use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::Deserialize;

use crate::auth::SESSION_TOKEN_QUERY;
use crate::error::{ApiError, ApiResult};

/// Most characters of a bad parameter value quoted back in an error message.
pub const MAX_QUOTED_PARAM_CHARS: usize = 64;

/// Message of every query-parameter rejection; the validation names the key.
const INVALID_QUERY: &str = "Invalid query parameters.";

// ---------------------------------------------------------------------------------------
// Path ids
// ---------------------------------------------------------------------------------------

/// A value read from one named route parameter.
pub trait PathParam: Sized {
    /// The parameter's name in the route (`chat` for `/chats/{chat}`).
    const NAME: &'static str;

    /// Parses the percent-decoded value; the error answers the request.
    fn parse(raw: &str) -> ApiResult<Self>;
}

/// The 400 of a path id that does not parse: `Invalid chat ID "x".`, with a validation on
/// the parameter saying what the id must be.
pub fn invalid_path_param(name: &str, what: &str, raw: &str, rule: &str) -> ApiError {
    ApiError::validation(
        Response::new(format!("Invalid {what} {}.", quote(raw))).with_validation(name, rule),
    )
}

/// `raw` in double quotes (escaped), cut at [`MAX_QUOTED_PARAM_CHARS`] characters.
fn quote(raw: &str) -> String {
    let shown: String = raw.chars().take(MAX_QUOTED_PARAM_CHARS).collect();
    format!("{shown:?}")
}

/// Reads route parameter `T::NAME` and parses it.
async fn path_param<T: PathParam, S: Send + Sync>(parts: &mut Parts, state: &S) -> ApiResult<T> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|rejection| {
            // Percent-encoding that does not decode to UTF-8.
            ApiError::bad_request("Invalid path parameter.").with_detail(rejection.body_text())
        })?;
    let Some((_, raw)) = params.iter().find(|(name, _)| *name == T::NAME) else {
        // A route wired to a handler whose extractor names a parameter it does not have:
        // a bug of this crate, not of the request.
        tracing::error!(param = T::NAME, "route has no such path parameter");
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error.",
        ));
    };
    T::parse(raw)
}

/// Implements [`FromRequestParts`] for a [`PathParam`].
macro_rules! path_extractor {
    ($ty:ty) => {
        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
                path_param::<Self, S>(parts, state).await
            }
        }
    };
}

/// Declares a UUID path id.
macro_rules! uuid_path_id {
    ($(#[$doc:meta])* $name:ident, $param:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub Uuid);

        impl PathParam for $name {
            const NAME: &'static str = $param;

            fn parse(raw: &str) -> ApiResult<Self> {
                Uuid::parse_str(raw).map($name).map_err(|_| {
                    invalid_path_param(
                        $param,
                        $what,
                        raw,
                        concat!("The ", $what, " must be a UUID."),
                    )
                })
            }
        }

        path_extractor!($name);
    };
}

uuid_path_id!(
    /// `{chat}`: a chat id.
    ChatId,
    "chat",
    "chat ID"
);
uuid_path_id!(
    /// `{file}`: a chat file id.
    FileId,
    "file",
    "file ID"
);
uuid_path_id!(
    /// `{modelConfig}`: a model config id.
    ModelConfigId,
    "modelConfig",
    "model config ID"
);
uuid_path_id!(
    /// `{providerConfig}`: a provider config id.
    ProviderConfigId,
    "providerConfig",
    "provider config ID"
);
uuid_path_id!(
    /// `{keyid}`: an API token id.
    KeyId,
    "keyid",
    "API token ID"
);
uuid_path_id!(
    /// `{group}`: a group id.
    GroupId,
    "group",
    "group ID"
);
uuid_path_id!(
    /// `{organization}`: an organization id.
    OrganizationId,
    "organization",
    "organization ID"
);
uuid_path_id!(
    /// `{mcpServer}`: an MCP server config id.
    McpServerId,
    "mcpServer",
    "MCP server ID"
);
uuid_path_id!(
    /// `{run}`: a chat debug run id.
    DebugRunId,
    "run",
    "debug run ID"
);

/// `{message}`: a message id, a positive 64-bit integer (codersdk's rule and message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId(pub i64);

impl PathParam for MessageId {
    const NAME: &'static str = "message";

    fn parse(raw: &str) -> ApiResult<Self> {
        codersdk::parse_message_id(raw)
            .map(MessageId)
            .map_err(ApiError::validation)
    }
}

path_extractor!(MessageId);

/// `{queuedMessage}`: a queue entry id, a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueuedMessageId(pub i64);

impl PathParam for QueuedMessageId {
    const NAME: &'static str = "queuedMessage";

    fn parse(raw: &str) -> ApiResult<Self> {
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(QueuedMessageId(id)),
            _ => Err(invalid_path_param(
                Self::NAME,
                "queued message ID",
                raw,
                "The queued message ID must be a positive integer.",
            )),
        }
    }
}

path_extractor!(QueuedMessageId);

/// `{user}`: `me` (the caller), a user id, or a username (which the administration handle
/// compares case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPath(pub UserRef);

impl UserPath {
    /// The `{user}` alias for the caller.
    pub const ME: &'static str = "me";
}

impl PathParam for UserPath {
    const NAME: &'static str = "user";

    fn parse(raw: &str) -> ApiResult<Self> {
        // No username has control characters; PostgreSQL cannot even compare one with NUL.
        if raw.chars().any(char::is_control) {
            return Err(invalid_path_param(
                Self::NAME,
                "user",
                raw,
                "A user is \"me\", a user ID or a username.",
            ));
        }
        Ok(UserPath(if raw == Self::ME {
            UserRef::Me
        } else if let Ok(id) = Uuid::parse_str(raw) {
            UserRef::Id(id)
        } else {
            UserRef::Username(raw.to_owned())
        }))
    }
}

path_extractor!(UserPath);

/// `{context}` of the deployment model overrides. Any value parses (an unknown context is
/// kept as such); the store refuses unknown contexts with its own 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideContext(pub ChatModelOverrideContext);

impl PathParam for OverrideContext {
    const NAME: &'static str = "context";

    fn parse(raw: &str) -> ApiResult<Self> {
        Ok(OverrideContext(ChatModelOverrideContext::from_wire(raw)))
    }
}

path_extractor!(OverrideContext);

/// `{instance}`: an AI Gateway provider instance's name
/// (`chatd_core::aibridge::validate_instance_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName(pub String);

impl PathParam for InstanceName {
    const NAME: &'static str = "instance";

    fn parse(raw: &str) -> ApiResult<Self> {
        chatd_core::aibridge::validate_instance_name(raw)
            .map(|()| InstanceName(raw.to_owned()))
            .map_err(|rule| invalid_path_param("instance", "AI Gateway instance", raw, &rule))
    }
}

path_extractor!(InstanceName);

// ---------------------------------------------------------------------------------------
// MCP OAuth2 pages
// ---------------------------------------------------------------------------------------

/// Longest `redirect` a connect may name, in bytes.
pub const MAX_RETURN_PATH_BYTES: usize = 2048;

/// Where the browser goes after an OAuth2 callback: a path on this server. Only a
/// same-origin relative path is accepted — it starts with one `/`, has no backslash (which
/// browsers read as `/`, making `/\evil.example` another host), no whitespace or control
/// characters, at most [`MAX_RETURN_PATH_BYTES`] bytes — so connect cannot be used to send
/// a user to another site with this server's name on the link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ReturnPath(String);

impl ReturnPath {
    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReturnPath {
    type Error = String;

    fn try_from(path: String) -> Result<Self, String> {
        let ok = path.len() <= MAX_RETURN_PATH_BYTES
            && path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains('\\')
            && !path.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(ReturnPath(path))
        } else {
            Err(format!(
                "redirect must be a path on this server: one leading \"/\", no backslashes, \
                 spaces or control characters, at most {MAX_RETURN_PATH_BYTES} bytes."
            ))
        }
    }
}

/// The query of `GET /mcp/servers/{id}/oauth2/connect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectQuery {
    /// Where the callback sends the browser once connected (else it shows a page).
    #[serde(default)]
    pub redirect: Option<ReturnPath>,
}

/// The query of `GET /mcp/servers/{id}/oauth2/callback`, parsed into what the
/// authorization server said: a code and a state, or an error. Unknown parameters are
/// ignored — unlike everywhere else — because authorization servers add their own
/// (`iss` of RFC 9207, `session_state`, …), and the callback is theirs to shape. Without
/// `error`, both `code` and `state` are required (400 naming the missing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuth2CallbackQuery {
    /// Access granted.
    Granted {
        /// The authorization code.
        code: String,
        /// The state the connect issued.
        state: String,
    },
    /// Access refused or failed.
    Refused {
        /// The OAuth2 error code.
        error: String,
        /// The state, when given.
        state: Option<String>,
    },
}

impl OAuth2CallbackQuery {
    /// The callback as the administration handle takes it.
    pub fn as_callback(&self) -> chatd_core::McpOAuth2Callback<'_> {
        match self {
            OAuth2CallbackQuery::Granted { code, state } => {
                chatd_core::McpOAuth2Callback::Granted { code, state }
            }
            OAuth2CallbackQuery::Refused { error, state } => {
                chatd_core::McpOAuth2Callback::Refused {
                    error,
                    state: state.as_deref(),
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RawCallback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for OAuth2CallbackQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        let raw: RawCallback = parse_query(parts.uri.query())?;
        let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
        if let Some(error) = non_empty(raw.error) {
            return Ok(OAuth2CallbackQuery::Refused {
                error,
                state: non_empty(raw.state),
            });
        }
        let missing = |key: &str| {
            ApiError::validation(Response::new(INVALID_QUERY).with_validation(
                key,
                format!(
                    "Query parameter {} is required: the OAuth2 callback carries a code and \
                     a state, or an error.",
                    quote(key)
                ),
            ))
        };
        let code = non_empty(raw.code).ok_or_else(|| missing("code"))?;
        let state = non_empty(raw.state).ok_or_else(|| missing("state"))?;
        Ok(OAuth2CallbackQuery::Granted { code, state })
    }
}

// ---------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------

/// The query string deserialized into `T`, strictly (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        parse_query(parts.uri.query()).map(Query)
    }
}

/// The query of a route that takes no parameters: anything but the session token is a
/// 400 naming the key, so a misspelt parameter fails loudly rather than being ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoQuery;

/// No fields, unknown keys refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        parse_query::<Empty>(parts.uri.query()).map(|_| NoQuery)
    }
}

/// Deserializes a raw query string (`None` when the URI has none) into `T` with the rules
/// of [`Query`].
pub fn parse_query<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<T> {
    let raw = raw.unwrap_or_default();
    check_encoding(raw)?;
    // Keys in the order they first appear, each with its values in order.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        if key == SESSION_TOKEN_QUERY {
            continue;
        }
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.into_owned()),
            None => groups.push((key.into_owned(), vec![value.into_owned()])),
        }
    }
    T::deserialize(QueryDeserializer {
        groups: groups.into_iter(),
        pending: None,
    })
    .map_err(QueryError::into_api_error)
}

/// Refuses a `%` not followed by two hex digits and escapes that do not decode to UTF-8:
/// `form_urlencoded` would keep the first literally and replace the second, so a client
/// bug would pass as a different value. The separators (`&`, `=`, `+`) are ASCII, so the
/// whole string decodes to UTF-8 exactly when every key and value does.
fn check_encoding(raw: &str) -> ApiResult<()> {
    let bytes = raw.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return Err(ApiError::bad_request(
            "Invalid percent-encoding in the query.",
        ));
    }
    percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("Query parameters must be UTF-8."))?;
    Ok(())
}

/// Why a query did not deserialize, with the key it concerns when known.
#[derive(Debug)]
struct QueryError {
    key: Option<String>,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Unknown,
    Repeated,
    Missing,
    Invalid(String),
}

impl QueryError {
    fn new(key: Option<String>, problem: Problem) -> Self {
        QueryError { key, problem }
    }

    /// Attaches the key being deserialized to an error raised without one.
    fn at(mut self, key: &str) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_owned());
        }
        self
    }

    fn into_api_error(self) -> ApiError {
        let Some(key) = self.key else {
            let detail = match self.problem {
                Problem::Invalid(message) => message,
                _ => "The query does not match the route's parameters.".to_owned(),
            };
            return ApiError::bad_request(INVALID_QUERY).with_detail(detail);
        };
        let rule = match self.problem {
            Problem::Unknown => format!("Unknown query parameter {}.", quote(&key)),
            Problem::Repeated => format!("Query parameter {} may be given once.", quote(&key)),
            Problem::Missing => format!("Query parameter {} is required.", quote(&key)),
            Problem::Invalid(message) => message,
        };
        ApiError::validation(Response::new(INVALID_QUERY).with_validation(key, rule))
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, &self.problem) {
            (Some(key), Problem::Unknown) => write!(f, "unknown query parameter {key:?}"),
            (Some(key), Problem::Repeated) => write!(f, "query parameter {key:?} repeated"),
            (Some(key), Problem::Missing) => write!(f, "query parameter {key:?} missing"),
            (_, Problem::Invalid(message)) => f.write_str(message),
            (None, _) => f.write_str("invalid query"),
        }
    }
}

impl std::error::Error for QueryError {}

impl de::Error for QueryError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        QueryError::new(None, Problem::Invalid(msg.to_string()))
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        QueryError::new(Some(field.to_owned()), Problem::Unknown)
    }

    fn missing_field(field: &'static str) -> Self {
        QueryError::new(Some(field.to_owned()), Problem::Missing)
    }

    fn duplicate_field(field: &'static str) -> Self {
        QueryError::new(Some(field.to_owned()), Problem::Repeated)
    }
}

/// The whole query as a map of key → values.
struct QueryDeserializer {
    groups: std::vec::IntoIter<(String, Vec<String>)>,
    pending: Option<(String, Vec<String>)>,
}

impl<'de> de::Deserializer<'de> for QueryDeserializer {
    type Error = QueryError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> de::MapAccess<'de> for QueryDeserializer {
    type Error = QueryError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, QueryError> {
        let Some((key, values)) = self.groups.next() else {
            return Ok(None);
        };
        let found = seed
            .deserialize(key.as_str().into_deserializer())
            .map_err(|e: QueryError| e.at(&key))?;
        self.pending = Some((key, values));
        Ok(Some(found))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, QueryError> {
        let Some((key, values)) = self.pending.take() else {
            return Err(de::Error::custom("a query value was read before its key"));
        };
        seed.deserialize(Values { key: &key, values })
            .map_err(|e| e.at(&key))
    }
}

/// The values of one key: a sequence for sequence fields, otherwise exactly one value.
struct Values<'k> {
    key: &'k str,
    values: Vec<String>,
}

impl Values<'_> {
    fn single(self) -> Result<String, QueryError> {
        let mut values = self.values.into_iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            (None, _) => Ok(String::new()),
            (Some(_), Some(_)) => Err(QueryError::new(
                Some(self.key.to_owned()),
                Problem::Repeated,
            )),
        }
    }

    fn parsed<T: std::str::FromStr>(self, kind: &str) -> Result<T, QueryError> {
        let key = self.key.to_owned();
        let value = self.single()?;
        value.parse().map_err(|_| {
            QueryError::new(
                Some(key.clone()),
                Problem::Invalid(format!(
                    "Query parameter {} must be {kind}, not {}.",
                    quote(&key),
                    quote(&value)
                )),
            )
        })
    }
}

/// The values of a sequence field, each deserialized like a single value.
struct EachValue<'k> {
    key: &'k str,
    values: std::vec::IntoIter<String>,
}

impl<'de> de::SeqAccess<'de> for EachValue<'_> {
    type Error = QueryError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, QueryError> {
        let Some(value) = self.values.next() else {
            return Ok(None);
        };
        seed.deserialize(Values {
            key: self.key,
            values: vec![value],
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len())
    }
}

/// Number and boolean fields parse their single value.
macro_rules! parse_scalar {
    ($($method:ident => $visit:ident: $ty:ty, $kind:literal;)*) => {
        $(
            fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
                visitor.$visit(self.parsed::<$ty>($kind)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Values<'_> {
    type Error = QueryError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_string(self.single()?)
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_seq(EachValue {
            key: self.key,
            values: self.values.into_iter(),
        })
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, QueryError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, QueryError> {
        visitor.visit_enum(self.single()?.into_deserializer())
    }

    parse_scalar! {
        deserialize_bool => visit_bool: bool, "true or false";
        deserialize_i8 => visit_i8: i8, "an integer";
        deserialize_i16 => visit_i16: i16, "an integer";
        deserialize_i32 => visit_i32: i32, "an integer";
        deserialize_i64 => visit_i64: i64, "an integer";
        deserialize_u8 => visit_u8: u8, "a non-negative integer";
        deserialize_u16 => visit_u16: u16, "a non-negative integer";
        deserialize_u32 => visit_u32: u32, "a non-negative integer";
        deserialize_u64 => visit_u64: u64, "a non-negative integer";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct map
        struct identifier ignored_any
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn return_paths_stay_on_this_server() {
        for ok in ["/", "/chats?x=1", "/a/b#c", "/%2F%2Fnot-a-host"] {
            assert!(ReturnPath::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_PATH_BYTES - 1));
        assert!(ReturnPath::try_from(long.clone()).is_ok());
        for bad in [
            "",
            "chats",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/a b",
            "/a\tb",
            "/a\nb",
            &format!("{long}a"),
        ] {
            assert!(ReturnPath::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
        let q: ConnectQuery = parse_query(Some("redirect=%2Fchats%2F1")).unwrap();
        assert_eq!(q.redirect.unwrap().as_str(), "/chats/1");
        let err = parse_query::<ConnectQuery>(Some("redirect=%2F%2Fevil")).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(parse_query::<ConnectQuery>(Some("other=1")).is_err());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Listing {
        limit: Option<String>,
        #[serde(default)]
        label: Vec<String>,
    }

    fn field(err: &ApiError) -> Option<&str> {
        err.body.validations.first().map(|v| v.field.as_str())
    }

    #[test]
    fn unknown_query_keys_are_refused_by_name() {
        let err = parse_query::<Listing>(Some("limit=5&nope=1")).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(field(&err), Some("nope"));
        let ok = parse_query::<Listing>(Some("label=a%3Ab&label=c:d")).unwrap();
        assert_eq!(ok.label.len(), 2);
        assert_eq!(ok.label.first().map(String::as_str), Some("a:b"));
        assert!(parse_query::<Listing>(Some("label=%ZZ")).is_err());
    }

    #[test]
    fn the_session_token_is_tolerated_everywhere() {
        let q = Some("coder_session_token=chatd_x&limit=3&coder_session_token=again");
        let listing = parse_query::<Listing>(q).unwrap();
        assert_eq!(listing.limit.as_deref(), Some("3"));
        parse_query::<Empty>(Some("coder_session_token=chatd_x")).unwrap();
        parse_query::<Empty>(None).unwrap();
        parse_query::<Empty>(Some("")).unwrap();
        let err = parse_query::<Empty>(Some("coder_session_token=t&x=1")).unwrap_err();
        assert_eq!(field(&err), Some("x"));
    }

    #[test]
    fn single_valued_keys_refuse_repeats_and_sequences_collect_them() {
        let err = parse_query::<Listing>(Some("limit=1&limit=2")).unwrap_err();
        assert_eq!(field(&err), Some("limit"));
        assert!(err.body.validations[0].detail.contains("once"));
        let listing = parse_query::<Listing>(Some("label=x:1")).unwrap();
        assert_eq!(listing.label, ["x:1"]);
        // An empty value is a value; `+` is a space.
        let listing = parse_query::<Listing>(Some("limit=&label=a+b:c")).unwrap();
        assert_eq!(
            listing,
            Listing {
                limit: Some(String::new()),
                label: vec!["a b:c".into()]
            }
        );
    }

    #[test]
    fn encoding_errors_are_refused() {
        for bad in ["limit=%", "limit=%4", "limit=%G1", "%ZZ=1"] {
            let err = parse_query::<Listing>(Some(bad)).unwrap_err();
            assert_eq!(err.body.message, "Invalid percent-encoding in the query.");
        }
        let err = parse_query::<Listing>(Some("limit=%FF")).unwrap_err();
        assert_eq!(err.body.message, "Query parameters must be UTF-8.");
        let ok = parse_query::<Listing>(Some("limit=%E2%82%AC")).unwrap();
        assert_eq!(ok.limit.as_deref(), Some("€"));
    }

    #[test]
    fn typed_fields_parse_and_name_their_key() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Typed {
            limit: Option<u32>,
            verbose: Option<bool>,
            name: String,
        }
        let t = parse_query::<Typed>(Some("limit=7&verbose=true&name=x")).unwrap();
        assert_eq!(
            (t.limit, t.verbose, t.name.as_str()),
            (Some(7), Some(true), "x")
        );
        let err = parse_query::<Typed>(Some("limit=-1&name=x")).unwrap_err();
        assert_eq!(field(&err), Some("limit"));
        assert_eq!(
            err.body.validations[0].detail,
            "Query parameter \"limit\" must be a non-negative integer, not \"-1\"."
        );
        let err = parse_query::<Typed>(Some("limit=1")).unwrap_err();
        assert_eq!(field(&err), Some("name"));
        assert!(err.body.validations[0].detail.contains("required"));
    }

    #[test]
    fn path_ids_name_their_parameter() {
        let err = ChatId::parse("x").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body.message, "Invalid chat ID \"x\".");
        assert_eq!(field(&err), Some("chat"));
        assert_eq!(
            err.body.validations[0].detail,
            "The chat ID must be a UUID."
        );
        let id = Uuid::new_v4();
        assert_eq!(ChatId::parse(&id.to_string()).unwrap(), ChatId(id));
        assert_eq!(
            field(&ModelConfigId::parse("1").unwrap_err()),
            Some("modelConfig")
        );
        assert_eq!(
            field(&ProviderConfigId::parse("1").unwrap_err()),
            Some("providerConfig")
        );
        assert_eq!(
            field(&McpServerId::parse("1").unwrap_err()),
            Some("mcpServer")
        );
        assert_eq!(field(&FileId::parse("1").unwrap_err()), Some("file"));
        assert_eq!(field(&MessageId::parse("0").unwrap_err()), Some("message"));
        assert_eq!(MessageId::parse("12").unwrap(), MessageId(12));
        for bad in ["0", "-3", "1.5", "abc", "99999999999999999999"] {
            let err = QueuedMessageId::parse(bad).unwrap_err();
            assert_eq!(field(&err), Some("queuedMessage"), "{bad}");
        }
        assert_eq!(QueuedMessageId::parse("9").unwrap(), QueuedMessageId(9));
        // Long values are cut in the message.
        let long = "x".repeat(1000);
        let err = ChatId::parse(&long).unwrap_err();
        assert!(err.body.message.len() < MAX_QUOTED_PARAM_CHARS + 32);
    }

    #[test]
    fn user_refs() {
        let id = Uuid::new_v4();
        assert_eq!(UserPath::parse("me").unwrap(), UserPath(UserRef::Me));
        assert_eq!(
            UserPath::parse(&id.to_string()).unwrap(),
            UserPath(UserRef::Id(id))
        );
        for bad in ["a\0b", "\n", "x\u{7f}"] {
            let err = UserPath::parse(bad).unwrap_err();
            assert_eq!(field(&err), Some("user"), "{bad:?}");
        }
        // Usernames keep their case here; the administration handle compares them
        // case-insensitively.
        assert_eq!(
            UserPath::parse("Alice").unwrap(),
            UserPath(UserRef::Username("Alice".into()))
        );
    }
}
