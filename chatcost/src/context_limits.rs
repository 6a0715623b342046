//! The context-limit table: each model's context window in tokens, generated from the same
//! models.dev data and provider mapping as the price book, embedded beside it, and looked
//! up by the same rules.
//!
//! The engine compacts a conversation when it nears the model's context window. A model
//! config may leave that window unset; this table supplies the published one so that
//! compaction does not have to guess, and only a model absent from it needs the engine's
//! fallback.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{CostError, CostErrorKind};
use crate::model_index::ModelIndex;
use crate::models_dev::{
    provider_count, read_providers, render_rows, sort_unique, ProviderMapping,
    MAX_UPSTREAM_JSON_BYTES,
};

/// The embedded table, `data/context_limits.json`, as shipped (regenerated together with
/// the price seed by `CHATD_UPDATE_PRICES=1 cargo test -p chatcost --test it price_seed`).
pub const EMBEDDED_CONTEXT_LIMITS_JSON: &str = include_str!("../data/context_limits.json");

/// Smallest context window kept, in tokens: any positive count, the rule codersdk applies
/// to a model config's `context_limit`, so a window from this table is always one a config
/// could have set itself.
pub const MIN_CONTEXT_LIMIT_TOKENS: i64 = 1;

/// Largest context window kept, in tokens (100 million). The largest windows models.dev
/// lists are a few million tokens; a value far beyond them is a data error (a count in
/// bytes, a sentinel), and trusting it would keep compaction from ever triggering.
pub const MAX_CONTEXT_LIMIT_TOKENS: i64 = 100_000_000;

/// One context-limit row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextLimitRow {
    /// Our provider id (`anthropic`, `bedrock`, `xai`, …).
    pub provider: String,
    /// Model id as on models.dev.
    pub model: String,
    /// Context window in tokens, from [`MIN_CONTEXT_LIMIT_TOKENS`] to
    /// [`MAX_CONTEXT_LIMIT_TOKENS`].
    pub context: i64,
}

/// What [`generate_context_limits`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedContextLimits {
    /// The rows, sorted by provider then model.
    pub rows: Vec<ContextLimitRow>,
    /// Context values skipped as unusable (see [`generate_context_limits`]), one line each.
    pub warnings: Vec<String>,
}

impl GeneratedContextLimits {
    /// The table's file text (see [`render_context_limits`]).
    pub fn to_json(&self) -> String {
        render_context_limits(&self.rows)
    }

    /// How many distinct providers have rows.
    pub fn provider_count(&self) -> usize {
        provider_count(self.rows.iter().map(|r| r.provider.as_str()))
    }
}

/// Writes rows in the table's format: a JSON array, 2-space indented, one object per row
/// with `provider`, `model` and `context` in that order, and a final newline.
pub fn render_context_limits(rows: &[ContextLimitRow]) -> String {
    render_rows(rows)
}

/// The part of a models.dev model the context-limit table reads.
#[derive(Deserialize)]
struct LimitedModel {
    limit: Option<UpstreamLimit>,
}

#[derive(Deserialize)]
struct UpstreamLimit {
    context: Option<Box<RawValue>>,
}

/// What one upstream `limit.context` value amounts to.
enum ContextValue {
    Tokens(i64),
    /// Absent, `null` or `0`: upstream publishes no window.
    Unpublished,
    /// Present but unusable: not an integer, or outside the accepted range.
    Rejected,
}

fn read_context(text: &str) -> ContextValue {
    // An integer literal only: `1.5`, `1e6`, strings and booleans do not parse as `i64`.
    match serde_json::from_str::<i64>(text) {
        Ok(0) => ContextValue::Unpublished,
        Ok(tokens) if (MIN_CONTEXT_LIMIT_TOKENS..=MAX_CONTEXT_LIMIT_TOKENS).contains(&tokens) => {
            ContextValue::Tokens(tokens)
        }
        _ => ContextValue::Rejected,
    }
}

/// Longest excerpt of a rejected upstream value quoted in a warning, in characters, so a
/// huge value cannot flood the generator's output.
const MAX_QUOTED_VALUE_CHARS: usize = 32;

/// Generates context-limit rows from models.dev data: the same input, provider mapping and
/// upstream checks as the price seed's [`crate::generate`], reading each model's
/// `limit.context` instead of its `cost`.
///
/// - Providers are read exactly as for the price seed: an absent or empty mapped provider is
///   [`CostErrorKind::MissingProviders`], input larger than [`MAX_UPSTREAM_JSON_BYTES`] is
///   [`CostErrorKind::UpstreamTooLarge`], malformed JSON (including a `limit` that is not an
///   object) is [`CostErrorKind::Json`].
/// - A model whose `limit` or `limit.context` is absent or `null`, or whose context is `0`
///   (what models.dev gives image, video and speech models), is skipped silently: upstream
///   publishes no window for it.
/// - A context that is not an integer literal, or lies outside
///   [`MIN_CONTEXT_LIMIT_TOKENS`]`..=`[`MAX_CONTEXT_LIMIT_TOKENS`], is skipped with a warning
///   rather than failing the run: one bad upstream entry should not block refreshing the
///   rest, and the model simply falls back to the engine's default.
///
/// Rows are sorted by provider then model (byte order); a repeated (provider, model) pair
/// is [`CostErrorKind::InvalidContextLimits`]. No row at all is
/// [`CostErrorKind::NoContextLimits`], which means the upstream schema changed.
pub fn generate_context_limits(
    upstream_json: &str,
    providers: &[ProviderMapping<'_>],
) -> Result<GeneratedContextLimits, CostError> {
    let parsed = read_providers::<LimitedModel>(upstream_json, providers, MAX_UPSTREAM_JSON_BYTES)?;
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (mapping, models) in parsed {
        for (model, entry) in models {
            let Some(raw) = entry.limit.and_then(|l| l.context) else {
                continue;
            };
            match read_context(raw.get()) {
                ContextValue::Tokens(context) => rows.push(ContextLimitRow {
                    provider: mapping.provider.to_owned(),
                    model,
                    context,
                }),
                ContextValue::Unpublished => {}
                ContextValue::Rejected => {
                    let shown: String = raw.get().chars().take(MAX_QUOTED_VALUE_CHARS).collect();
                    warnings.push(format!(
                        "{}/{model} limit.context: {shown} is not an integer from \
                         {MIN_CONTEXT_LIMIT_TOKENS} to {MAX_CONTEXT_LIMIT_TOKENS}; skipped",
                        mapping.upstream
                    ));
                }
            }
        }
    }
    sort_unique(
        &mut rows,
        |r| (r.provider.as_str(), r.model.as_str()),
        "context-limit row",
        CostErrorKind::InvalidContextLimits,
    )?;
    if rows.is_empty() {
        return Err(CostError::new(
            CostErrorKind::NoContextLimits,
            "converted rows have no context limits; upstream schema may have changed",
        ));
    }
    Ok(GeneratedContextLimits { rows, warnings })
}

/// Context windows by provider and model, with lookup.
///
/// Built from the embedded table ([`ContextLimits::embedded`]) or any table text
/// ([`ContextLimits::from_json`]). Lookups follow [`crate::PriceBook::lookup`]'s rules.
#[derive(Debug, Clone, Default)]
pub struct ContextLimits {
    rows: Vec<ContextLimitRow>,
    index: ModelIndex,
}

impl ContextLimits {
    /// The table shipped in this crate, parsed once on first use.
    ///
    /// The table is checked by this crate's tests; should it ever fail to parse, it is
    /// empty (every lookup `None`, so the engine uses its fallback) rather than a panic.
    pub fn embedded() -> &'static ContextLimits {
        static LIMITS: OnceLock<ContextLimits> = OnceLock::new();
        LIMITS.get_or_init(|| {
            ContextLimits::from_json(EMBEDDED_CONTEXT_LIMITS_JSON).unwrap_or_default()
        })
    }

    /// Parses table text and indexes it.
    ///
    /// Text that is not a JSON array of `{provider, model, context}` rows with an integer
    /// `context` is [`CostErrorKind::InvalidContextLimits`] ("parse context limits: …", the
    /// JSON error as source); otherwise the rules of [`ContextLimits::from_rows`] apply.
    pub fn from_json(json: &str) -> Result<ContextLimits, CostError> {
        let rows: Vec<ContextLimitRow> = serde_json::from_str(json).map_err(|e| {
            CostError::new(
                CostErrorKind::InvalidContextLimits,
                format!("parse context limits: {e}"),
            )
            .with_source(e)
        })?;
        ContextLimits::from_rows(rows)
    }

    /// Indexes rows (any order; kept sorted by provider then model).
    ///
    /// [`CostErrorKind::InvalidContextLimits`] if there are no rows ("context-limit table
    /// is empty"), if a context lies outside
    /// [`MIN_CONTEXT_LIMIT_TOKENS`]`..=`[`MAX_CONTEXT_LIMIT_TOKENS`] (field `context`), if a
    /// provider or model id is empty, or if a (provider, model) pair repeats: the generator
    /// never writes such rows, so a table holding one was edited or damaged.
    pub fn from_rows(mut rows: Vec<ContextLimitRow>) -> Result<ContextLimits, CostError> {
        let invalid = |msg: String| CostError::new(CostErrorKind::InvalidContextLimits, msg);
        if rows.is_empty() {
            return Err(invalid("context-limit table is empty".to_owned()));
        }
        rows.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        let range = MIN_CONTEXT_LIMIT_TOKENS..=MAX_CONTEXT_LIMIT_TOKENS;
        if let Some(row) = rows.iter().find(|r| !range.contains(&r.context)) {
            return Err(invalid(format!(
                "context-limit row {}/{}: context {} is outside \
                 {MIN_CONTEXT_LIMIT_TOKENS}..={MAX_CONTEXT_LIMIT_TOKENS}",
                row.provider, row.model, row.context
            ))
            .with_field("context"));
        }
        let index = ModelIndex::build(
            rows.iter().map(|r| (r.provider.as_str(), r.model.as_str())),
            "context-limit row",
            CostErrorKind::InvalidContextLimits,
        )?;
        Ok(ContextLimits { rows, index })
    }

    /// All rows, sorted by provider then model.
    pub fn rows(&self) -> &[ContextLimitRow] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The context window of `model` at `provider` in tokens, or `None` if the table has
    /// none for it.
    ///
    /// Matching is [`crate::PriceBook::lookup`]'s, so a model config that finds its prices
    /// finds its window under the same spelling: provider trimmed and lowercased
    /// (`amazon-bedrock` accepted for `bedrock`; for `openai-compat` map the base URL with
    /// [`crate::openai_compat_vendor`] first), model exact, then ASCII-case-insensitive,
    /// then the same two steps on the id without a trailing date
    /// (`claude-sonnet-4-5-20250929`, `gpt-4.1-nano-2025-04-14`), a listed dated id winning
    /// over its alias.
    ///
    /// ```
    /// use chatcost::ContextLimits;
    ///
    /// let limits = ContextLimits::embedded();
    /// assert_eq!(limits.lookup("openai", "gpt-4o"), Some(128_000));
    /// assert_eq!(limits.lookup("openai", "no-such-model"), None);
    /// ```
    pub fn lookup(&self, provider: &str, model: &str) -> Option<i64> {
        self.lookup_row(provider, model).map(|r| r.context)
    }

    /// The row [`ContextLimits::lookup`] would use.
    pub fn lookup_row(&self, provider: &str, model: &str) -> Option<&ContextLimitRow> {
        self.rows.get(self.index.find(provider, model)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Option<i64> {
        match read_context(text) {
            ContextValue::Tokens(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn context_values() {
        assert_eq!(tokens("200000"), Some(200_000));
        assert_eq!(tokens("1"), Some(MIN_CONTEXT_LIMIT_TOKENS));
        assert_eq!(tokens("100000000"), Some(MAX_CONTEXT_LIMIT_TOKENS));
        assert!(matches!(read_context("0"), ContextValue::Unpublished));
        for rejected in [
            "100000001",
            "-1",
            "1.5",
            "128000.0",
            "1e6",
            "\"128000\"",
            "true",
            "[1]",
            "99999999999999999999",
        ] {
            assert!(
                matches!(read_context(rejected), ContextValue::Rejected),
                "{rejected}"
            );
        }
    }
}
