//! Model-facing names of MCP tools: `<slug>__<tool>`, sanitized to what every provider
//! accepts, truncated to the provider limit, in a deterministic order.

use std::collections::BTreeSet;

use codersdk::{Uuid, MAX_DYNAMIC_TOOL_NAME_BYTES};

/// Between the server's slug and the tool's name.
pub const NAME_SEPARATOR: &str = "__";

/// The longest model-facing tool name: what the strictest provider accepts (64 bytes of
/// `[A-Za-z0-9_-]`, the rule dynamic tools follow too).
pub const MAX_TOOL_NAME_BYTES: usize = MAX_DYNAMIC_TOOL_NAME_BYTES;

/// `text` with every byte outside `[A-Za-z0-9_-]` replaced by `_`; an empty result is
/// `_` so the name always has both halves.
pub fn sanitize(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".to_owned()
    } else {
        s
    }
}

/// The model-facing name of `tool` on the server with `slug`: sanitized halves joined by
/// [`NAME_SEPARATOR`], cut to [`MAX_TOOL_NAME_BYTES`] (every character is ASCII after
/// sanitizing, so any cut is on a character boundary).
pub fn prefixed_name(slug: &str, tool: &str) -> String {
    let mut name = format!("{}{NAME_SEPARATOR}{}", sanitize(slug), sanitize(tool));
    name.truncate(MAX_TOOL_NAME_BYTES);
    name
}

/// One server's tool before naming: which server, its original name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTool<T> {
    /// The model-facing name.
    pub name: String,
    /// The server's config id (the tie-breaker of the order).
    pub server_id: Uuid,
    /// The tool as the server listed it.
    pub tool: T,
}

/// Orders the tools of every server of a turn by model-facing name, then server id, and
/// keeps the first of each name: two tools that sanitize to the same name cannot both be
/// reachable, so the later ones are returned apart for a warning.
pub fn order_and_dedupe<T>(mut tools: Vec<NamedTool<T>>) -> (Vec<NamedTool<T>>, Vec<NamedTool<T>>) {
    tools.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.server_id.cmp(&b.server_id))
    });
    let mut seen = BTreeSet::new();
    let mut kept = Vec::with_capacity(tools.len());
    let mut dropped = Vec::new();
    for t in tools {
        if seen.insert(t.name.clone()) {
            kept.push(t);
        } else {
            dropped.push(t);
        }
    }
    (kept, dropped)
}

/// Whether a server's tool passes the config's filters: a non-empty allow list keeps only
/// the tools it names (and the deny list is ignored); otherwise the deny list drops the
/// tools it names. Matching is exact, on the server's original name.
pub fn passes_filters(tool: &str, allow: &[String], deny: &[String]) -> bool {
    if !allow.is_empty() {
        return allow.iter().any(|a| a == tool);
    }
    !deny.iter().any(|d| d == tool)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_prefixed_and_cut_at_the_limit() {
        assert_eq!(
            prefixed_name("everything", "get-sum"),
            "everything__get-sum"
        );
        assert_eq!(
            prefixed_name("my server", "tool.v2/ä"),
            "my_server__tool_v2__"
        );
        assert_eq!(prefixed_name("", ""), "____");
        let long = prefixed_name("s", &"x".repeat(100));
        assert_eq!(long.len(), MAX_TOOL_NAME_BYTES);
        let exact = prefixed_name("s", &"x".repeat(MAX_TOOL_NAME_BYTES - 3));
        assert_eq!(exact.len(), MAX_TOOL_NAME_BYTES);
        assert!(exact.ends_with('x'));
    }

    #[test]
    fn order_is_by_name_then_server_and_duplicates_are_dropped() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let t = |name: &str, server_id, tool: &str| NamedTool {
            name: name.into(),
            server_id,
            tool: tool.to_owned(),
        };
        let (kept, dropped) = order_and_dedupe(vec![
            t("s__b", a, "b"),
            t("s__a_b", b, "a.b"),
            t("s__a_b", a, "a b"),
            t("s__a", a, "a"),
        ]);
        let names: Vec<_> = kept
            .iter()
            .map(|k| (k.name.as_str(), k.tool.as_str()))
            .collect();
        assert_eq!(names, [("s__a", "a"), ("s__a_b", "a b"), ("s__b", "b")]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].tool, "a.b");
    }

    #[test]
    fn allow_list_wins_over_deny_list() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(passes_filters("echo", &[], &[]));
        assert!(!passes_filters("echo", &[], &l(&["echo"])));
        assert!(passes_filters("echo", &l(&["echo"]), &l(&["echo"])));
        assert!(!passes_filters("add", &l(&["echo"]), &[]));
        // Exact: no case folding, no sanitizing.
        assert!(passes_filters("Echo", &[], &l(&["echo"])));
    }
}
