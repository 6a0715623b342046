//! How a configured (provider, model) pair finds its row in a table generated from
//! models.dev. The price book and the context-limit table share these rules so that a
//! model that has a price also finds its context window, under the same spelling.

use std::collections::HashMap;

use crate::error::{CostError, CostErrorKind};

/// Row positions by provider, then by model id as written and ASCII-lowercased.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelIndex {
    providers: HashMap<String, ProviderIndex>,
}

#[derive(Debug, Clone, Default)]
struct ProviderIndex {
    exact: HashMap<String, usize>,
    folded: HashMap<String, usize>,
}

impl ModelIndex {
    /// Indexes `(provider, model)` keys, the i-th key naming row i.
    ///
    /// Keys should come in sorted order, which makes the first of several case-variants win
    /// deterministically. An empty provider or model id, or a repeated pair, is `kind`,
    /// with `noun` ("price row", …) naming what the keys belong to.
    pub(crate) fn build<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
        noun: &str,
        kind: CostErrorKind,
    ) -> Result<ModelIndex, CostError> {
        let mut providers: HashMap<String, ProviderIndex> = HashMap::new();
        for (i, (provider, model)) in keys.into_iter().enumerate() {
            if provider.is_empty() || model.is_empty() {
                return Err(CostError::new(
                    kind,
                    format!("{noun} {i} has an empty provider or model"),
                ));
            }
            let index = providers.entry(provider.to_owned()).or_default();
            if index.exact.insert(model.to_owned(), i).is_some() {
                return Err(CostError::new(
                    kind,
                    format!("duplicate {noun} {provider}/{model}"),
                ));
            }
            index.folded.entry(model.to_ascii_lowercase()).or_insert(i);
        }
        Ok(ModelIndex { providers })
    }

    /// The row of `model` at `provider`, by the rules documented on
    /// [`crate::PriceBook::lookup`].
    pub(crate) fn find(&self, provider: &str, model: &str) -> Option<usize> {
        let index = self.provider_index(provider)?;
        let find = |m: &str| {
            index
                .exact
                .get(m)
                .or_else(|| index.folded.get(&m.trim().to_ascii_lowercase()))
                .copied()
        };
        find(model).or_else(|| strip_date_suffix(model.trim()).and_then(find))
    }

    fn provider_index(&self, provider: &str) -> Option<&ProviderIndex> {
        if let Some(index) = self.providers.get(provider) {
            return Some(index);
        }
        let normalized = provider.trim().to_ascii_lowercase();
        let normalized = match normalized.as_str() {
            "amazon-bedrock" => "bedrock",
            other => other,
        };
        self.providers.get(normalized)
    }
}

/// `"gpt-4o-2024-08-06"` ⇒ `"gpt-4o"`, `"claude-opus-4-5-20251101"` ⇒ `"claude-opus-4-5"`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYYMMDD
    if let Some((base, date)) = model.rsplit_once('-') {
        if date.len() == 8 && is_digits(date) && date.starts_with("20") && !base.is_empty() {
            return Some(base);
        }
    }
    // -YYYY-MM-DD
    let mut parts = model.rsplitn(4, '-');
    let (day, month, year, base) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let ok = day.len() == 2
        && month.len() == 2
        && year.len() == 4
        && year.starts_with("20")
        && [day, month, year].into_iter().all(is_digits)
        && !base.is_empty();
    ok.then_some(base)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn date_suffixes() {
        assert_eq!(strip_date_suffix("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            strip_date_suffix("claude-opus-4-5-20251101"),
            Some("claude-opus-4-5")
        );
        assert_eq!(
            strip_date_suffix("gpt-4.1-nano-2025-04-14"),
            Some("gpt-4.1-nano")
        );
        assert_eq!(strip_date_suffix("gpt-4o"), None);
        assert_eq!(strip_date_suffix("claude-3-5-sonnet-v2"), None);
        assert_eq!(strip_date_suffix("-20250101"), None);
        assert_eq!(strip_date_suffix("2025-01-01"), None);
        assert_eq!(strip_date_suffix("gpt-3.5-turbo-0125"), None);
        assert_eq!(strip_date_suffix("model-19991231"), None);
        assert_eq!(strip_date_suffix(""), None);
    }

    #[test]
    fn find_rules() {
        let keys = [
            ("bedrock", "m"),
            ("openai", "Gpt-X"),
            ("openai", "gpt-x"),
            ("openai", "gpt-y"),
            ("openai", "gpt-y-2024-05-13"),
        ];
        let index = ModelIndex::build(keys, "row", CostErrorKind::InvalidPriceSeed).unwrap();
        assert_eq!(index.find("openai", "gpt-x"), Some(2));
        assert_eq!(index.find("openai", "GPT-X"), Some(1));
        assert_eq!(index.find(" OpenAI ", " gpt-x "), Some(1));
        assert_eq!(index.find("openai", "gpt-y-2024-05-13"), Some(4));
        assert_eq!(index.find("openai", "gpt-y-2025-01-01"), Some(3));
        assert_eq!(index.find("openai", "gpt-y-20250101"), Some(3));
        assert_eq!(index.find("amazon-bedrock", "m"), Some(0));
        assert_eq!(index.find("openai", "gpt-z"), None);
        assert_eq!(index.find("azure", "gpt-x"), None);
    }

    #[test]
    fn build_refuses_empty_ids_and_repeats() {
        let kind = CostErrorKind::InvalidPriceSeed;
        let err = ModelIndex::build([("p", "m"), ("", "m")], "row", kind).unwrap_err();
        assert_eq!(err.to_string(), "row 1 has an empty provider or model");
        assert_eq!(err.kind(), kind);
        let err = ModelIndex::build([("p", "m"), ("p", "m")], "row", kind).unwrap_err();
        assert_eq!(err.to_string(), "duplicate row p/m");
    }
}
