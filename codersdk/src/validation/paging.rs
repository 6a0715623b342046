//! Query parameters of the list routes: message pages, the chat list page, the stream
//! cursor and workspace id lookups.

use std::collections::HashSet;

use uuid::Uuid;

use super::{present, quoted, single, Problems};
use crate::Response;

/// Page size of `GET /chats/{chat}/messages` when `limit` is absent.
pub const DEFAULT_MESSAGE_PAGE_LIMIT: i64 = 50;

/// Largest page size of `GET /chats/{chat}/messages`.
pub const MAX_MESSAGE_PAGE_LIMIT: i64 = 200;

/// Page size of `GET /chats` when `limit` is absent or `0`.
pub const DEFAULT_CHAT_LIST_LIMIT: i64 = 50;

/// Largest page size of `GET /chats`. The spec leaves the maximum open; every root chat
/// carries its children, so pages are kept to the same bound as message pages.
pub const MAX_CHAT_LIST_LIMIT: i64 = 200;

/// Largest `offset` of `GET /chats`: Coder's database parameter is a 32-bit integer.
pub const MAX_CHAT_LIST_OFFSET: i64 = i32::MAX as i64;

/// Most workspace ids in one `GET /chats/by-workspace` lookup.
pub const MAX_WORKSPACE_IDS_PER_LOOKUP: usize = 25;

const MSG_QUERY: &str = "Invalid query parameters.";

fn positive_id(name: &str, raw: Option<&str>, p: &mut Problems) -> Option<i64> {
    let raw = present(raw)?;
    match raw.parse::<i64>() {
        Ok(v) if v > 0 => Some(v),
        _ => {
            p.push(
                name,
                format!(
                    "{name} must be a positive integer message ID, not {}.",
                    quoted(raw)
                ),
            );
            None
        }
    }
}

/// A validated page request of `GET /chats/{chat}/messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagePage {
    /// Only messages with a smaller id.
    pub before_id: Option<i64>,
    /// Only messages with a larger id.
    pub after_id: Option<i64>,
    /// Page size, 1 to [`MAX_MESSAGE_PAGE_LIMIT`].
    pub limit: i64,
    /// Oldest first (only `after_id` given); otherwise newest first.
    pub ascending: bool,
}

impl MessagePage {
    /// Rows to read: one more than the page, to compute `has_more`.
    pub fn fetch_limit(&self) -> i64 {
        self.limit.saturating_add(1)
    }

    /// Whether a cursor was given; `queued_messages` is filled only without one.
    pub fn has_cursor(&self) -> bool {
        self.before_id.is_some() || self.after_id.is_some()
    }
}

/// Parses `before_id`, `after_id` and `limit` of `GET /chats/{chat}/messages`:
/// cursors are positive integers, `limit` is 1–[`MAX_MESSAGE_PAGE_LIMIT`] (default
/// [`DEFAULT_MESSAGE_PAGE_LIMIT`]), and `after_id` must be below `before_id`. Empty
/// parameters count as absent.
pub fn parse_message_page(
    before_id: Option<&str>,
    after_id: Option<&str>,
    limit: Option<&str>,
) -> Result<MessagePage, Response> {
    let mut p = Problems::default();
    let before = positive_id("before_id", before_id, &mut p);
    let after = positive_id("after_id", after_id, &mut p);
    let limit = match present(limit) {
        None => DEFAULT_MESSAGE_PAGE_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if (1..=MAX_MESSAGE_PAGE_LIMIT).contains(&v) => v,
            _ => {
                p.push(
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {MAX_MESSAGE_PAGE_LIMIT}, not {}.",
                        quoted(raw)
                    ),
                );
                DEFAULT_MESSAGE_PAGE_LIMIT
            }
        },
    };
    if let (Some(b), Some(a)) = (before, after) {
        if a >= b {
            p.push(
                "after_id",
                format!("after_id ({a}) must be smaller than before_id ({b})."),
            );
        }
    }
    p.finish(MSG_QUERY)?;
    Ok(MessagePage {
        before_id: before,
        after_id: after,
        limit,
        ascending: after.is_some() && before.is_none(),
    })
}

/// Parses the `after_id` query parameter of the per-chat stream: any 64-bit
/// integer, or absent.
pub fn parse_stream_after_id(raw: Option<&str>) -> Result<Option<i64>, Response> {
    let Some(raw) = present(raw) else {
        return Ok(None);
    };
    raw.parse::<i64>().map(Some).map_err(|_| {
        single(
            MSG_QUERY,
            "after_id",
            format!(
                "after_id must be an integer message ID, not {}.",
                quoted(raw)
            ),
        )
    })
}

/// A validated page request of `GET /chats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatListPage {
    /// Page size, 1 to [`MAX_CHAT_LIST_LIMIT`].
    pub limit: i64,
    /// Rows to skip, 0 to [`MAX_CHAT_LIST_OFFSET`].
    pub offset: i64,
    /// Return chats that sort after this chat.
    pub after_id: Option<Uuid>,
}

/// Parses `limit`, `offset` and `after_id` of `GET /chats`. `limit` absent or `0` means
/// [`DEFAULT_CHAT_LIST_LIMIT`] (Go clients send the zero value for "unset"), otherwise
/// 1–[`MAX_CHAT_LIST_LIMIT`]; `offset` is 0–[`MAX_CHAT_LIST_OFFSET`]; `after_id` is a
/// UUID, the nil UUID meaning "none" as in Coder's pagination.
pub fn parse_chat_list_page(
    limit: Option<&str>,
    offset: Option<&str>,
    after_id: Option<&str>,
) -> Result<ChatListPage, Response> {
    let mut p = Problems::default();
    let limit = match present(limit) {
        None => DEFAULT_CHAT_LIST_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(0) => DEFAULT_CHAT_LIST_LIMIT,
            Ok(v) if (1..=MAX_CHAT_LIST_LIMIT).contains(&v) => v,
            _ => {
                p.push(
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {MAX_CHAT_LIST_LIMIT}, not {}.",
                        quoted(raw)
                    ),
                );
                DEFAULT_CHAT_LIST_LIMIT
            }
        },
    };
    let offset = match present(offset) {
        None => 0,
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if (0..=MAX_CHAT_LIST_OFFSET).contains(&v) => v,
            _ => {
                p.push(
                    "offset",
                    format!(
                        "offset must be a whole number from 0 to {MAX_CHAT_LIST_OFFSET}, not {}.",
                        quoted(raw)
                    ),
                );
                0
            }
        },
    };
    let after_id = match present(after_id) {
        None => None,
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => (!id.is_nil()).then_some(id),
            Err(_) => {
                p.push(
                    "after_id",
                    format!("after_id must be a chat UUID, not {}.", quoted(raw)),
                );
                None
            }
        },
    };
    p.finish(MSG_QUERY)?;
    Ok(ChatListPage {
        limit,
        offset,
        after_id,
    })
}

/// Parses `workspace_ids` of `GET /chats/by-workspace`: comma-separated UUIDs, at
/// most [`MAX_WORKSPACE_IDS_PER_LOOKUP`], duplicates removed. Blank items are skipped.
pub fn parse_workspace_ids(raw: &str) -> Result<Vec<Uuid>, Response> {
    let mut p = Problems::default();
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Uuid::parse_str(item) {
            Ok(id) => {
                if seen.insert(id) {
                    ids.push(id);
                }
            }
            Err(_) => p.push(
                "workspace_ids",
                format!("{} is not a workspace UUID.", quoted(item)),
            ),
        }
        if ids.len() > MAX_WORKSPACE_IDS_PER_LOOKUP {
            p.push(
                "workspace_ids",
                format!("At most {MAX_WORKSPACE_IDS_PER_LOOKUP} workspace IDs may be given."),
            );
            break;
        }
    }
    p.finish(MSG_QUERY)?;
    Ok(ids)
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
    use crate::validation::test_support::*;
    use proptest::prelude::*;

    #[test]
    fn message_page_table() {
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Result<MessagePage, Vec<&'static str>>,
        );
        let page = |before_id, after_id, limit, ascending| MessagePage {
            before_id,
            after_id,
            limit,
            ascending,
        };
        let cases: Vec<Case> = vec![
            (None, None, None, Ok(page(None, None, 50, false))),
            (
                Some(""),
                Some(""),
                Some(""),
                Ok(page(None, None, 50, false)),
            ),
            (None, Some("5"), None, Ok(page(None, Some(5), 50, true))),
            (Some("10"), None, None, Ok(page(Some(10), None, 50, false))),
            (
                Some("10"),
                Some("5"),
                Some("7"),
                Ok(page(Some(10), Some(5), 7, false)),
            ),
            (None, None, Some("1"), Ok(page(None, None, 1, false))),
            (None, None, Some("200"), Ok(page(None, None, 200, false))),
            (None, None, Some("201"), Err(vec!["limit"])),
            (None, None, Some("0"), Err(vec!["limit"])),
            (None, None, Some("-3"), Err(vec!["limit"])),
            (None, None, Some("ten"), Err(vec!["limit"])),
            (Some("5"), Some("5"), None, Err(vec!["after_id"])),
            (Some("5"), Some("6"), None, Err(vec!["after_id"])),
            (Some("0"), None, None, Err(vec!["before_id"])),
            (Some("-1"), None, None, Err(vec!["before_id"])),
            (None, Some("1.5"), None, Err(vec!["after_id"])),
            (
                Some("x"),
                Some("y"),
                Some("z"),
                Err(vec!["before_id", "after_id", "limit"]),
            ),
            (
                Some("99999999999999999999"),
                None,
                None,
                Err(vec!["before_id"]),
            ),
        ];
        for (before, after, limit, want) in cases {
            match (parse_message_page(before, after, limit), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(r), Err(f)) => {
                    assert_eq!(r.message, "Invalid query parameters.");
                    assert_eq!(fields(&r), f, "{before:?} {after:?} {limit:?}");
                }
                (got, want) => panic!("{before:?} {after:?} {limit:?}: {got:?} vs {want:?}"),
            }
        }
        let p = parse_message_page(None, None, Some("200")).unwrap();
        assert_eq!(p.fetch_limit(), 201);
        assert!(!p.has_cursor());
        assert!(parse_message_page(Some("3"), None, None)
            .unwrap()
            .has_cursor());
    }

    #[test]
    fn stream_after_id() {
        assert_eq!(parse_stream_after_id(None).unwrap(), None);
        assert_eq!(parse_stream_after_id(Some("")).unwrap(), None);
        assert_eq!(parse_stream_after_id(Some("0")).unwrap(), Some(0));
        assert_eq!(parse_stream_after_id(Some("42")).unwrap(), Some(42));
        assert_eq!(
            fields(&parse_stream_after_id(Some("4x")).unwrap_err()),
            vec!["after_id"]
        );
    }

    #[test]
    fn chat_list_page_table() {
        let id = Uuid::from_u128(77);
        let id_text = id.to_string();
        let nil_text = Uuid::nil().to_string();
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Result<ChatListPage, Vec<&'static str>>,
        );
        let page = |limit, offset, after_id| ChatListPage {
            limit,
            offset,
            after_id,
        };
        let cases: Vec<Case> = vec![
            (None, None, None, Ok(page(50, 0, None))),
            (Some("0"), Some("0"), Some(""), Ok(page(50, 0, None))),
            (Some("1"), None, None, Ok(page(1, 0, None))),
            (
                Some("200"),
                Some("2147483647"),
                Some(&id_text),
                Ok(page(200, MAX_CHAT_LIST_OFFSET, Some(id))),
            ),
            (None, None, Some(&nil_text), Ok(page(50, 0, None))),
            (Some("201"), None, None, Err(vec!["limit"])),
            (Some("-1"), None, None, Err(vec!["limit"])),
            (None, Some("2147483648"), None, Err(vec!["offset"])),
            (None, Some("-1"), None, Err(vec!["offset"])),
            (None, None, Some("not-a-uuid"), Err(vec!["after_id"])),
        ];
        for (limit, offset, after, want) in cases {
            match (parse_chat_list_page(limit, offset, after), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(r), Err(f)) => assert_eq!(fields(&r), f),
                (got, want) => panic!("{limit:?} {offset:?} {after:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn workspace_ids_param() {
        let ids: Vec<Uuid> = (1..=30).map(Uuid::from_u128).collect();
        let join = |n: usize| {
            ids.iter()
                .take(n)
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            parse_workspace_ids(&join(MAX_WORKSPACE_IDS_PER_LOOKUP))
                .unwrap()
                .len(),
            25
        );
        assert!(parse_workspace_ids(&join(MAX_WORKSPACE_IDS_PER_LOOKUP + 1)).is_err());
        assert_eq!(parse_workspace_ids("").unwrap(), Vec::<Uuid>::new());
        let one = ids[0].to_string();
        assert_eq!(
            parse_workspace_ids(&format!(" {one} ,,{one}")).unwrap(),
            vec![ids[0]]
        );
        assert_eq!(
            fields(&parse_workspace_ids("nope").unwrap_err()),
            vec!["workspace_ids"]
        );
    }

    proptest! {
        #[test]
        fn string_params_never_panic(s in any::<String>()) {
            let _ = parse_stream_after_id(Some(&s));
            let _ = parse_workspace_ids(&s);
        }

        #[test]
        fn page_parsers_never_panic(a in any::<Option<String>>(), b in any::<Option<String>>(), c in any::<Option<String>>()) {
            if let Ok(p) = parse_message_page(a.as_deref(), b.as_deref(), c.as_deref()) {
                prop_assert!((1..=MAX_MESSAGE_PAGE_LIMIT).contains(&p.limit));
                if let (Some(before), Some(after)) = (p.before_id, p.after_id) {
                    prop_assert!(after < before);
                }
            }
            if let Ok(p) = parse_chat_list_page(a.as_deref(), b.as_deref(), c.as_deref()) {
                prop_assert!((1..=MAX_CHAT_LIST_LIMIT).contains(&p.limit));
                prop_assert!((0..=MAX_CHAT_LIST_OFFSET).contains(&p.offset));
            }
        }

        #[test]
        fn numeric_page_params_round_trip(before in 1i64.., after in 1i64.., limit in -5i64..300) {
            let r = parse_message_page(Some(&before.to_string()), Some(&after.to_string()), Some(&limit.to_string()));
            prop_assert_eq!(r.is_ok(), after < before && (1..=MAX_MESSAGE_PAGE_LIMIT).contains(&limit));
        }
    }
}
