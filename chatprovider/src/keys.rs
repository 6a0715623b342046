//! [`ProviderApiKeys`]: per-provider API keys and base URLs, and what a
//! provider client needs from them ([`ProviderCredentials`]).

use std::collections::BTreeMap;
use std::fmt;

use codersdk::SecretString;

use crate::catalog::{azure_base_url, parse_http_url, Provider};
use crate::error::{Error, ErrorKind};
use crate::policy::ConfiguredProvider;

/// Largest API key accepted, in bytes (Coder documents "10 KB"; read as KiB). Longer
/// keys are rejected when stored and ignored when resolved.
pub const MAX_API_KEY_BYTES: usize = codersdk::MAX_PROVIDER_API_KEY_BYTES;

/// Most leading characters of a key that [`key_hint`] shows.
pub const KEY_HINT_PREFIX_CHARS: usize = 3;

/// Most trailing characters of a key that [`key_hint`] shows.
pub const KEY_HINT_SUFFIX_CHARS: usize = 4;

/// [`key_hint`] shows at most `1 / KEY_HINT_MAX_SHOWN_DENOMINATOR` of a key's characters.
pub const KEY_HINT_MAX_SHOWN_DENOMINATOR: usize = 3;

/// A masked form of an API key for audit logs: at most the first
/// [`KEY_HINT_PREFIX_CHARS`] and last [`KEY_HINT_SUFFIX_CHARS`] characters around `…`, and
/// never more than a third of the (trimmed) key in total. The trailing characters are
/// shown first because they are what provider dashboards display to identify a key.
///
/// ```
/// use chatprovider::key_hint;
/// assert_eq!(key_hint("sk-proj-0123456789abcdef"), "sk-…cdef"); // 24 chars: 7 shown
/// assert_eq!(key_hint("sk-central"), "…ral");                  // 10 chars: 3 shown
/// assert_eq!(key_hint("ab"), "…");                           // too short to show anything
/// ```
pub fn key_hint(key: &str) -> String {
    let key = key.trim();
    let len = key.chars().count();
    let budget = len / KEY_HINT_MAX_SHOWN_DENOMINATOR;
    let suffix = budget.min(KEY_HINT_SUFFIX_CHARS);
    let prefix = budget.saturating_sub(suffix).min(KEY_HINT_PREFIX_CHARS);
    let mut hint: String = key.chars().take(prefix).collect();
    hint.push('…');
    hint.extend(key.chars().skip(len.saturating_sub(suffix)));
    hint
}

/// Checks an API key and returns it trimmed. The error never repeats the key.
pub(crate) fn check_api_key(raw: &str) -> Result<&str, Error> {
    let key = raw.trim();
    if key.is_empty() {
        return Err(Error::new(ErrorKind::InvalidApiKey, "API key is blank"));
    }
    if key.len() > MAX_API_KEY_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidApiKey,
            format!(
                "API key is {} bytes long; keys may be at most {MAX_API_KEY_BYTES} bytes",
                key.len()
            ),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidApiKey,
            "API key contains control characters",
        ));
    }
    Ok(key)
}

/// The trimmed key when it could be sent in a header, `None` otherwise.
pub(crate) fn usable_key(raw: &str) -> Option<&str> {
    check_api_key(raw).ok()
}

/// API keys and base URLs per provider.
///
/// Keys are stored trimmed, as [`SecretString`]s: `Debug` prints `[REDACTED]`, and the type
/// deliberately does not implement `Serialize`. Lookups take any provider spelling and
/// normalize it ([`Provider::parse`]); unknown names find nothing.
///
/// A provider can be **present without a key** ([`ProviderApiKeys::set_ambient`],
/// [`ProviderApiKeys::has_provider`]): "resolved, and ambient credentials may satisfy it".
/// Only providers that [allow ambient credentials](Provider::allows_ambient_credentials)
/// (Bedrock) are usable that way.
///
/// Coder's Go type also has legacy `OpenAI`/`Anthropic` fields mirrored into its map; here
/// there is only the map, which behaves the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderApiKeys {
    keys: BTreeMap<Provider, SecretString>,
    base_urls: BTreeMap<Provider, String>,
}

impl ProviderApiKeys {
    /// No keys, no base URLs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `provider`'s key, trimmed. Fails, without storing, when the key is blank,
    /// longer than [`MAX_API_KEY_BYTES`] or contains control characters.
    pub fn set_api_key(
        &mut self,
        provider: Provider,
        key: impl Into<SecretString>,
    ) -> Result<(), Error> {
        let key = key.into();
        let clean = check_api_key(key.expose()).map_err(|e| e.with_provider(provider))?;
        self.keys.insert(provider, SecretString::new(clean));
        Ok(())
    }

    /// [`set_api_key`](Self::set_api_key), builder style.
    pub fn with_api_key(
        mut self,
        provider: Provider,
        key: impl Into<SecretString>,
    ) -> Result<Self, Error> {
        self.set_api_key(provider, key)?;
        Ok(self)
    }

    /// Records `provider` as present without a key, replacing any key it had.
    pub fn set_ambient(&mut self, provider: Provider) {
        self.keys.insert(provider, SecretString::default());
    }

    /// Forgets `provider`'s key (and its presence).
    pub fn remove_api_key(&mut self, provider: Provider) {
        self.keys.remove(&provider);
    }

    /// Stores `provider`'s base URL, trimmed; a blank URL removes it. Fails, without
    /// storing, unless the URL is an absolute `http`/`https` URL with a host.
    pub fn set_base_url(&mut self, provider: Provider, url: &str) -> Result<(), Error> {
        let url = url.trim();
        if url.is_empty() {
            self.base_urls.remove(&provider);
            return Ok(());
        }
        parse_http_url(url).map_err(|e| e.with_provider(provider))?;
        self.base_urls.insert(provider, url.to_owned());
        Ok(())
    }

    /// [`set_base_url`](Self::set_base_url), builder style.
    pub fn with_base_url(mut self, provider: Provider, url: &str) -> Result<Self, Error> {
        self.set_base_url(provider, url)?;
        Ok(self)
    }

    /// The provider's key: trimmed and non-empty, else `None` (also for unknown names).
    pub fn api_key(&self, provider: &str) -> Option<&str> {
        let p = Provider::parse(provider)?;
        self.api_key_of(p)
    }

    pub(crate) fn api_key_of(&self, provider: Provider) -> Option<&str> {
        self.keys
            .get(&provider)
            .map(SecretString::expose)
            .filter(|k| !k.is_empty())
    }

    /// Whether the provider has an entry, even an empty one ("resolved; ambient
    /// credentials may satisfy it").
    pub fn has_provider(&self, provider: &str) -> bool {
        Provider::parse(provider).is_some_and(|p| self.keys.contains_key(&p))
    }

    /// The provider's configured base URL, trimmed; `None` when unset (the client default
    /// applies).
    pub fn base_url(&self, provider: &str) -> Option<&str> {
        let p = Provider::parse(provider)?;
        self.base_urls.get(&p).map(String::as_str)
    }

    /// Whether a client could be built: the provider has a key, or it allows ambient
    /// credentials and [is present](Self::has_provider).
    pub fn is_usable(&self, provider: &str) -> bool {
        Provider::parse(provider).is_some_and(|p| {
            self.api_key_of(p).is_some()
                || (p.allows_ambient_credentials() && self.keys.contains_key(&p))
        })
    }

    /// Everything a provider client needs to connect (steps 2–3).
    ///
    /// Fails with the missing-key error (`OPENAI_API_KEY is not set`, …) when the
    /// provider has no key and cannot use ambient credentials; with
    /// `AZURE_OPENAI_BASE_URL is not set` for Azure without a base URL; with a
    /// configuration error when the base URL is not an absolute `http`/`https` URL (so a
    /// key is never sent to the provider's default endpoint by mistake); and with
    /// `unsupported model provider "<name>"` for unknown names.
    pub fn client_credentials(&self, provider: &str) -> Result<ProviderCredentials<'_>, Error> {
        let p = Provider::parse(provider).ok_or_else(|| Error::unsupported_provider(provider))?;
        let api_key = self.api_key_of(p);
        if api_key.is_none() && !(p.allows_ambient_credentials() && self.keys.contains_key(&p)) {
            return Err(Error::missing_key(p));
        }
        let configured = self.base_urls.get(&p).map(String::as_str);
        let base_url = match (p, configured) {
            (Provider::Azure, url) => Some(azure_base_url(url.unwrap_or_default())?),
            (_, Some(url)) => {
                parse_http_url(url).map_err(|e| e.with_provider(p))?;
                Some(url.to_owned())
            }
            (_, None) => None,
        };
        Ok(ProviderCredentials {
            provider: p,
            api_key,
            base_url,
        })
    }

    /// Providers that have an entry (with or without a key), in catalog order.
    pub fn providers(&self) -> impl Iterator<Item = Provider> + '_ {
        self.keys.keys().copied()
    }

    /// Whether there is no key entry and no base URL.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.base_urls.is_empty()
    }

    /// Overlays configured providers on deployment keys, ignoring the key-policy toggles
    /// (Coder's `MergeProviderAPIKeys`).
    ///
    /// Starts from `fallback` without its empty entries; then every configured provider
    /// with a known id and a non-blank key or base URL overrides it. Keys that could not be
    /// sent (control characters, too long) are skipped. Use
    /// [`resolve_user_provider_keys`](crate::resolve_user_provider_keys) to apply the
    /// toggles and user keys.
    pub fn merged(fallback: &ProviderApiKeys, configured: &[ConfiguredProvider]) -> Self {
        let mut merged = fallback.without_empty_keys();
        for row in configured {
            let Some(p) = Provider::parse(&row.provider) else {
                continue;
            };
            if let Some(key) = usable_key(row.api_key.expose()) {
                merged.keys.insert(p, SecretString::new(key));
            }
            merged.set_base_url_unchecked(p, &row.base_url);
        }
        merged
    }

    /// Deletes the keys and base URLs of every provider not in `enabled` (Coder's
    /// `PruneDisabledProviderKeys`).
    pub fn prune_disabled(&mut self, enabled: impl IntoIterator<Item = Provider>) {
        let enabled: Vec<Provider> = enabled.into_iter().collect();
        self.keys.retain(|p, _| enabled.contains(p));
        self.base_urls.retain(|p, _| enabled.contains(p));
    }

    pub(crate) fn without_empty_keys(&self) -> Self {
        let mut copy = self.clone();
        copy.keys.retain(|_, k| !k.is_empty());
        copy
    }

    pub(crate) fn insert_clean_key(&mut self, provider: Provider, key: &str) {
        self.keys.insert(provider, SecretString::new(key));
    }

    pub(crate) fn remove_everything(&mut self, provider: Provider) {
        self.keys.remove(&provider);
        self.base_urls.remove(&provider);
    }

    /// Stores a base URL as configured (trimmed) without checking it: stored provider rows
    /// were validated on write, and [`client_credentials`](Self::client_credentials)
    /// re-checks before use.
    pub(crate) fn set_base_url_unchecked(&mut self, provider: Provider, url: &str) {
        let url = url.trim();
        if !url.is_empty() {
            self.base_urls.insert(provider, url.to_owned());
        }
    }
}

/// Free-function form of [`ProviderApiKeys::merged`].
pub fn merge_provider_api_keys(
    fallback: &ProviderApiKeys,
    configured: &[ConfiguredProvider],
) -> ProviderApiKeys {
    ProviderApiKeys::merged(fallback, configured)
}

/// Free-function form of [`ProviderApiKeys::prune_disabled`].
pub fn prune_disabled_provider_keys(
    keys: &mut ProviderApiKeys,
    enabled: impl IntoIterator<Item = Provider>,
) {
    keys.prune_disabled(enabled);
}

/// What a provider client connects with: the provider, its key (or ambient credentials)
/// and its endpoint. `Debug` shows only a [`key_hint`].
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderCredentials<'a> {
    provider: Provider,
    api_key: Option<&'a str>,
    base_url: Option<String>,
}

impl<'a> ProviderCredentials<'a> {
    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The key to send; `None` means "use ambient credentials" (Bedrock on the server's
    /// AWS credentials).
    pub fn api_key(&self) -> Option<&'a str> {
        self.api_key
    }

    /// Whether the client must sign with ambient credentials instead of a key.
    pub fn is_ambient(&self) -> bool {
        self.api_key.is_none()
    }

    /// The endpoint; `None` means the client's default ([`ProviderCatalog::default_base_url`](crate::ProviderCatalog::default_base_url)).
    /// For Azure it is always set and already rewritten by
    /// [`azure_base_url`](crate::azure_base_url).
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }
}

impl fmt::Debug for ProviderCredentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderCredentials")
            .field("provider", &self.provider)
            .field("api_key", &self.api_key.map(key_hint))
            .field("base_url", &self.base_url.as_ref().map(|_| "[set]"))
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(provider: &str, key: &str, url: &str) -> ConfiguredProvider {
        ConfiguredProvider {
            id: Uuid::new_v4(),
            provider: provider.into(),
            api_key: key.into(),
            base_url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn lookups_normalize_and_trim() {
        let mut k = ProviderApiKeys::new();
        k.set_api_key(Provider::OpenAi, "  sk-abc  ").unwrap();
        k.set_base_url(Provider::OpenAi, " https://proxy.example.com/v1 ")
            .unwrap();
        assert_eq!(k.api_key(" OPENAI "), Some("sk-abc"));
        assert_eq!(k.base_url("openai"), Some("https://proxy.example.com/v1"));
        assert_eq!(k.api_key("anthropic"), None);
        assert_eq!(k.api_key("openai-compatible"), None);
        assert!(k.has_provider("openai") && !k.has_provider("nope"));
        k.set_base_url(Provider::OpenAi, "   ").unwrap();
        assert_eq!(k.base_url("openai"), None);
    }

    #[test]
    fn present_but_empty() {
        let mut k = ProviderApiKeys::new();
        k.set_ambient(Provider::Bedrock);
        assert!(k.has_provider("bedrock"));
        assert_eq!(k.api_key("bedrock"), None);
        assert!(k.is_usable("bedrock"));
        // Only ambient-capable providers are usable without a key.
        k.set_ambient(Provider::OpenAi);
        assert!(k.has_provider("openai") && !k.is_usable("openai"));
        let creds = k.client_credentials("bedrock").unwrap();
        assert!(creds.is_ambient());
        assert_eq!(creds.provider(), Provider::Bedrock);
        assert_eq!(
            k.client_credentials("openai").unwrap_err().to_string(),
            "OPENAI_API_KEY is not set"
        );
        k.remove_api_key(Provider::Bedrock);
        assert_eq!(
            k.client_credentials("bedrock").unwrap_err().to_string(),
            "API key for provider \"bedrock\" is not set"
        );
    }

    #[test]
    fn bad_keys_and_urls_are_refused_without_echo() {
        let mut k = ProviderApiKeys::new();
        for bad in ["", "   ", "sk-a\nb", "sk-\u{7f}x"] {
            let e = k.set_api_key(Provider::OpenAi, bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidApiKey);
            assert_eq!(e.provider(), Some(Provider::OpenAi));
        }
        let at_limit = "k".repeat(MAX_API_KEY_BYTES);
        k.set_api_key(Provider::OpenAi, at_limit.as_str()).unwrap();
        let over = "k".repeat(MAX_API_KEY_BYTES + 1);
        let e = k.set_api_key(Provider::OpenAi, over.as_str()).unwrap_err();
        assert!(!e.to_string().contains(&over));
        assert_eq!(k.api_key("openai"), Some(at_limit.as_str()));
        for bad in [
            "ftp://x.example",
            "not a url",
            "/relative",
            "https://",
            "file:///etc",
        ] {
            let e = k.set_base_url(Provider::Vercel, bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidBaseUrl, "{bad}");
        }
        let e = k
            .set_base_url(Provider::Vercel, "gopher://user:hunter2@x")
            .unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }

    #[test]
    fn client_credentials_rules() {
        let k = ProviderApiKeys::new()
            .with_api_key(Provider::Azure, "az-key")
            .unwrap()
            .with_api_key(Provider::OpenRouter, "or-key")
            .unwrap();
        let e = k.client_credentials("azure").unwrap_err();
        assert_eq!(e.to_string(), "AZURE_OPENAI_BASE_URL is not set");
        let k = k
            .with_base_url(Provider::Azure, "https://r1.openai.azure.com/x")
            .unwrap();
        let c = k.client_credentials("azure").unwrap();
        assert_eq!(c.base_url(), Some("https://r1.openai.azure.com/openai/v1"));
        assert_eq!(c.api_key(), Some("az-key"));
        let c = k.client_credentials("openrouter").unwrap();
        assert_eq!(c.base_url(), None);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("or-key"), "{dbg}");
        let e = k.client_credentials("acme").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedProvider);
        // A stored row's broken URL is caught before the key is sent anywhere.
        let mut k = ProviderApiKeys::merged(
            &ProviderApiKeys::new(),
            &[row("openai-compat", "c-key", "localhost:8080")],
        );
        let e = k.client_credentials("openai-compat").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidBaseUrl);
        k.set_base_url(Provider::OpenAiCompat, "http://localhost:8080/v1")
            .unwrap();
        assert_eq!(
            k.client_credentials("openai-compat").unwrap().base_url(),
            Some("http://localhost:8080/v1")
        );
    }

    /// The missing-key vectors, up to building the client (resolve the model, then the
    /// credentials).
    #[test]
    fn model_from_config_vectors() {
        let creds = |model: &str, hint: &str, keys: &ProviderApiKeys| {
            let (p, _) = crate::resolve_model_with_provider_hint(model, hint).unwrap();
            keys.client_credentials(p.as_str())
                .map(|c| {
                    (
                        c.provider(),
                        c.api_key().map(str::to_owned),
                        c.base_url().map(str::to_owned),
                    )
                })
                .map_err(|e| e.to_string())
        };
        let none = ProviderApiKeys::new();
        let mut ambient = ProviderApiKeys::new();
        ambient.set_ambient(Provider::Bedrock);
        assert_eq!(
            creds("anthropic.claude-v2", "bedrock", &ambient),
            Ok((Provider::Bedrock, None, None))
        );
        assert_eq!(
            creds("anthropic.claude-v2", "bedrock", &none),
            Err("API key for provider \"bedrock\" is not set".to_owned())
        );
        let bedrock = ProviderApiKeys::new()
            .with_api_key(Provider::Bedrock, "test-key")
            .unwrap()
            .with_base_url(Provider::Bedrock, "http://127.0.0.1:9")
            .unwrap();
        assert_eq!(
            creds("m", "bedrock", &bedrock),
            Ok((
                Provider::Bedrock,
                Some("test-key".into()),
                Some("http://127.0.0.1:9".into())
            ))
        );
        assert_eq!(
            creds("gpt-4", "openai", &none),
            Err("OPENAI_API_KEY is not set".to_owned())
        );
        assert_eq!(
            creds("claude-sonnet-4-20250514", "anthropic", &none),
            Err("ANTHROPIC_API_KEY is not set".to_owned())
        );
        assert_eq!(
            creds("gpt-4", "", &none),
            Err("OPENAI_API_KEY is not set".to_owned())
        );
    }

    #[test]
    fn merge_and_prune() {
        let mut fallback = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-env")
            .unwrap()
            .with_api_key(Provider::Anthropic, "ant-env")
            .unwrap()
            .with_base_url(Provider::Anthropic, "https://ant.example.com")
            .unwrap();
        fallback.set_ambient(Provider::Bedrock);
        let merged = merge_provider_api_keys(
            &fallback,
            &[
                row(" OpenAI ", " sk-db ", ""),
                row("anthropic", "  ", " https://ant2.example.com "),
                row("acme", "k", "https://acme.example.com"),
                row("google", "g\u{0}k", ""),
            ],
        );
        assert_eq!(merged.api_key("openai"), Some("sk-db"));
        assert_eq!(merged.api_key("anthropic"), Some("ant-env"));
        assert_eq!(
            merged.base_url("anthropic"),
            Some("https://ant2.example.com")
        );
        assert!(
            !merged.has_provider("bedrock"),
            "empty fallback entries are dropped"
        );
        assert!(
            !merged.has_provider("google"),
            "unsendable keys are skipped"
        );
        assert_eq!(
            merged.providers().collect::<Vec<_>>(),
            vec![Provider::Anthropic, Provider::OpenAi]
        );
        let mut pruned = merged.clone();
        prune_disabled_provider_keys(&mut pruned, [Provider::OpenAi]);
        assert_eq!(pruned.api_key("anthropic"), None);
        assert_eq!(pruned.base_url("anthropic"), None);
        assert_eq!(pruned.api_key("openai"), Some("sk-db"));
        pruned.prune_disabled([]);
        assert!(pruned.is_empty());
    }

    #[test]
    fn debug_never_shows_keys() {
        let k = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-very-secret-value")
            .unwrap();
        let dbg = format!("{k:?} {k:#?}");
        assert!(!dbg.contains("sk-very-secret-value"), "{dbg}");
        assert!(dbg.contains("[REDACTED]"));
    }

    #[test]
    fn hints() {
        let table = [
            ("", "…"),
            ("ab", "…"),
            ("abc", "…c"),
            ("abcdef", "…ef"),
            ("sk-central", "…ral"),
            ("sk-user", "…er"),
            ("0123456789ab", "…89ab"),
            ("0123456789abcde", "0…bcde"),
            ("0123456789abcdefghi", "01…fghi"),
            ("0123456789abcdefghijk", "012…hijk"),
            ("sk-proj-0123456789abcdef0123456789", "sk-…6789"),
            ("  sk-proj-0123456789abcdef0123456789  ", "sk-…6789"),
            ("ééééééééééééééééééééé", "ééé…éééé"),
        ];
        for (key, want) in table {
            assert_eq!(key_hint(key), want, "{key:?}");
        }
        for len in 0..64 {
            let key: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let shown = key_hint(&key).chars().count() - 1;
            assert!(shown <= len / 3, "len {len}");
            assert!(shown <= KEY_HINT_PREFIX_CHARS + KEY_HINT_SUFFIX_CHARS);
        }
    }
}
