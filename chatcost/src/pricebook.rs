//! The price book: a seed of per-model prices generated from models.dev data
//!, embedded in the crate, and its lookup.
//!
//! Seed units are **micro-USD per million tokens** (USD/M × 10^6) as integers; `null`
//! means "upstream did not publish this price" and differs from `0` (free).

use std::sync::OnceLock;

use codersdk::ModelCostConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{CostError, CostErrorKind};
use crate::model_index::ModelIndex;
use crate::models_dev::{
    provider_count, read_providers, render_rows, sort_unique, ProviderMapping,
    MAX_UPSTREAM_JSON_BYTES,
};

/// The embedded seed, `data/prices.json`, as shipped (regenerate it with
/// `CHATD_UPDATE_PRICES=1 cargo test -p chatcost --test it price_seed`).
pub const EMBEDDED_PRICES_JSON: &str = include_str!("../data/prices.json");

/// One price-book row: exactly the six fields of the seed format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRow {
    /// Our provider id (`anthropic`, `bedrock`, `xai`, …).
    pub provider: String,
    /// Model id as on models.dev.
    pub model: String,
    /// Input price, micro-USD per million tokens; `None` = not published.
    pub input_price: Option<i64>,
    /// Output price, micro-USD per million tokens; `None` = not published.
    pub output_price: Option<i64>,
    /// Cache-read price, micro-USD per million tokens; `None` = not published.
    pub cache_read_price: Option<i64>,
    /// Cache-write price, micro-USD per million tokens; `None` = not published.
    pub cache_write_price: Option<i64>,
}

impl PriceRow {
    /// The row's prices as USD-per-million decimals: `micros / 10^6`, exactly. `None`
    /// stays `None`, `0` stays `0`.
    pub fn to_cost_config(&self) -> ModelCostConfig {
        let usd = |micros: Option<i64>| micros.map(|m| Decimal::new(m, 6).normalize());
        ModelCostConfig {
            input_price_per_million_tokens: usd(self.input_price),
            output_price_per_million_tokens: usd(self.output_price),
            cache_read_price_per_million_tokens: usd(self.cache_read_price),
            cache_write_price_per_million_tokens: usd(self.cache_write_price),
        }
    }

    fn prices(&self) -> [(&'static str, Option<i64>); 4] {
        [
            ("input_price", self.input_price),
            ("output_price", self.output_price),
            ("cache_read_price", self.cache_read_price),
            ("cache_write_price", self.cache_write_price),
        ]
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSeed {
    /// The rows, sorted by provider then model.
    pub rows: Vec<PriceRow>,
    /// Prices dropped to `null` (negative upstream values), one line each.
    pub warnings: Vec<String>,
}

impl GeneratedSeed {
    /// The seed file text (see [`render_seed`]).
    pub fn to_json(&self) -> String {
        render_seed(&self.rows)
    }

    /// How many distinct providers have rows.
    pub fn provider_count(&self) -> usize {
        provider_count(self.rows.iter().map(|r| r.provider.as_str()))
    }
}

/// Writes rows in the seed format: a JSON array, 2-space indented, one object per row with
/// the six fields in order, `null` for unpublished prices, and a final newline.
pub fn render_seed(rows: &[PriceRow]) -> String {
    render_rows(rows)
}

/// The part of a models.dev model the price seed reads.
#[derive(Deserialize)]
struct PricedModel {
    cost: Option<UpstreamCost>,
}

#[derive(Deserialize)]
struct UpstreamCost {
    input: Option<Box<RawValue>>,
    output: Option<Box<RawValue>>,
    cache_read: Option<Box<RawValue>>,
    cache_write: Option<Box<RawValue>>,
}

/// Generates price rows from models.dev data, following Coder's generator rules (described in docs/cost.md).
///
/// `upstream_json` is models.dev's `api.json` (provider key → `{models: {model id →
/// {cost: {input, output, cache_read, cache_write, …}}}}`, prices in USD per million
/// tokens), or our snapshot of it, which wraps that map as `{"origin": …, "providers": …}`.
/// For each mapping, in order:
/// - a provider that is absent or has no models is collected; if any is, the result is
///   [`CostErrorKind::MissingProviders`] ("providers missing or empty in upstream: […]")
///   and no partial seed;
/// - models without `cost`, or whose `cost` has none of the four keys, are skipped
///   (`tiers`, `reasoning`, `input_audio` and other keys are ignored);
/// - each price converts to micro-USD per million as round-half-away-from-zero(price ×
///   10^6), exactly from the number's text (never through `f64`); absent or `null` ⇒
///   `None`; negative ⇒ `None` plus a warning. A price that is not a JSON number, or does not
///   fit an `i64` after conversion, is [`CostErrorKind::InvalidPrice`].
///
/// Rows are sorted by provider then model (byte order). If no row has an input or output
/// price the result is [`CostErrorKind::NoPricingData`]. Input larger than
/// [`MAX_UPSTREAM_JSON_BYTES`] is [`CostErrorKind::UpstreamTooLarge`]; malformed JSON is
/// [`CostErrorKind::Json`].
pub fn generate(
    upstream_json: &str,
    providers: &[ProviderMapping<'_>],
) -> Result<GeneratedSeed, CostError> {
    let parsed = read_providers::<PricedModel>(upstream_json, providers, MAX_UPSTREAM_JSON_BYTES)?;
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (mapping, models) in parsed {
        for (model, entry) in models {
            let Some(cost) = entry.cost else {
                continue;
            };
            let fields = [
                ("input", &cost.input),
                ("output", &cost.output),
                ("cache_read", &cost.cache_read),
                ("cache_write", &cost.cache_write),
            ];
            if fields.iter().all(|(_, v)| v.is_none()) {
                continue;
            }
            let mut micros = [None; 4];
            for ((name, raw), slot) in fields.iter().zip(micros.iter_mut()) {
                let Some(raw) = raw else {
                    continue;
                };
                let path = format!("{}/{model} cost.{name}", mapping.upstream);
                *slot = match usd_per_million_to_micros(raw.get(), &path)? {
                    Converted::Micros(m) => Some(m),
                    Converted::Negative => {
                        warnings.push(format!(
                            "{path}: negative price {} treated as not published",
                            raw.get()
                        ));
                        None
                    }
                };
            }
            let [input_price, output_price, cache_read_price, cache_write_price] = micros;
            rows.push(PriceRow {
                provider: mapping.provider.to_owned(),
                model,
                input_price,
                output_price,
                cache_read_price,
                cache_write_price,
            });
        }
    }
    sort_unique(
        &mut rows,
        |r| (r.provider.as_str(), r.model.as_str()),
        "price row",
        CostErrorKind::InvalidPriceSeed,
    )?;
    if !rows
        .iter()
        .any(|r| r.input_price.is_some() || r.output_price.is_some())
    {
        return Err(CostError::new(
            CostErrorKind::NoPricingData,
            "converted rows have no pricing data; upstream schema may have changed",
        ));
    }
    Ok(GeneratedSeed { rows, warnings })
}

#[derive(Debug)]
enum Converted {
    Micros(i64),
    Negative,
}

/// USD per million (JSON number text) → micro-USD per million, round half away from zero,
/// computed on the exact decimal.
fn usd_per_million_to_micros(text: &str, path: &str) -> Result<Converted, CostError> {
    let text = text.trim();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        let shown: String = text.chars().take(32).collect();
        return Err(CostError::new(
            CostErrorKind::InvalidPrice,
            format!("upstream price {path}: expected a JSON number, found {shown}"),
        )
        .with_field(path));
    }
    let price = codersdk::parse_decimal(text).map_err(|e| {
        CostError::new(
            CostErrorKind::InvalidPrice,
            format!("upstream price {path}: {e}"),
        )
        .with_field(path)
        .with_source(e)
    })?;
    if price < Decimal::ZERO {
        return Ok(Converted::Negative);
    }
    let too_large = || {
        CostError::new(
            CostErrorKind::InvalidPrice,
            format!("upstream price {path}: {price} USD per million tokens does not fit in i64 micro-USD"),
        )
        .with_field(path)
    };
    let micros = round_half_away_micros(price).ok_or_else(too_large)?;
    i64::try_from(micros)
        .map(Converted::Micros)
        .map_err(|_| too_large())
}

/// `round_half_away_from_zero(price × 10^6)` for a non-negative price, exactly.
fn round_half_away_micros(price: Decimal) -> Option<i128> {
    let mantissa = price.mantissa();
    let scale = price.scale();
    if scale <= 6 {
        return mantissa.checked_mul(10i128.checked_pow(6 - scale)?);
    }
    let divisor = 10i128.checked_pow(scale - 6)?;
    let (q, r) = (mantissa / divisor, mantissa % divisor);
    // Half away from zero: a remainder of at least half the divisor rounds up.
    Some(if r.checked_mul(2)? >= divisor {
        q + 1
    } else {
        q
    })
}

/// Maps an `openai-compat` base URL to the vendor whose prices apply, when the host is a
/// known vendor API: `*.x.ai` ⇒ `"xai"`, `*.deepseek.com` ⇒ `"deepseek"`. Anything else
/// ⇒ `None` (an unknown vendor stays unpriced).
///
/// ```
/// use chatcost::{openai_compat_vendor, PriceBook};
///
/// let vendor = openai_compat_vendor("https://api.deepseek.com/v1");
/// assert_eq!(vendor, Some("deepseek"));
/// assert!(PriceBook::embedded().lookup(vendor.unwrap_or("openai-compat"), "deepseek-chat").is_some());
/// ```
pub fn openai_compat_vendor(base_url: &str) -> Option<&'static str> {
    let rest = base_url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if is("x.ai") {
        Some("xai")
    } else if is("deepseek.com") {
        Some("deepseek")
    } else {
        None
    }
}

/// Per-model prices by provider, with lookup.
///
/// Built from the embedded seed ([`PriceBook::embedded`]) or any seed text
/// ([`PriceBook::from_json`]). Lookups are documented on [`PriceBook::lookup`].
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    rows: Vec<PriceRow>,
    index: ModelIndex,
}

impl PriceBook {
    /// The price book shipped in this crate, parsed once on first use.
    ///
    /// The seed is checked by this crate's tests; should it ever fail to parse, the book is
    /// empty (every model unpriced) rather than a panic.
    pub fn embedded() -> &'static PriceBook {
        static BOOK: OnceLock<PriceBook> = OnceLock::new();
        BOOK.get_or_init(|| PriceBook::from_json(EMBEDDED_PRICES_JSON).unwrap_or_default())
    }

    /// Parses seed text and indexes it.
    ///
    /// Text that is not a JSON array of six-field rows with integer-or-null prices is
    /// [`CostErrorKind::InvalidPriceSeed`] ("parse price seed: …", the JSON error as source);
    /// otherwise the rules of [`PriceBook::from_rows`] apply.
    pub fn from_json(json: &str) -> Result<PriceBook, CostError> {
        let rows: Vec<PriceRow> = serde_json::from_str(json).map_err(|e| {
            CostError::new(
                CostErrorKind::InvalidPriceSeed,
                format!("parse price seed: {e}"),
            )
            .with_source(e)
        })?;
        PriceBook::from_rows(rows)
    }

    /// Indexes rows (any order; kept sorted by provider then model).
    ///
    /// [`CostErrorKind::InvalidPriceSeed`] if there are no rows ("price seed is empty"), if
    /// a provider or model id is empty, if a price is negative, or if a (provider, model)
    /// pair repeats.
    pub fn from_rows(mut rows: Vec<PriceRow>) -> Result<PriceBook, CostError> {
        let invalid = |msg: String| CostError::new(CostErrorKind::InvalidPriceSeed, msg);
        if rows.is_empty() {
            return Err(invalid("price seed is empty".to_owned()));
        }
        rows.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        for row in &rows {
            if let Some((field, value)) = row
                .prices()
                .into_iter()
                .find(|(_, p)| p.is_some_and(|p| p < 0))
            {
                return Err(invalid(format!(
                    "price row {}/{}: {field} is negative ({})",
                    row.provider,
                    row.model,
                    value.unwrap_or_default()
                ))
                .with_field(field));
            }
        }
        let index = ModelIndex::build(
            rows.iter().map(|r| (r.provider.as_str(), r.model.as_str())),
            "price row",
            CostErrorKind::InvalidPriceSeed,
        )?;
        Ok(PriceBook { rows, index })
    }

    /// All rows, sorted by provider then model.
    pub fn rows(&self) -> &[PriceRow] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the book has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The prices of `model` at `provider` as USD-per-million decimals, or `None` if the
    /// book has no published price for it.
    ///
    /// - `provider` is trimmed and lowercased; models.dev's `amazon-bedrock` is accepted
    ///   for `bedrock`. `openai-compat` has no rows (its vendor is unknown): map the base URL
    ///   with [`openai_compat_vendor`] first.
    /// - `model` matches exactly, then ASCII-case-insensitively (trimmed); if neither
    ///   matches and it ends in a date (`-YYYYMMDD`, e.g. `claude-sonnet-4-5-20250929`, or
    ///   `-YYYY-MM-DD`, e.g. `gpt-4.1-nano-2025-04-14`), the same two steps run on the
    ///   undated alias. A dated id listed upstream always wins over its alias, which matters
    ///   when a snapshot's price differs (`gpt-4o-2024-05-13`).
    /// - A row with all four prices `null` gives `None`. Every price is exact (`micros /
    ///   10^6`); `null` stays `None` and `0` stays `0`.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<ModelCostConfig> {
        let cost = self.lookup_row(provider, model)?.to_cost_config();
        (!cost.is_empty()).then_some(cost)
    }

    /// The row [`PriceBook::lookup`] would use, with its micro-USD integers.
    pub fn lookup_row(&self, provider: &str, model: &str) -> Option<&PriceRow> {
        self.rows.get(self.index.find(provider, model)?)
    }

    /// Fills the prices `cost` leaves unset from this book (what the engine does before
    /// costing a call). Returns whether the book had prices for the model.
    pub fn fill_missing(
        &self,
        provider: &str,
        model: &str,
        cost: &mut Option<ModelCostConfig>,
    ) -> bool {
        match self.lookup(provider, model) {
            Some(book) => {
                crate::merge_missing_model_cost_config(cost, Some(&book));
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn micros(text: &str) -> Option<i64> {
        match usd_per_million_to_micros(text, "p").unwrap() {
            Converted::Micros(m) => Some(m),
            Converted::Negative => None,
        }
    }

    #[test]
    fn to_micros_vectors() {
        // The generator's reference vectors.
        assert_eq!(micros("0"), Some(0));
        assert_eq!(micros("3"), Some(3_000_000));
        assert_eq!(micros("0.075"), Some(75_000));
        assert_eq!(micros("-1"), None);
        assert_eq!(micros("0.3"), Some(300_000));
        assert_eq!(micros("3.75"), Some(3_750_000));
        assert_eq!(micros("2.5"), Some(2_500_000));
        // Half away from zero, decided on the exact decimal (f64 would see 0.49999…).
        assert_eq!(micros("0.0000005"), Some(1));
        assert_eq!(micros("0.00000049999999"), Some(0));
        assert_eq!(micros("0.0000015"), Some(2));
        assert_eq!(micros("1e-7"), Some(0));
        assert_eq!(micros("1.5e-6"), Some(2));
        assert_eq!(micros("2.5E1"), Some(25_000_000));
        assert_eq!(micros("0.30000000000000004"), Some(300_000));
        assert_eq!(micros("-0"), Some(0));
    }

    #[test]
    fn to_micros_limits() {
        // i64::MAX micro-USD is the largest representable price.
        assert_eq!(micros("9223372036854.775807"), Some(i64::MAX));
        assert!(usd_per_million_to_micros("9223372036854.775808", "p")
            .unwrap_err()
            .is_invalid_price());
        assert!(usd_per_million_to_micros("1e30", "p")
            .unwrap_err()
            .is_invalid_price());
        assert!(usd_per_million_to_micros("\"3\"", "p")
            .unwrap_err()
            .is_invalid_price());
        assert!(usd_per_million_to_micros("true", "p")
            .unwrap_err()
            .is_invalid_price());
        let long = format!("0.{}", "1".repeat(40));
        assert!(usd_per_million_to_micros(&long, "p")
            .unwrap_err()
            .is_invalid_price());
    }

    #[test]
    fn vendor_from_base_url() {
        assert_eq!(openai_compat_vendor("https://api.x.ai/v1"), Some("xai"));
        assert_eq!(openai_compat_vendor("api.x.ai"), Some("xai"));
        assert_eq!(
            openai_compat_vendor("https://API.DeepSeek.com:443/v1?x=1"),
            Some("deepseek")
        );
        assert_eq!(
            openai_compat_vendor("https://user@api.deepseek.com./"),
            Some("deepseek")
        );
        assert_eq!(openai_compat_vendor("https://notx.ai/v1"), None);
        assert_eq!(
            openai_compat_vendor("https://deepseek.com.evil.example/v1"),
            None
        );
        assert_eq!(openai_compat_vendor("http://localhost:8000/v1"), None);
        assert_eq!(openai_compat_vendor(""), None);
    }

    #[test]
    fn row_to_cost_config_is_exact() {
        let row = PriceRow {
            provider: "openai".into(),
            model: "m".into(),
            input_price: Some(2_500_000),
            output_price: Some(1),
            cache_read_price: Some(0),
            cache_write_price: None,
        };
        let c = row.to_cost_config();
        assert_eq!(
            c.input_price_per_million_tokens,
            Some(Decimal::from_str("2.5").unwrap())
        );
        assert_eq!(
            c.output_price_per_million_tokens,
            Some(Decimal::from_str("0.000001").unwrap())
        );
        assert_eq!(c.cache_read_price_per_million_tokens, Some(Decimal::ZERO));
        assert_eq!(c.cache_write_price_per_million_tokens, None);
        let max = PriceRow {
            input_price: Some(i64::MAX),
            ..row
        };
        assert_eq!(
            max.to_cost_config().input_price_per_million_tokens,
            Some(Decimal::from_str("9223372036854.775807").unwrap())
        );
    }
}
