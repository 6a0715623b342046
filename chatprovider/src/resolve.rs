//! Model references and the model catalogue a user sees.

use std::collections::{BTreeMap, BTreeSet};

use codersdk::{ChatModel, ChatModelProvider, ChatModelsResponse};
use serde::{Deserialize, Serialize};

use crate::catalog::{Provider, SUPPORTED_PROVIDERS};
use crate::error::Error;
use crate::policy::{ConfiguredProvider, ResolvedProviderKeys};

/// Model ids that resolve to a provider without a hint, compared case-insensitively.
const MODEL_SHORTCUTS: [(&str, Provider); 3] = [
    ("claude-opus-4-6", Provider::Anthropic),
    ("gpt-5.2", Provider::OpenAi),
    ("gemini-2.5-flash", Provider::Google),
];

/// Resolves a model reference to `(provider, model id)`.
///
/// 1. The reference is trimmed; blank is the error `model is required`.
/// 2. A canonical reference `provider:model` or `provider/model` (split once, `:` tried
///    first; provider case-insensitive; model trimmed and non-empty) names its provider.
/// 3. Otherwise a known `hint` (trimmed, case-insensitive) decides.
/// 4. Otherwise `claude-opus-4-6`, `gpt-5.2` and `gemini-2.5-flash` (any case) resolve to
///    their provider.
/// 5. Otherwise `claude-…` is Anthropic; `gpt-…`, `chatgpt-…` and OpenAI reasoning ids
///    (`o1`, `o3-mini`, `o4.1`; see [`is_openai_reasoning_model`]) are OpenAI.
/// 6. Otherwise the error `unknown model "<model>"`.
///
/// Both errors are pre-classified `config`.
///
/// ```
/// use chatprovider::{resolve_model_with_provider_hint, Provider};
/// let (p, m) = resolve_model_with_provider_hint("openrouter/anthropic/claude-sonnet-4", "")?;
/// assert_eq!((p, m.as_str()), (Provider::OpenRouter, "anthropic/claude-sonnet-4"));
/// let (p, _) = resolve_model_with_provider_hint("o3-mini", "")?;
/// assert_eq!(p, Provider::OpenAi);
/// assert_eq!(
///     resolve_model_with_provider_hint("llama-3", "").unwrap_err().to_string(),
///     "unknown model \"llama-3\""
/// );
/// # Ok::<(), chatprovider::Error>(())
/// ```
pub fn resolve_model_with_provider_hint(
    model: &str,
    hint: &str,
) -> Result<(Provider, String), Error> {
    let model = model.trim();
    if model.is_empty() {
        return Err(Error::model_required());
    }
    if let Some(resolved) = parse_canonical_model_ref(model) {
        return Ok(resolved);
    }
    if let Some(p) = Provider::parse(hint) {
        return Ok((p, model.to_owned()));
    }
    let lower = model.to_lowercase();
    if let Some((id, p)) = MODEL_SHORTCUTS.iter().find(|(id, _)| *id == lower) {
        return Ok((*p, (*id).to_owned()));
    }
    if lower.starts_with("claude-") {
        return Ok((Provider::Anthropic, model.to_owned()));
    }
    if lower.starts_with("gpt-")
        || lower.starts_with("chatgpt-")
        || is_openai_reasoning_model(&lower)
    {
        return Ok((Provider::OpenAi, model.to_owned()));
    }
    Err(Error::unknown_model(model))
}

/// `provider:model` or `provider/model` with a known provider and a non-blank model.
fn parse_canonical_model_ref(model: &str) -> Option<(Provider, String)> {
    [':', '/'].into_iter().find_map(|sep| {
        let (left, right) = model.split_once(sep)?;
        let provider = Provider::parse(left)?;
        let id = right.trim();
        (!id.is_empty()).then(|| (provider, id.to_owned()))
    })
}

/// Whether a model id is an OpenAI reasoning id: `o`, one or more ASCII digits, then the
/// end, `-` or `.` (`o1`, `o3-mini`, `o4.1`; not `o`, `ox1`, `o1x`). Case-sensitive: pass
/// a lowercased id.
pub fn is_openai_reasoning_model(model: &str) -> bool {
    let Some(rest) = model.strip_prefix('o') else {
        return false;
    };
    let after_digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if after_digits.len() == rest.len() {
        return false;
    }
    after_digits.is_empty() || after_digits.starts_with(['-', '.'])
}

/// The canonical reference of a model: `<provider>:<model id>`.
pub fn canonical_model_id(provider: Provider, model: &str) -> String {
    format!("{}:{}", provider.as_str(), model.trim())
}

/// A model as configured by an administrator, for the catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfiguredModel {
    /// Provider id, or a hint; the model reference may also name its provider.
    pub provider: String,
    /// The model reference (`gpt-4o`, `openai:gpt-4o`, …).
    pub model: String,
    /// Name shown to users; blank for the model id.
    pub display_name: String,
}

/// Providers an administrator has configured but disabled (every row disabled).
fn disabled_providers(configured: &[ConfiguredProvider]) -> BTreeSet<Provider> {
    let mut enabled = BTreeMap::<Provider, bool>::new();
    for row in configured {
        if let Some(p) = Provider::parse(&row.provider) {
            *enabled.entry(p).or_default() |= row.enabled;
        }
    }
    enabled
        .into_iter()
        .filter_map(|(p, on)| (!on).then_some(p))
        .collect()
}

fn catalogue_entry(
    provider: Provider,
    models: Vec<ChatModel>,
    resolved: &ResolvedProviderKeys,
) -> ChatModelProvider {
    let reason = crate::policy::unavailable_reason(resolved, provider.as_str());
    ChatModelProvider {
        provider: provider.as_str().to_owned(),
        available: reason.is_none(),
        unavailable_reason: reason.map(|r| r.to_wire()),
        models,
    }
}

/// The model catalogue of `GET /chats/models`.
///
/// `None` when there are no configured models, or none of their providers remains.
/// Providers are the configured ones plus those the models resolve to
/// ([`resolve_model_with_provider_hint`] with the model's provider as hint; unresolvable
/// models are skipped), in catalog order, without disabled ones. Each provider lists its
/// models once (model ids compared trimmed and case-insensitively, first wins), sorted by
/// model id, as `{id: "<provider>:<model>", provider, model, display_name}`; availability
/// is [`unavailable_reason`](crate::unavailable_reason): `provider_not_supported` for a
/// provider this build cannot stream ([`crate::streams`]), else from `resolved`
/// (`missing_api_key` for providers it does not cover).
pub fn list_configured_models(
    configured_providers: &[ConfiguredProvider],
    models: &[ConfiguredModel],
    resolved: &ResolvedProviderKeys,
) -> Option<ChatModelsResponse> {
    if models.is_empty() {
        return None;
    }
    let mut by_provider: BTreeMap<Provider, Vec<ChatModel>> = configured_providers
        .iter()
        .filter_map(|row| Provider::parse(&row.provider))
        .map(|p| (p, Vec::new()))
        .collect();
    let mut seen: BTreeSet<(Provider, String)> = BTreeSet::new();
    for m in models {
        let Ok((provider, id)) = resolve_model_with_provider_hint(&m.model, &m.provider) else {
            continue;
        };
        let list = by_provider.entry(provider).or_default();
        if !seen.insert((provider, id.to_lowercase())) {
            continue;
        }
        let name = m.display_name.trim();
        list.push(ChatModel {
            id: canonical_model_id(provider, &id),
            provider: provider.as_str().to_owned(),
            display_name: if name.is_empty() {
                id.clone()
            } else {
                name.to_owned()
            },
            model: id,
        });
    }
    let disabled = disabled_providers(configured_providers);
    let providers: Vec<ChatModelProvider> = by_provider
        .into_iter()
        .filter(|(p, _)| !disabled.contains(p))
        .map(|(p, mut list)| {
            list.sort_by(|a, b| a.model.cmp(&b.model));
            catalogue_entry(p, list, resolved)
        })
        .collect();
    if providers.is_empty() {
        return None;
    }
    Some(ChatModelsResponse { providers })
}

/// Availability of every supported provider that is not disabled, each with an empty
/// model list (Coder's `ListConfiguredProviderAvailability`), in catalog order.
pub fn list_provider_availability(
    configured_providers: &[ConfiguredProvider],
    resolved: &ResolvedProviderKeys,
) -> ChatModelsResponse {
    let disabled = disabled_providers(configured_providers);
    ChatModelsResponse {
        providers: SUPPORTED_PROVIDERS
            .iter()
            .filter(|p| !disabled.contains(p))
            .map(|p| catalogue_entry(*p, Vec::new(), resolved))
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::{resolve_user_provider_keys, ProviderApiKeys, UserProviderKey};
    use codersdk::ChatModelProviderUnavailableReason as Reason;
    use uuid::Uuid;

    #[test]
    fn resolution_rules() {
        type Want = Result<(Provider, &'static str), ErrorKind>;
        let table: Vec<(&str, &str, Want)> = vec![
            // Rule 1: blank.
            ("", "openai", Err(ErrorKind::ModelRequired)),
            ("   \t", "", Err(ErrorKind::ModelRequired)),
            // Rule 2: canonical references beat the hint.
            (
                "openai:gpt-4o",
                "anthropic",
                Ok((Provider::OpenAi, "gpt-4o")),
            ),
            (
                " Anthropic : claude-x ",
                "",
                Ok((Provider::Anthropic, "claude-x")),
            ),
            (
                "openrouter/anthropic/claude-3",
                "",
                Ok((Provider::OpenRouter, "anthropic/claude-3")),
            ),
            (
                "vercel:openai/gpt-5",
                "",
                Ok((Provider::Vercel, "openai/gpt-5")),
            ),
            (
                "anthropic/claude-3:beta",
                "",
                Ok((Provider::Anthropic, "claude-3:beta")),
            ),
            (
                "openai-compat:llama-3",
                "",
                Ok((Provider::OpenAiCompat, "llama-3")),
            ),
            (
                "bedrock:anthropic.claude-v2",
                "",
                Ok((Provider::Bedrock, "anthropic.claude-v2")),
            ),
            // Not canonical: empty model, or unknown provider prefix.
            ("openai:", "", Err(ErrorKind::UnknownModel)),
            ("openai:   ", "google", Ok((Provider::Google, "openai:"))),
            ("meta/llama-3", "", Err(ErrorKind::UnknownModel)),
            (
                "meta/llama-3",
                " OpenRouter ",
                Ok((Provider::OpenRouter, "meta/llama-3")),
            ),
            // Rule 3: hint.
            (
                "claude-sonnet-4",
                "bedrock",
                Ok((Provider::Bedrock, "claude-sonnet-4")),
            ),
            ("my-model", "azure", Ok((Provider::Azure, "my-model"))),
            ("my-model", "azure-openai", Err(ErrorKind::UnknownModel)),
            // Rule 4: shortcuts, any case, canonical spelling.
            (
                "CLAUDE-OPUS-4-6",
                "",
                Ok((Provider::Anthropic, "claude-opus-4-6")),
            ),
            ("gpt-5.2", "", Ok((Provider::OpenAi, "gpt-5.2"))),
            (
                "Gemini-2.5-Flash",
                "nope",
                Ok((Provider::Google, "gemini-2.5-flash")),
            ),
            // Rule 5: prefixes (Google's are not consulted).
            (
                "claude-sonnet-4-20250514",
                "",
                Ok((Provider::Anthropic, "claude-sonnet-4-20250514")),
            ),
            (
                "Claude-3-Haiku",
                "",
                Ok((Provider::Anthropic, "Claude-3-Haiku")),
            ),
            ("gpt-4", "", Ok((Provider::OpenAi, "gpt-4"))),
            (
                "chatgpt-4o-latest",
                "",
                Ok((Provider::OpenAi, "chatgpt-4o-latest")),
            ),
            ("o1", "", Ok((Provider::OpenAi, "o1"))),
            ("o3-mini", "", Ok((Provider::OpenAi, "o3-mini"))),
            ("o4.1", "", Ok((Provider::OpenAi, "o4.1"))),
            ("O3", "", Ok((Provider::OpenAi, "O3"))),
            ("o", "", Err(ErrorKind::UnknownModel)),
            ("ox1", "", Err(ErrorKind::UnknownModel)),
            ("o1x", "", Err(ErrorKind::UnknownModel)),
            ("gemini-2.0-pro", "", Err(ErrorKind::UnknownModel)),
            ("gemma-2", "", Err(ErrorKind::UnknownModel)),
            ("claude", "", Err(ErrorKind::UnknownModel)),
        ];
        for (model, hint, want) in table {
            let got = resolve_model_with_provider_hint(model, hint);
            let got = got
                .as_ref()
                .map(|(p, m)| (*p, m.as_str()))
                .map_err(Error::kind);
            assert_eq!(got, want, "{model:?} / {hint:?}");
        }
        assert_eq!(
            resolve_model_with_provider_hint("  ", "")
                .unwrap_err()
                .to_string(),
            "model is required"
        );
        assert_eq!(
            resolve_model_with_provider_hint(" llama-3 ", "")
                .unwrap_err()
                .to_string(),
            "unknown model \"llama-3\""
        );
    }

    #[test]
    fn reasoning_ids() {
        for (id, want) in [
            ("o1", true),
            ("o10", true),
            ("o3-mini", true),
            ("o4.1", true),
            ("o", false),
            ("ox1", false),
            ("o1x", false),
            ("oo1", false),
            ("", false),
            ("o1_", false),
        ] {
            assert_eq!(is_openai_reasoning_model(id), want, "{id}");
        }
    }

    fn row(n: u128, provider: &str, key: &str, enabled: bool) -> ConfiguredProvider {
        ConfiguredProvider {
            id: Uuid::from_u128(n),
            provider: provider.into(),
            api_key: key.into(),
            enabled,
            ..Default::default()
        }
    }

    fn model(provider: &str, model: &str, name: &str) -> ConfiguredModel {
        ConfiguredModel {
            provider: provider.into(),
            model: model.into(),
            display_name: name.into(),
        }
    }

    #[test]
    fn catalogue() {
        let rows = vec![
            row(1, "openai", "sk", true),
            row(2, "anthropic", "", true),
            row(3, "google", "g", false),
            row(4, "vercel", "v", true),
        ];
        let resolved =
            resolve_user_provider_keys(&ProviderApiKeys::new(), &rows, &[] as &[UserProviderKey]);
        assert_eq!(list_configured_models(&rows, &[], &resolved), None);
        let models = vec![
            model("openai", "gpt-4o", "GPT-4o"),
            model("openai", " GPT-4O ", "dup"),
            model("", "o3-mini", ""),
            model("anthropic", "claude-sonnet-4", "  "),
            model("google", "gemini-2.5-pro", "Gemini"),
            model("", "openrouter:meta/llama", "Llama"),
            model("", "unknown-thing", "x"),
        ];
        let got = list_configured_models(&rows, &models, &resolved).unwrap();
        type Row = (String, bool, Option<Reason>, Vec<(String, String, String)>);
        let summary: Vec<Row> = got
            .providers
            .iter()
            .map(|p| {
                (
                    p.provider.clone(),
                    p.available,
                    p.unavailable_reason.clone(),
                    p.models
                        .iter()
                        .map(|m| (m.id.clone(), m.model.clone(), m.display_name.clone()))
                        .collect(),
                )
            })
            .collect();
        let s = |v: &str| v.to_owned();
        assert_eq!(
            summary,
            vec![
                (
                    s("anthropic"),
                    false,
                    Some(Reason::MissingApiKey),
                    vec![(
                        s("anthropic:claude-sonnet-4"),
                        s("claude-sonnet-4"),
                        s("claude-sonnet-4")
                    )]
                ),
                (
                    s("openai"),
                    true,
                    None,
                    vec![
                        (s("openai:gpt-4o"), s("gpt-4o"), s("GPT-4o")),
                        (s("openai:o3-mini"), s("o3-mini"), s("o3-mini")),
                    ]
                ),
                (
                    s("openrouter"),
                    false,
                    Some(Reason::MissingApiKey),
                    vec![(s("openrouter:meta/llama"), s("meta/llama"), s("Llama"))]
                ),
                (s("vercel"), true, None, vec![]),
            ]
        );
        // Only models of disabled or unknown providers: nothing to list.
        let only_disabled = vec![model("google", "gemini-2.5-pro", "")];
        assert_eq!(
            list_configured_models(&rows[2..3], &only_disabled, &resolved),
            None
        );
        // JSON keeps `models` as an array even when empty.
        let json = serde_json::to_string(&got).unwrap();
        assert!(
            json.contains(r#"{"provider":"vercel","available":true,"models":[]}"#),
            "{json}"
        );
    }

    #[test]
    fn availability_listing() {
        let rows = vec![row(1, "openai", "sk", true), row(3, "google", "g", false)];
        let resolved = resolve_user_provider_keys(&ProviderApiKeys::new(), &rows, &[]);
        let got = list_provider_availability(&rows, &resolved);
        let names: Vec<(&str, bool)> = got
            .providers
            .iter()
            .map(|p| (p.provider.as_str(), p.available))
            .collect();
        assert_eq!(
            names,
            vec![
                ("anthropic", false),
                ("azure", false),
                ("bedrock", false),
                ("openai", true),
                ("openai-compat", false),
                ("openrouter", false),
                ("vercel", false),
            ]
        );
        assert!(got.providers.iter().all(|p| p.models.is_empty()));
        // Every provider streams in this build: the unavailable ones lack a key.
        for p in got.providers.iter().filter(|p| !p.available) {
            assert_eq!(
                p.unavailable_reason,
                Some(Reason::MissingApiKey),
                "{}",
                p.provider
            );
        }
    }

    /// A provider the catalogue offers must stream: with a usable key every provider of this
    /// build is available, because every one has a client (`streams`); a provider without
    /// one would be listed `provider_not_supported` (the factory's tests show `streams`
    /// covering every supported provider).
    #[test]
    fn catalogue_lists_only_streamable_providers_as_available() {
        let rows: Vec<ConfiguredProvider> = SUPPORTED_PROVIDERS
            .iter()
            .enumerate()
            .map(|(i, p)| row(i as u128 + 1, p.as_str(), "key-123456", true))
            .collect();
        let models: Vec<ConfiguredModel> = vec![
            model("bedrock", "anthropic.claude-sonnet-4-5", ""),
            model("google", "gemini-2.5-flash", ""),
            model("anthropic", "claude-sonnet-4-5", ""),
        ];
        let resolved = resolve_user_provider_keys(&ProviderApiKeys::new(), &rows, &[]);
        let catalogue = list_configured_models(&rows, &models, &resolved).unwrap();
        for p in &catalogue.providers {
            let id = Provider::parse(&p.provider).unwrap();
            assert!(resolved.is_available(&p.provider), "{}", p.provider);
            assert!(crate::streams(id), "{}", p.provider);
            assert!(p.available, "{}", p.provider);
            assert_eq!(crate::unavailable_reason(&resolved, &p.provider), None);
        }
        let listed = |name: &str| {
            catalogue
                .providers
                .iter()
                .find(|p| p.provider == name)
                .map_or(0, |p| p.models.len())
        };
        assert_eq!((listed("bedrock"), listed("google")), (1, 1));
        // A disabled provider stays "disabled", not "not supported".
        let mut disabled = rows.clone();
        for r in &mut disabled {
            r.enabled = false;
        }
        let resolved = resolve_user_provider_keys(&ProviderApiKeys::new(), &disabled, &[]);
        assert_eq!(
            crate::unavailable_reason(&resolved, "bedrock"),
            Some(crate::UnavailableReason::ProviderDisabled)
        );
    }
}
