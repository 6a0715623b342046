//! Reading models.dev data: the one place that knows the upstream document's shape, which
//! of its providers we cover and under which id, and how generated rows are ordered and
//! written. Both generated artefacts — the price seed and the context-limit table — go
//! through it, so they cannot disagree on which models exist or what they are called.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{CostError, CostErrorKind};

/// Largest upstream document the generators ([`crate::generate`],
/// [`crate::generate_context_limits`]) accept, in bytes (100 MiB, the body cap of Coder's
/// generator). Checked before parsing, so a runaway download cannot exhaust memory.
pub const MAX_UPSTREAM_JSON_BYTES: usize = 100 * 1024 * 1024;

/// Which models.dev provider feeds which of our provider ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProviderMapping<'a> {
    /// Our provider id, written into each generated row's `provider`.
    pub provider: &'a str,
    /// The provider key in models.dev's `api.json`.
    pub upstream: &'a str,
}

impl<'a> ProviderMapping<'a> {
    /// A mapping from `upstream` (models.dev key) to `provider` (our id).
    pub const fn new(provider: &'a str, upstream: &'a str) -> Self {
        ProviderMapping { provider, upstream }
    }
}

/// The providers the embedded price seed and context-limit table cover: the provider ids of
/// `codersdk::ProviderId` that have a vendor price list (`openai-compat` is excluded: its
/// upstream vendor is unknown), plus `xai` and `deepseek` for use through `openai-compat`
/// (see [`crate::openai_compat_vendor`]).
pub const SEED_PROVIDERS: &[ProviderMapping<'static>] = &[
    ProviderMapping::new("anthropic", "anthropic"),
    ProviderMapping::new("azure", "azure"),
    ProviderMapping::new("bedrock", "amazon-bedrock"),
    ProviderMapping::new("deepseek", "deepseek"),
    ProviderMapping::new("google", "google"),
    ProviderMapping::new("openai", "openai"),
    ProviderMapping::new("openrouter", "openrouter"),
    ProviderMapping::new("vercel", "vercel"),
    ProviderMapping::new("xai", "xai"),
];

/// One provider's models, each read into `M`: a generator names only the model fields it
/// uses, so a field the other generator needs cannot make it fail.
#[derive(Deserialize)]
struct UpstreamProvider<M> {
    models: Option<BTreeMap<String, M>>,
}

fn json_error(what: &str, e: serde_json::Error) -> CostError {
    CostError::new(CostErrorKind::Json, format!("{what}: {e}")).with_source(e)
}

/// One mapped provider and its upstream models, keyed (and so sorted) by model id.
pub(crate) type ProviderModels<'m, M> = (&'m ProviderMapping<'m>, BTreeMap<String, M>);

/// The models of every mapped provider, in mapping order.
///
/// `upstream_json` is models.dev's `api.json` or our snapshot of it, which wraps that map as
/// `{"origin": …, "providers": …}`. Text longer than `limit` bytes is
/// [`CostErrorKind::UpstreamTooLarge`] (checked before parsing); malformed JSON, or a model
/// that does not fit `M`, is [`CostErrorKind::Json`]. A mapped provider that is absent or
/// has no models is collected, and if any is the result is
/// [`CostErrorKind::MissingProviders`] naming them all: a partial artefact would silently
/// drop a provider's models.
pub(crate) fn read_providers<'m, M: DeserializeOwned>(
    upstream_json: &str,
    providers: &'m [ProviderMapping<'m>],
    limit: usize,
) -> Result<Vec<ProviderModels<'m, M>>, CostError> {
    if upstream_json.len() > limit {
        return Err(CostError::new(
            CostErrorKind::UpstreamTooLarge,
            format!(
                "upstream models.dev data is {} bytes, more than the {limit}-byte limit",
                upstream_json.len()
            ),
        ));
    }
    let top: HashMap<String, Box<RawValue>> = serde_json::from_str(upstream_json)
        .map_err(|e| json_error("parse upstream models.dev data", e))?;
    // Our snapshot wraps models.dev's provider map together with its provenance.
    let wrapped = match (top.get("origin"), top.get("providers")) {
        (Some(_), Some(inner)) => Some(
            serde_json::from_str::<HashMap<String, Box<RawValue>>>(inner.get())
                .map_err(|e| json_error("parse upstream `providers`", e))?,
        ),
        _ => None,
    };
    let map = wrapped.as_ref().unwrap_or(&top);

    let mut missing = Vec::new();
    let mut parsed = Vec::with_capacity(providers.len());
    for mapping in providers {
        let models = match map.get(mapping.upstream) {
            Some(raw) => {
                serde_json::from_str::<UpstreamProvider<M>>(raw.get())
                    .map_err(|e| {
                        json_error(&format!("parse upstream provider {}", mapping.upstream), e)
                    })?
                    .models
            }
            None => None,
        };
        match models {
            Some(models) if !models.is_empty() => parsed.push((mapping, models)),
            _ => missing.push(mapping.upstream),
        }
    }
    if !missing.is_empty() {
        return Err(CostError::new(
            CostErrorKind::MissingProviders,
            format!(
                "providers missing or empty in upstream: [{}]",
                missing.join(", ")
            ),
        ));
    }
    Ok(parsed)
}

/// Sorts generated rows by (provider, model) in byte order and refuses a repeated pair
/// (two mappings that write the same provider id) with `kind`: a lookup could only ever
/// see one of the two rows.
pub(crate) fn sort_unique<R>(
    rows: &mut [R],
    key: impl Fn(&R) -> (&str, &str),
    noun: &str,
    kind: CostErrorKind,
) -> Result<(), CostError> {
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
    if let Some((provider, model)) = rows.windows(2).find_map(|w| match w {
        [a, b] if key(a) == key(b) => Some(key(a)),
        _ => None,
    }) {
        return Err(CostError::new(
            kind,
            format!("duplicate {noun} {provider}/{model} (two mappings share a provider id)"),
        ));
    }
    Ok(())
}

/// How many distinct providers sorted rows cover.
pub(crate) fn provider_count<'a>(sorted_providers: impl Iterator<Item = &'a str>) -> usize {
    let mut providers: Vec<&str> = sorted_providers.collect();
    providers.dedup();
    providers.len()
}

/// Writes rows as a generated file: a JSON array, 2-space indented, fields in declaration
/// order, and a final newline (so the committed file diffs cleanly).
pub(crate) fn render_rows<R: Serialize>(rows: &[R]) -> String {
    // Serializing plain strings and integers cannot fail; an empty array is the fallback
    // that keeps this infallible without a panic path.
    let mut text = serde_json::to_string_pretty(rows).unwrap_or_else(|_| String::from("[]"));
    text.push('\n');
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Anything {}

    #[test]
    fn upstream_size_limit_edge() {
        let text = r#"{"p":{"models":{"m":{"cost":{"input":1}}}}}"#;
        let map = [ProviderMapping::new("p", "p")];
        assert!(read_providers::<Anything>(text, &map, text.len()).is_ok());
        let err = read_providers::<Anything>(text, &map, text.len() - 1).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::UpstreamTooLarge);
    }

    #[test]
    fn duplicate_pairs_are_named() {
        let mut rows = [("x", "m"), ("a", "z"), ("x", "m")];
        let err =
            sort_unique(&mut rows, |r| *r, "row", CostErrorKind::InvalidPriceSeed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "duplicate row x/m (two mappings share a provider id)"
        );
        let mut rows = [("x", "m"), ("a", "z")];
        sort_unique(&mut rows, |r| *r, "row", CostErrorKind::InvalidPriceSeed).unwrap();
        assert_eq!(rows, [("a", "z"), ("x", "m")]);
    }
}
