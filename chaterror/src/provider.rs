//! Provider ids: detection from error text, normalization and display names (core.md §A.8).

/// Hints searched in lowercased error text, in priority order.
///
/// Order matters: `openai` is a substring of `azure openai` and `openai-compat`, so the more
/// specific providers are tried first.
const DETECTION_HINTS: &[(&str, &[&str])] = &[
    ("openai-compat", &["openai-compat", "openai compatible"]),
    ("azure", &["azure openai", "azure-openai"]),
    ("openrouter", &["openrouter"]),
    ("bedrock", &["aws bedrock", "bedrock"]),
    ("vercel", &["vercel ai gateway", "vercel"]),
    ("anthropic", &["anthropic", "claude"]),
    ("google", &["google", "gemini", "vertex"]),
    ("openai", &["openai"]),
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
        .map_or("", |(id, _)| id)
}

/// Normalizes a provider name to its id: trimmed, lowercased, with the common spellings of
/// Azure OpenAI and OpenAI-compatible folded into `azure` and `openai-compat`.
///
/// Unknown names are kept (lowercased) so that a custom provider still round-trips; they
/// simply have no [`display_name`].
pub fn normalize_provider(name: &str) -> String {
    let id = name.trim().to_lowercase();
    match id.as_str() {
        "azure openai" | "azure-openai" => "azure".to_owned(),
        "openai compat" | "openai compatible" | "openai_compat" => "openai-compat".to_owned(),
        _ => id,
    }
}

/// The user-facing name of a normalized provider id, or `None` for unknown providers.
pub fn display_name(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "anthropic" => "Anthropic",
        "azure" => "Azure OpenAI",
        "bedrock" => "AWS Bedrock",
        "google" => "Google",
        "openai" => "OpenAI",
        "openai-compat" => "OpenAI Compatible",
        "openrouter" => "OpenRouter",
        "vercel" => "Vercel AI Gateway",
        _ => return None,
    })
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
        assert_eq!(subject_initial(""), "The AI provider");
        assert_eq!(subject_inner(""), "the AI provider");
    }
}
