//! The chat list search query `q` of `GET /chats` (later key set).
//!
//! `q` is a list of `key:value` terms separated by whitespace. Keys are case-insensitive;
//! a value may be wrapped in double quotes to hold spaces (inside quotes, `\"` is a quote
//! and `\\` a backslash). Every bad term is reported on its own, so a bot author sees all
//! mistakes at once. [`ChatSearchQuery::to_query_string`] writes a query back in a form
//! that parses to the same value, for clients building `q`.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::{validate_http_url, ChatStatus, Response, ValidationError};

/// Longest accepted `q`, in bytes. Longer queries are refused before any parsing.
pub const MAX_CHAT_SEARCH_QUERY_BYTES: usize = 1024;

/// The message of every `q` failure.
const INVALID_QUERY: &str = "Invalid chat search query.";

/// The keys `q` understands, in the order [`ChatSearchQuery::to_query_string`] writes them.
pub const CHAT_SEARCH_KEYS: &[&str] = &[
    "archived",
    "title",
    "has_unread",
    "status",
    "pr_status",
    "diff_url",
    "pr",
    "repo",
    "pr_title",
    "search",
];

/// Which chats `archived:` selects. The default hides archived chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChatArchivedFilter {
    /// `archived:false` (the default): only chats that are not archived.
    #[default]
    Unarchived,
    /// `archived:true`: only archived chats.
    Archived,
    /// `archived:any`: both.
    Any,
}

impl ChatArchivedFilter {
    /// The value as written in `q`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatArchivedFilter::Unarchived => "false",
            ChatArchivedFilter::Archived => "true",
            ChatArchivedFilter::Any => "any",
        }
    }

    /// The `archived` column value to filter on; `None` for any.
    pub fn as_option(self) -> Option<bool> {
        match self {
            ChatArchivedFilter::Unarchived => Some(false),
            ChatArchivedFilter::Archived => Some(true),
            ChatArchivedFilter::Any => None,
        }
    }

    /// Whether a chat with this `archived` flag passes the filter.
    pub fn matches(self, archived: bool) -> bool {
        self.as_option().is_none_or(|want| want == archived)
    }
}

/// Pull-request state selected by `pr_status:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatPrStatusFilter {
    /// `draft`: an open draft pull request.
    Draft,
    /// `open`: an open pull request that is not a draft.
    Open,
    /// `merged`.
    Merged,
    /// `closed`: closed without merging.
    Closed,
    /// `none`: the chat has no pull request.
    NoPullRequest,
}

impl ChatPrStatusFilter {
    /// Every value, in documentation order.
    pub const ALL: &'static [ChatPrStatusFilter] = &[
        ChatPrStatusFilter::Draft,
        ChatPrStatusFilter::Open,
        ChatPrStatusFilter::Merged,
        ChatPrStatusFilter::Closed,
        ChatPrStatusFilter::NoPullRequest,
    ];

    /// The value as written in `q`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatPrStatusFilter::Draft => "draft",
            ChatPrStatusFilter::Open => "open",
            ChatPrStatusFilter::Merged => "merged",
            ChatPrStatusFilter::Closed => "closed",
            ChatPrStatusFilter::NoPullRequest => "none",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// A parsed `q`. Absent filters are `None`; [`Default`] is the empty query (hide
/// archived chats, nothing else).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatSearchQuery {
    /// `archived:true|false|any`.
    pub archived: ChatArchivedFilter,
    /// `title:` — title contains this text.
    pub title: Option<String>,
    /// `has_unread:true|false`.
    pub has_unread: Option<bool>,
    /// `status:` — a known [`ChatStatus`].
    pub status: Option<ChatStatus>,
    /// `pr_status:draft|open|merged|closed|none`.
    pub pr_status: Option<ChatPrStatusFilter>,
    /// `diff_url:` — an absolute http(s) URL of the chat's pull request or branch.
    pub diff_url: Option<String>,
    /// `pr:` — a positive pull-request number (`#123` accepted).
    pub pr: Option<i32>,
    /// `repo:` — repository text to match.
    pub repo: Option<String>,
    /// `pr_title:` — pull-request title contains this text.
    pub pr_title: Option<String>,
    /// `search:` — full-text search; not combinable with `title`, `pr_title` or `pr`.
    pub search: Option<String>,
}

impl ChatSearchQuery {
    /// Parses `q`. See [`parse_chat_search_query`].
    pub fn parse(q: &str) -> Result<Self, Response> {
        parse_chat_search_query(q)
    }

    /// Whether this is the empty query.
    pub fn is_default(&self) -> bool {
        *self == ChatSearchQuery::default()
    }

    /// Writes the query as a `q` string that parses back to `self`: keys in
    /// [`CHAT_SEARCH_KEYS`] order, `archived` only when not the default, values quoted
    /// when they need it.
    pub fn to_query_string(&self) -> String {
        let mut terms: Vec<String> = Vec::new();
        let mut term = |key: &str, value: &str| terms.push(format!("{key}:{}", quote_value(value)));
        if self.archived != ChatArchivedFilter::Unarchived {
            term("archived", self.archived.as_str());
        }
        if let Some(v) = &self.title {
            term("title", v);
        }
        if let Some(v) = self.has_unread {
            term("has_unread", if v { "true" } else { "false" });
        }
        if let Some(v) = &self.status {
            term("status", v.as_str());
        }
        if let Some(v) = self.pr_status {
            term("pr_status", v.as_str());
        }
        if let Some(v) = &self.diff_url {
            term("diff_url", v);
        }
        if let Some(v) = self.pr {
            term("pr", &v.to_string());
        }
        if let Some(v) = &self.repo {
            term("repo", v);
        }
        if let Some(v) = &self.pr_title {
            term("pr_title", v);
        }
        if let Some(v) = &self.search {
            term("search", v);
        }
        terms.join(" ")
    }
}

impl fmt::Display for ChatSearchQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_query_string())
    }
}

impl FromStr for ChatSearchQuery {
    type Err = Response;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_chat_search_query(s)
    }
}

/// Quotes a value when a bare value would not parse back to it.
fn quote_value(value: &str) -> String {
    let needs_quotes = value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '"');
    if !needs_quotes {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits `q` into terms at whitespace outside double quotes. A backslash inside quotes
/// escapes the next character. An unterminated quote runs to the end of the input.
fn split_terms(q: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start: Option<usize> = None;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in q.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                terms.extend(q.get(s..i));
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        if c == '"' {
            in_quotes = true;
        }
    }
    if let Some(s) = start {
        terms.extend(q.get(s..));
    }
    terms
}

/// Decodes a raw value: unquoted text, or one double-quoted string with `\` escapes.
fn decode_value(raw: &str) -> Result<String, &'static str> {
    let Some(body) = raw.strip_prefix('"') else {
        if raw.contains('"') {
            return Err("quotes must surround the whole value, e.g. title:\"my chat\"");
        }
        return Ok(raw.to_owned());
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => return Err("the quoted value is not terminated"),
            },
            '"' => {
                if chars.next().is_some() {
                    return Err("unexpected text after the closing quote");
                }
                return Ok(out);
            }
            c => out.push(c),
        }
    }
    Err("the quoted value is not terminated")
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("use true or false".to_owned()),
    }
}

/// Applies one `key:value` term to `out`; the error is the reason, without the term.
fn apply_term(key: &str, value: String, out: &mut ChatSearchQuery) -> Result<(), String> {
    let lower = value.to_ascii_lowercase();
    match key {
        "archived" => {
            out.archived = match lower.as_str() {
                "true" => ChatArchivedFilter::Archived,
                "false" => ChatArchivedFilter::Unarchived,
                "any" => ChatArchivedFilter::Any,
                _ => return Err("use true, false or any".to_owned()),
            };
        }
        "title" => out.title = Some(value),
        "has_unread" => out.has_unread = Some(parse_bool(&value)?),
        "status" => {
            let status = ChatStatus::from_wire(&lower);
            if status.is_unknown() {
                let known: Vec<&str> = ChatStatus::ALL.iter().map(ChatStatus::as_str).collect();
                return Err(format!("unknown status; use one of: {}", known.join(", ")));
            }
            out.status = Some(status);
        }
        "pr_status" => {
            out.pr_status = Some(ChatPrStatusFilter::parse(&lower).ok_or_else(|| {
                "unknown pull-request status; use draft, open, merged, closed or none".to_owned()
            })?);
        }
        "diff_url" => {
            validate_http_url(&value).map_err(|reason| format!("the URL {reason}"))?;
            out.diff_url = Some(value);
        }
        "pr" => {
            let digits = value.strip_prefix('#').unwrap_or(&value);
            match digits.parse::<i32>() {
                Ok(n) if n > 0 => out.pr = Some(n),
                _ => return Err("use a positive pull-request number, e.g. pr:123".to_owned()),
            }
        }
        "repo" => out.repo = Some(value),
        "pr_title" => out.pr_title = Some(value),
        "search" => out.search = Some(value),
        _ => {
            return Err(format!(
                "unknown key; use one of: {}",
                CHAT_SEARCH_KEYS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Quotes a term for an error message, cut short so one huge term cannot bloat it.
fn show_term(term: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    let mut cut: String = term.chars().take(MAX_ECHO_CHARS).collect();
    if cut.len() < term.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Parses the `q` parameter of `GET /chats`.
///
/// Rules: at most [`MAX_CHAT_SEARCH_QUERY_BYTES`]; terms are `key:value` split on the
/// first colon; keys are lower-cased and must be one of [`CHAT_SEARCH_KEYS`]; each key at
/// most once; values are trimmed, non-empty and free of control characters; enumerated
/// values (`archived`, `has_unread`, `status`, `pr_status`) are case-insensitive;
/// `search` cannot be combined with `title`, `pr_title` or `pr`. Any failure answers 400
/// "Invalid chat search query." with one `validations` entry (field `q`) per bad term.
pub fn parse_chat_search_query(q: &str) -> Result<ChatSearchQuery, Response> {
    if q.len() > MAX_CHAT_SEARCH_QUERY_BYTES {
        return Err(Response::new(INVALID_QUERY).with_validation(
            "q",
            format!(
                "The query is {} bytes long; it may be at most {MAX_CHAT_SEARCH_QUERY_BYTES} bytes.",
                q.len()
            ),
        ));
    }
    let mut out = ChatSearchQuery::default();
    let mut problems: Vec<ValidationError> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut bad = |term: &str, reason: &str| {
        problems.push(ValidationError::new(
            "q",
            format!("Term {}: {reason}.", show_term(term)),
        ));
    };
    for term in split_terms(q) {
        let Some((raw_key, raw_value)) = term.split_once(':') else {
            bad(
                term,
                "bare words are not supported; use key:value, e.g. search:word or title:word",
            );
            continue;
        };
        let key = raw_key.to_ascii_lowercase();
        if !CHAT_SEARCH_KEYS.contains(&key.as_str()) {
            bad(
                term,
                &format!("unknown key; use one of: {}", CHAT_SEARCH_KEYS.join(", ")),
            );
            continue;
        }
        let value = match decode_value(raw_value) {
            Ok(v) => v.trim().to_owned(),
            Err(reason) => {
                bad(term, reason);
                continue;
            }
        };
        if value.is_empty() {
            bad(term, "a value is required after the colon");
            continue;
        }
        if value.chars().any(char::is_control) {
            bad(term, "values must not contain control characters");
            continue;
        }
        if !seen.insert(key.clone()) {
            bad(
                term,
                "this key is given more than once; give each key at most once",
            );
            continue;
        }
        if let Err(reason) = apply_term(&key, value, &mut out) {
            bad(term, &reason);
        }
    }
    if out.search.is_some() && (out.title.is_some() || out.pr_title.is_some() || out.pr.is_some()) {
        problems.push(ValidationError::new(
            "q",
            "search cannot be combined with title, pr_title or pr; full-text search already \
             covers them.",
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Response {
            message: INVALID_QUERY.to_owned(),
            detail: String::new(),
            validations: problems,
        })
    }
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

    fn q() -> ChatSearchQuery {
        ChatSearchQuery::default()
    }

    #[test]
    fn valid_queries() {
        let cases: Vec<(&str, ChatSearchQuery)> = vec![
            ("", q()),
            ("   \t ", q()),
            ("archived:false", q()),
            (
                "archived:true",
                ChatSearchQuery {
                    archived: ChatArchivedFilter::Archived,
                    ..q()
                },
            ),
            (
                "ARCHIVED:Any",
                ChatSearchQuery {
                    archived: ChatArchivedFilter::Any,
                    ..q()
                },
            ),
            (
                "title:deploy",
                ChatSearchQuery {
                    title: Some("deploy".into()),
                    ..q()
                },
            ),
            (
                r#"title:"my chat""#,
                ChatSearchQuery {
                    title: Some("my chat".into()),
                    ..q()
                },
            ),
            (
                r#"title:"say \"hi\" \\o/""#,
                ChatSearchQuery {
                    title: Some(r#"say "hi" \o/"#.into()),
                    ..q()
                },
            ),
            (
                r#"title:"  padded  ""#,
                ChatSearchQuery {
                    title: Some("padded".into()),
                    ..q()
                },
            ),
            (
                "Title:Case",
                ChatSearchQuery {
                    title: Some("Case".into()),
                    ..q()
                },
            ),
            (
                "has_unread:TRUE",
                ChatSearchQuery {
                    has_unread: Some(true),
                    ..q()
                },
            ),
            (
                "has_unread:false",
                ChatSearchQuery {
                    has_unread: Some(false),
                    ..q()
                },
            ),
            (
                "status:running",
                ChatSearchQuery {
                    status: Some(ChatStatus::Running),
                    ..q()
                },
            ),
            (
                "status:Requires_Action",
                ChatSearchQuery {
                    status: Some(ChatStatus::RequiresAction),
                    ..q()
                },
            ),
            (
                "status:paused",
                ChatSearchQuery {
                    status: Some(ChatStatus::Paused),
                    ..q()
                },
            ),
            (
                "pr_status:none",
                ChatSearchQuery {
                    pr_status: Some(ChatPrStatusFilter::NoPullRequest),
                    ..q()
                },
            ),
            (
                "pr_status:Draft",
                ChatSearchQuery {
                    pr_status: Some(ChatPrStatusFilter::Draft),
                    ..q()
                },
            ),
            (
                "diff_url:https://github.com/o/r/pull/1",
                ChatSearchQuery {
                    diff_url: Some("https://github.com/o/r/pull/1".into()),
                    ..q()
                },
            ),
            (
                "pr:123",
                ChatSearchQuery {
                    pr: Some(123),
                    ..q()
                },
            ),
            ("pr:#7", ChatSearchQuery { pr: Some(7), ..q() }),
            (
                "pr:2147483647",
                ChatSearchQuery {
                    pr: Some(i32::MAX),
                    ..q()
                },
            ),
            (
                "repo:coder/coder",
                ChatSearchQuery {
                    repo: Some("coder/coder".into()),
                    ..q()
                },
            ),
            (
                "repo:a:b",
                ChatSearchQuery {
                    repo: Some("a:b".into()),
                    ..q()
                },
            ),
            (
                r#"pr_title:"fix: bug""#,
                ChatSearchQuery {
                    pr_title: Some("fix: bug".into()),
                    ..q()
                },
            ),
            (
                "search:flaky repo:x",
                ChatSearchQuery {
                    search: Some("flaky".into()),
                    repo: Some("x".into()),
                    ..q()
                },
            ),
            (
                "title:a\u{3000}repo:b",
                ChatSearchQuery {
                    title: Some("a".into()),
                    repo: Some("b".into()),
                    ..q()
                },
            ),
            (
                "  archived:any   title:x  has_unread:true ",
                ChatSearchQuery {
                    archived: ChatArchivedFilter::Any,
                    title: Some("x".into()),
                    has_unread: Some(true),
                    ..q()
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_chat_search_query(input).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn invalid_queries_report_each_term() {
        let cases: &[(&str, usize)] = &[
            ("hello", 1),
            ("hello world", 2),
            ("foo:bar", 1),
            ("source:created_by_me", 1),
            ("archived:maybe", 1),
            ("has_unread:yes", 1),
            ("status:bogus", 1),
            ("status:", 1),
            ("pr_status:reviewing", 1),
            ("diff_url:ftp://x", 1),
            ("diff_url:github.com/o/r", 1),
            ("pr:0", 1),
            ("pr:-1", 1),
            ("pr:abc", 1),
            ("pr:2147483648", 1),
            ("title:", 1),
            (r#"title:"""#, 1),
            (r#"title:"   ""#, 1),
            (r#"title:"unterminated"#, 1),
            (r#"title:"unterminated\"#, 1),
            (r#"title:ab"c""#, 1),
            (r#"title:"a"b"#, 1),
            ("title:a title:b", 1),
            ("title:a TITLE:b", 1),
            ("title:a\u{7}b", 1),
            ("search:x title:y", 1),
            ("search:x pr:1 pr_title:y", 1),
            ("bare title:ok nope:1 search:s pr:2", 3),
            (":value", 1),
        ];
        for (input, count) in cases {
            let r = parse_chat_search_query(input).unwrap_err();
            assert_eq!(r.message, "Invalid chat search query.", "{input:?}");
            assert_eq!(r.validations.len(), *count, "{input:?}: {r}");
            assert!(r.validations.iter().all(|v| v.field == "q"));
        }
    }

    #[test]
    fn length_edge() {
        let at = format!("title:{}", "a".repeat(MAX_CHAT_SEARCH_QUERY_BYTES - 6));
        assert_eq!(at.len(), MAX_CHAT_SEARCH_QUERY_BYTES);
        assert!(parse_chat_search_query(&at).is_ok());
        let over = format!("{at}a");
        let r = parse_chat_search_query(&over).unwrap_err();
        assert_eq!(r.validations.len(), 1);
    }

    #[test]
    fn archived_filter_helpers() {
        let cases = [
            (ChatArchivedFilter::Unarchived, Some(false), [true, false]),
            (ChatArchivedFilter::Archived, Some(true), [false, true]),
            (ChatArchivedFilter::Any, None, [true, true]),
        ];
        for (filter, option, [matches_live, matches_archived]) in cases {
            assert_eq!(filter.as_option(), option);
            assert_eq!(filter.matches(false), matches_live);
            assert_eq!(filter.matches(true), matches_archived);
        }
        assert_eq!(
            ChatArchivedFilter::default(),
            ChatArchivedFilter::Unarchived
        );
    }

    #[test]
    fn query_string_round_trip() {
        let full = ChatSearchQuery {
            archived: ChatArchivedFilter::Any,
            title: Some(r#"say "hi" \ there"#.into()),
            has_unread: Some(false),
            status: Some(ChatStatus::Error),
            pr_status: Some(ChatPrStatusFilter::Merged),
            diff_url: Some("https://x.dev/p".into()),
            pr: Some(9),
            repo: Some("a\\b".into()),
            pr_title: Some("x".into()),
            search: None,
        };
        let text = full.to_query_string();
        assert_eq!(
            text,
            r#"archived:any title:"say \"hi\" \\ there" has_unread:false status:error pr_status:merged diff_url:https://x.dev/p pr:9 repo:a\b pr_title:x"#
        );
        assert_eq!(text.parse::<ChatSearchQuery>().unwrap(), full);
        assert_eq!(q().to_string(), "");
        assert!(q().is_default());
    }

    fn value() -> impl Strategy<Value = String> {
        // Trimmed, non-empty, no control characters: the values `q` can carry.
        any::<String>().prop_filter_map("not a q value", |s| {
            let t = s.trim().to_owned();
            (!t.is_empty() && !t.chars().any(char::is_control)).then_some(t)
        })
    }

    fn query() -> impl Strategy<Value = ChatSearchQuery> {
        let archived = prop_oneof![
            Just(ChatArchivedFilter::Unarchived),
            Just(ChatArchivedFilter::Archived),
            Just(ChatArchivedFilter::Any)
        ];
        let status = proptest::sample::select(ChatStatus::ALL.to_vec());
        let pr_status = proptest::sample::select(ChatPrStatusFilter::ALL.to_vec());
        (
            archived,
            proptest::option::of(value()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(status),
            proptest::option::of(pr_status),
            proptest::option::of(Just("https://example.com/pull/1".to_owned())),
            proptest::option::of(1..=i32::MAX),
            proptest::option::of(value()),
            proptest::option::of(value()),
            proptest::option::of(value()),
        )
            .prop_map(
                |(
                    archived,
                    title,
                    has_unread,
                    status,
                    pr_status,
                    diff_url,
                    pr,
                    repo,
                    pr_title,
                    search,
                )| {
                    let mut q = ChatSearchQuery {
                        archived,
                        title,
                        has_unread,
                        status,
                        pr_status,
                        diff_url,
                        pr,
                        repo,
                        pr_title,
                        search,
                    };
                    if q.search.is_some() {
                        q.title = None;
                        q.pr_title = None;
                        q.pr = None;
                    }
                    q
                },
            )
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse_chat_search_query(&s);
        }

        #[test]
        fn never_panics_on_query_like_text(s in r#"([a-zA-Z_]{0,10}:?("[^"]{0,10}"?|[^ "]{0,10})[ \t]?){0,8}"#) {
            match parse_chat_search_query(&s) {
                Ok(parsed) => {
                    let again = parse_chat_search_query(&parsed.to_query_string());
                    prop_assert_eq!(again.ok(), Some(parsed));
                }
                Err(r) => prop_assert!(!r.validations.is_empty()),
            }
        }

        #[test]
        fn formatted_queries_parse_back(query in query()) {
            let text = query.to_query_string();
            if text.len() <= MAX_CHAT_SEARCH_QUERY_BYTES {
                prop_assert_eq!(parse_chat_search_query(&text).ok(), Some(query));
            }
        }
    }
}
