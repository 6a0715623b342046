//! The provider catalog: ids, display names, default endpoints, which
//! providers have environment presets or may run on ambient credentials, and Azure endpoint
//! rewriting.

use crate::error::{Error, ErrorKind};

/// One of the eight LLM providers chatd can talk to: codersdk's [`codersdk::ProviderId`],
/// the one provider vocabulary of every chatd crate, under the name this crate has always
/// used. Ids, parsing (trimmed, ASCII case-insensitive, no aliases), display names and the
/// key-policy flags are there; the endpoint facts only this crate needs are in
/// [`ProviderCatalog`].
pub use codersdk::ProviderId as Provider;

/// Every provider, in catalog order (alphabetical by id).
pub const SUPPORTED_PROVIDERS: [Provider; 8] = Provider::ALL;

/// Azure OpenAI API version used when a request does not name one.
pub const AZURE_DEFAULT_API_VERSION: &str = "2025-01-01-preview";

/// What the provider layer knows about a provider beyond its id: where its API is and
/// which environment variable its key is reported under. Implemented for [`Provider`].
pub trait ProviderCatalog {
    /// The endpoint used when no base URL is configured.
    ///
    /// `None` for Azure (a base URL is required), Bedrock (the regional AWS endpoint comes
    /// from the AWS environment) and Google (the Gemini SDK's own default). OpenAI
    /// Compatible falls back to the OpenAI endpoint, but is expected to be configured.
    fn default_base_url(self) -> Option<&'static str>;

    /// The environment variable a missing key is reported under, if the
    /// provider has one. Bedrock has none: its key is optional and it is reported as
    /// `API key for provider "bedrock" is not set`.
    fn api_key_env_var(self) -> Option<&'static str>;
}

impl ProviderCatalog for Provider {
    fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::OpenAi | Provider::OpenAiCompat => Some("https://api.openai.com/v1"),
            Provider::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Provider::Vercel => Some("https://ai-gateway.vercel.sh/v1"),
            // Azure, Bedrock, Google, and any provider a newer codersdk adds.
            _ => None,
        }
    }

    fn api_key_env_var(self) -> Option<&'static str> {
        match self {
            Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
            Provider::Azure => Some("AZURE_OPENAI_API_KEY"),
            Provider::Google => Some("GOOGLE_API_KEY"),
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::OpenAiCompat => Some("OPENAI_COMPAT_API_KEY"),
            Provider::OpenRouter => Some("OPENROUTER_API_KEY"),
            Provider::Vercel => Some("VERCEL_API_KEY"),
            // Bedrock, and any provider a newer codersdk adds.
            _ => None,
        }
    }
}

impl From<codersdk::UnknownProviderId> for Error {
    fn from(err: codersdk::UnknownProviderId) -> Self {
        Error::unsupported_provider(err.name())
    }
}

/// The ids of every supported provider, in catalog order (a fresh copy each call).
pub fn supported_providers() -> Vec<&'static str> {
    SUPPORTED_PROVIDERS.iter().map(|p| p.as_str()).collect()
}

/// Normalizes a provider name to its id as [`Provider::parse`] does: trimmed, ASCII
/// case-insensitive, exact match only. Unknown names (aliases included) give `None`.
///
/// ```
/// assert_eq!(chatprovider::normalize_provider(" OpenAI "), Some("openai"));
/// assert_eq!(chatprovider::normalize_provider("azure-openai"), None);
/// ```
pub fn normalize_provider(name: &str) -> Option<&'static str> {
    Provider::parse(name).map(Provider::as_str)
}

/// The display name of a provider name, `None` when the name is unknown.
pub fn provider_display_name(name: &str) -> Option<&'static str> {
    Provider::parse(name).map(Provider::display_name)
}

/// Whether `name` is a provider with an environment preset (OpenAI, Anthropic).
pub fn is_env_preset_provider(name: &str) -> bool {
    Provider::parse(name).is_some_and(Provider::is_env_preset)
}

/// Whether `name` is a provider that may use ambient credentials (Bedrock).
pub fn provider_allows_ambient_credentials(name: &str) -> bool {
    Provider::parse(name).is_some_and(Provider::allows_ambient_credentials)
}

/// Host suffixes of Azure OpenAI resources, each preceded by the resource name.
const AZURE_RESOURCE_HOST_SUFFIXES: [&str; 3] = [
    ".openai.azure.com",
    ".cognitiveservices.azure.com",
    ".services.ai.azure.com",
];

/// Turns an Azure OpenAI base URL as administrators paste it into the endpoint the client
/// calls.
///
/// A URL on an Azure resource host (`<resource>.openai.azure.com`,
/// `<resource>.cognitiveservices.azure.com`, `<resource>.services.ai.azure.com`, any path,
/// scheme optional) becomes `https://<resource>.openai.azure.com/openai/v1`; any other URL
/// is kept, with `https://` added when it has no scheme. A blank URL is the configuration
/// error `AZURE_OPENAI_BASE_URL is not set`; a URL that does not parse, or whose scheme is
/// not http or https, is a configuration error that does not repeat the URL (it may carry
/// credentials).
///
/// ```
/// use chatprovider::azure_base_url;
/// assert_eq!(
///     azure_base_url("my-res.cognitiveservices.azure.com/openai/deployments/x").ok().as_deref(),
///     Some("https://my-res.openai.azure.com/openai/v1"),
/// );
/// assert_eq!(
///     azure_base_url("https://gateway.example.com/azure").ok().as_deref(),
///     Some("https://gateway.example.com/azure"),
/// );
/// ```
pub fn azure_base_url(raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::missing_base_url(Provider::Azure));
    }
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let url = parse_http_url(&with_scheme).map_err(|e| e.with_provider(Provider::Azure))?;
    if let Some(host) = url.host_str() {
        let host = host.to_ascii_lowercase();
        for suffix in AZURE_RESOURCE_HOST_SUFFIXES {
            if let Some(resource) = host.strip_suffix(suffix) {
                if !resource.is_empty() && !resource.contains('.') {
                    return Ok(format!("https://{resource}.openai.azure.com/openai/v1"));
                }
            }
        }
    }
    Ok(with_scheme)
}

/// Parses an absolute `http`/`https` URL with a host. The error never repeats the URL.
pub(crate) fn parse_http_url(raw: &str) -> Result<url::Url, Error> {
    let url = url::Url::parse(raw).map_err(|e| {
        Error::new(
            ErrorKind::InvalidBaseUrl,
            "base URL is not a valid absolute URL",
        )
        .with_source(e)
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::new(
            ErrorKind::InvalidBaseUrl,
            "base URL must start with http:// or https://",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::new(
            ErrorKind::InvalidBaseUrl,
            "base URL must name a host",
        ));
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_the_wire_vocabulary() {
        // One type: the catalog's providers are codersdk's ids, in the same order.
        let ours: Vec<&str> = SUPPORTED_PROVIDERS.iter().map(|p| p.as_str()).collect();
        assert_eq!(ours, codersdk::CHAT_PROVIDER_IDS);
        assert_eq!(SUPPORTED_PROVIDERS, codersdk::ProviderId::ALL);
    }

    #[test]
    fn catalog_table() {
        // (id, display name, default base URL, env preset, ambient)
        let table: [(&str, &str, Option<&str>, bool, bool); 8] = [
            (
                "anthropic",
                "Anthropic",
                Some("https://api.anthropic.com"),
                true,
                false,
            ),
            ("azure", "Azure OpenAI", None, false, false),
            ("bedrock", "AWS Bedrock", None, false, true),
            ("google", "Google", None, false, false),
            (
                "openai",
                "OpenAI",
                Some("https://api.openai.com/v1"),
                true,
                false,
            ),
            (
                "openai-compat",
                "OpenAI Compatible",
                Some("https://api.openai.com/v1"),
                false,
                false,
            ),
            (
                "openrouter",
                "OpenRouter",
                Some("https://openrouter.ai/api/v1"),
                false,
                false,
            ),
            (
                "vercel",
                "Vercel AI Gateway",
                Some("https://ai-gateway.vercel.sh/v1"),
                false,
                false,
            ),
        ];
        assert_eq!(
            supported_providers(),
            table.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        for (id, name, url, preset, ambient) in table {
            let p = Provider::parse(id).unwrap();
            assert_eq!(p.as_str(), id);
            assert_eq!(p.to_string(), id);
            assert_eq!(p.display_name(), name);
            assert_eq!(provider_display_name(id), Some(name));
            assert_eq!(p.default_base_url(), url);
            assert_eq!(p.is_env_preset(), preset, "{id}");
            assert_eq!(is_env_preset_provider(id), preset);
            assert_eq!(p.allows_ambient_credentials(), ambient, "{id}");
            assert_eq!(provider_allows_ambient_credentials(id), ambient);
        }
    }

    #[test]
    fn normalize_is_exact_after_trim_and_case() {
        let cases: [(&str, Option<&str>); 14] = [
            ("openai", Some("openai")),
            (" OpenAI ", Some("openai")),
            ("\tBEDROCK\n", Some("bedrock")),
            ("OpenAI-Compat", Some("openai-compat")),
            ("openai_compat", None),
            ("openai compatible", None),
            ("azure-openai", None),
            ("azure openai", None),
            ("", None),
            ("   ", None),
            ("open ai", None),
            ("gemini", None),
            ("claude", None),
            ("ｏｐｅｎａｉ", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_provider(input), want, "{input:?}");
        }
        assert_eq!(provider_display_name("nope"), None);
        assert!(!is_env_preset_provider("nope"));
        assert!(!provider_allows_ambient_credentials(" nope "));
    }

    #[test]
    fn serde_and_from_str() {
        let p: Provider = serde_json::from_str("\" Vercel \"").unwrap();
        assert_eq!(p, Provider::Vercel);
        assert_eq!(
            serde_json::to_string(&Provider::OpenAiCompat).unwrap(),
            "\"openai-compat\""
        );
        let err = serde_json::from_str::<Provider>("\"acme\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown provider \"acme\""),
            "{err}"
        );
        assert_eq!("google".parse::<Provider>().ok(), Some(Provider::Google));
        let err = "acme".parse::<Provider>().unwrap_err();
        assert_eq!(err.to_string(), "unsupported model provider \"acme\"");
        // Into this crate's error, as a configuration problem.
        let err = Error::from(err);
        assert_eq!(err.kind(), ErrorKind::UnsupportedProvider);
        assert_eq!(err.to_string(), "unsupported model provider \"acme\"");
    }

    #[test]
    fn missing_key_env_vars() {
        let table = [
            (Provider::Anthropic, Some("ANTHROPIC_API_KEY")),
            (Provider::Azure, Some("AZURE_OPENAI_API_KEY")),
            (Provider::Bedrock, None),
            (Provider::Google, Some("GOOGLE_API_KEY")),
            (Provider::OpenAi, Some("OPENAI_API_KEY")),
            (Provider::OpenAiCompat, Some("OPENAI_COMPAT_API_KEY")),
            (Provider::OpenRouter, Some("OPENROUTER_API_KEY")),
            (Provider::Vercel, Some("VERCEL_API_KEY")),
        ];
        for (p, var) in table {
            assert_eq!(p.api_key_env_var(), var);
        }
    }

    #[test]
    fn azure_rewriting() {
        let table: [(&str, Result<&str, ErrorKind>); 13] = [
            (
                "https://my-res.openai.azure.com",
                Ok("https://my-res.openai.azure.com/openai/v1"),
            ),
            (
                "my-res.openai.azure.com",
                Ok("https://my-res.openai.azure.com/openai/v1"),
            ),
            (
                "https://my-res.openai.azure.com/openai/deployments/gpt?api-version=1",
                Ok("https://my-res.openai.azure.com/openai/v1"),
            ),
            (
                "https://My-Res.cognitiveservices.azure.com/",
                Ok("https://my-res.openai.azure.com/openai/v1"),
            ),
            (
                "http://proj.services.ai.azure.com/api/projects/x",
                Ok("https://proj.openai.azure.com/openai/v1"),
            ),
            (
                "  https://gw.example.com/azure  ",
                Ok("https://gw.example.com/azure"),
            ),
            (
                "gw.example.com:8443/v1",
                Ok("https://gw.example.com:8443/v1"),
            ),
            // Not a single resource label: kept as given.
            (
                "https://a.b.openai.azure.com/x",
                Ok("https://a.b.openai.azure.com/x"),
            ),
            ("https://openai.azure.com", Ok("https://openai.azure.com")),
            ("", Err(ErrorKind::MissingBaseUrl)),
            ("   ", Err(ErrorKind::MissingBaseUrl)),
            (
                "ftp://my-res.openai.azure.com",
                Err(ErrorKind::InvalidBaseUrl),
            ),
            ("https://", Err(ErrorKind::InvalidBaseUrl)),
        ];
        for (input, want) in table {
            let got = azure_base_url(input).map_err(|e| e.kind());
            assert_eq!(got.as_deref().map_err(|k| *k), want, "{input:?}");
        }
        let missing = azure_base_url("").unwrap_err();
        assert_eq!(missing.to_string(), "AZURE_OPENAI_BASE_URL is not set");
        let bad = azure_base_url("https://user:s3cret@[zz]/").unwrap_err();
        assert!(!bad.to_string().contains("s3cret"));
    }
}
