//! Provider ids in error classification: detection from error text,
//! normalization of the names clients report, and display names. The ids, their aliases and
//! display names are codersdk's [`ProviderId`]; this module adds what only classification
//! needs (guessing from text, keeping unknown names).

use codersdk::ProviderId;

/// Hints searched in lowercased error text, in priority order.
///
/// Order matters: `openai` is a substring of `azure openai` and `openai-compat`, so the more
/// specific providers are tried first.
const DETECTION_HINTS: &[(ProviderId, &[&str])] = &[
    (
        ProviderId::OpenAiCompat,
        &["openai-compat", "openai compatible"],
    ),
    (ProviderId::Azure, &["azure openai", "azure-openai"]),
    (ProviderId::OpenRouter, &["openrouter"]),
    (ProviderId::Bedrock, &["aws bedrock", "bedrock"]),
    (ProviderId::Vercel, &["vercel ai gateway", "vercel"]),
    (ProviderId::Anthropic, &["anthropic", "claude"]),
    (ProviderId::Google, &["google", "gemini", "vertex"]),
    (ProviderId::OpenAi, &["openai"]),
];

/// Guesses the provider id from error text; `""` when nothing matches.
///
/// The text is matched case-insensitively. URLs count: `https://api.anthropic.com/...`
/// names Anthropic.
///
/// ```
/// assert_eq!(chaterror::detect_provider("azure openai rate limited"), "azure");
/// assert_eq!(chaterror::detect_provider("local provider error"), "");
/// ```
pub fn detect_provider(text: &str) -> &'static str {
    let lower = text.to_lowercase();
    detect_provider_lower(&lower)
}

/// [`detect_provider`] for text that is already lowercase.
pub(crate) fn detect_provider_lower(lower: &str) -> &'static str {
    DETECTION_HINTS
        .iter()
        .find(|(_, hints)| hints.iter().any(|h| lower.contains(h)))
        .map_or("", |(id, _)| id.as_str())
}

/// Normalizes a provider name to its id with [`ProviderId::parse_lenient`]: trimmed,
/// case-insensitive, with the common spellings of Azure OpenAI and OpenAI-compatible
/// (`azure openai`, `openai compatible`, …) folded into `azure` and `openai-compat`.
///
/// Unknown names are kept (trimmed and lowercased) so that a custom provider still
/// round-trips; they simply have no [`display_name`].
pub fn normalize_provider(name: &str) -> String {
    match ProviderId::parse_lenient(name) {
        Some(id) => id.as_str().to_owned(),
        None => name.trim().to_lowercase(),
    }
}

/// The user-facing name ([`ProviderId::display_name`]) of a normalized provider id, or
/// `None` for unknown providers. The id must be exact, as [`normalize_provider`] returns it.
pub fn display_name(provider: &str) -> Option<&'static str> {
    ProviderId::ALL
        .into_iter()
        .find(|id| id.as_str() == provider)
        .map(ProviderId::display_name)
}

/// The grammatical subject naming a provider at the start of a sentence.
pub(crate) fn subject_initial(provider: &str) -> &'static str {
    display_name(provider).unwrap_or("The AI provider")
}

/// The grammatical subject naming a provider in the middle of a sentence.
pub(crate) fn subject_inner(provider: &str) -> &'static str {
    display_name(provider).unwrap_or("the AI provider")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_provider_vectors() {
        for (text, want) in [
            ("openai-compat upstream error", "openai-compat"),
            ("openai compatible proxy", "openai-compat"),
            ("azure openai rate limited", "azure"),
            ("openai rate limited", "openai"),
            ("anthropic overloaded", "anthropic"),
            ("gemini timeout", "google"),
            ("vercel ai gateway 503", "vercel"),
            ("local provider error", ""),
            (
                "Post \"https://api.anthropic.com/v1/messages\": EOF",
                "anthropic",
            ),
            ("https://generativelanguage.googleapis.com/v1", "google"),
            (
                "https://bedrock-runtime.eu-north-1.amazonaws.com",
                "bedrock",
            ),
            ("OpenRouter upstream", "openrouter"),
            ("claude is busy", "anthropic"),
            ("vertex ai", "google"),
        ] {
            assert_eq!(detect_provider(text), want, "{text}");
        }
    }

    #[test]
    fn normalize_vectors() {
        for (name, want) in [
            ("  OpenAI ", "openai"),
            ("azure openai", "azure"),
            ("Azure-OpenAI", "azure"),
            ("openai compat", "openai-compat"),
            ("OpenAI Compatible", "openai-compat"),
            ("openai_compat", "openai-compat"),
            ("MyCustomProvider", "mycustomprovider"),
            (" Vertex AI ", "vertex ai"),
            ("", ""),
        ] {
            assert_eq!(normalize_provider(name), want, "{name}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("vercel"), Some("Vercel AI Gateway"));
        assert_eq!(display_name("openai-compat"), Some("OpenAI Compatible"));
        assert_eq!(display_name("mycustomprovider"), None);
        // Exact ids only: names are normalized first.
        assert_eq!(display_name("OpenAI"), None);
        for id in ProviderId::ALL {
            assert_eq!(display_name(id.as_str()), Some(id.display_name()));
            assert_eq!(normalize_provider(&id.as_str().to_uppercase()), id.as_str());
        }
        assert_eq!(subject_initial(""), "The AI provider");
        assert_eq!(subject_inner(""), "the AI provider");
    }
}
