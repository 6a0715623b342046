//! Provider instances: the named upstreams the gateway forwards to.
//!
//! Every instance has a name (the `{provider}` path segment), a type (which wire API it
//! speaks: `openai`, `anthropic`, or `bedrock` — Anthropic's Messages API answered by
//! Claude on AWS Bedrock), a base URL and, for central-key requests, a key.
//! Two come by default — `openai` and `anthropic`, from the chat providers' configuration
//! (their central key and base URL, else the environment's) — and any number more are
//! configured by indexed environment variables ([`instances_from_env`]).

use std::collections::BTreeMap;
use std::fmt;

use chatprovider::gateway::BedrockSettings;
use codersdk::SecretString;

/// Prefix of the environment variables that configure instances:
/// `CHATD_AIBRIDGE_PROVIDER_<N>_{TYPE,NAME,KEY,BASE_URL}`, and for `bedrock` instances
/// `_{REGION,MODEL,SMALL_FAST_MODEL}`.
pub const ENV_PREFIX: &str = "CHATD_AIBRIDGE_PROVIDER_";

/// Most instances the environment may configure.
pub const MAX_ENV_INSTANCES: usize = 64;

/// Most bytes of an instance name.
pub const MAX_INSTANCE_NAME_BYTES: usize = 64;

/// Most bytes of an instance's base URL.
pub const MAX_BASE_URL_BYTES: usize = 2048;

/// The default instance speaking OpenAI's APIs.
pub const DEFAULT_OPENAI_INSTANCE: &str = "openai";

/// The default instance speaking Anthropic's API.
pub const DEFAULT_ANTHROPIC_INSTANCE: &str = "anthropic";

/// Which wire API an instance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InstanceType {
    /// OpenAI: `/v1/chat/completions`, `/v1/responses`, `/v1/models`.
    OpenAi,
    /// Anthropic: `/v1/messages`, `/v1/models`.
    Anthropic,
    /// Anthropic's `/v1/messages` (and `/v1/models`, from the configuration) answered by
    /// Claude on AWS Bedrock: the key, when set, is a Bedrock API key; without one, central
    /// requests are signed with the server's AWS credentials (SigV4).
    Bedrock,
}

impl InstanceType {
    /// `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceType::OpenAi => "openai",
            InstanceType::Anthropic => "anthropic",
            InstanceType::Bedrock => "bedrock",
        }
    }

    /// Parses `openai`, `anthropic` or `bedrock` (trimmed, any case).
    pub fn parse(raw: &str) -> Option<InstanceType> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(InstanceType::OpenAi),
            "anthropic" => Some(InstanceType::Anthropic),
            "bedrock" => Some(InstanceType::Bedrock),
            _ => None,
        }
    }

    /// The chat provider of the same wire format.
    pub fn provider(self) -> chatprovider::Provider {
        match self {
            InstanceType::OpenAi => chatprovider::Provider::OpenAi,
            InstanceType::Anthropic => chatprovider::Provider::Anthropic,
            InstanceType::Bedrock => chatprovider::Provider::Bedrock,
        }
    }

    /// The provider's public endpoint, used when an instance sets none (OpenAI's ends in
    /// `/v1`, Anthropic's does not, as in the chat providers' configuration). `None` for
    /// Bedrock, whose endpoint is its region's.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            InstanceType::OpenAi => Some("https://api.openai.com/v1"),
            InstanceType::Anthropic => Some("https://api.anthropic.com"),
            InstanceType::Bedrock => None,
        }
    }

    /// The base URL of an instance of this type: `raw` when given (checked with
    /// [`normalize_base_url`]), else the type's public endpoint, else (Bedrock) the
    /// region's endpoint; an error when a Bedrock instance has neither.
    pub fn base_url(self, raw: Option<&str>, bedrock: &BedrockSettings) -> Result<String, String> {
        match raw.map(str::trim).filter(|r| !r.is_empty()) {
            Some(raw) => normalize_base_url(raw),
            None => self
                .default_base_url()
                .map(str::to_owned)
                .or_else(|| bedrock.default_base_url())
                .ok_or_else(|| "a bedrock instance needs a region or a base URL".to_owned()),
        }
    }
}

/// Where an instance was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstanceSource {
    /// A default instance (`openai`, `anthropic`) from the chat providers' configuration.
    Default,
    /// `CHATD_AIBRIDGE_PROVIDER_<N>_*`; read-only through the API.
    Environment,
    /// Managed through the admin API and stored, its key sealed with the keyring.
    Database,
}

/// One provider instance. `Debug` never shows the key.
#[derive(Clone)]
pub struct ProviderInstance {
    /// The name clients use in the path.
    pub name: String,
    /// The wire API it speaks.
    pub instance_type: InstanceType,
    /// The base URL, without a trailing `/`.
    pub base_url: String,
    /// The key central-key requests are sent with; `None` when the instance has none (it
    /// then serves only requests bringing their own key).
    pub api_key: Option<SecretString>,
    /// Where it was configured.
    pub source: InstanceSource,
    /// Region and model mapping of a `bedrock` instance (empty for the other types).
    pub bedrock: BedrockSettings,
}

impl fmt::Debug for ProviderInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderInstance")
            .field("name", &self.name)
            .field("instance_type", &self.instance_type)
            .field("base_url", &self.base_url)
            .field("has_api_key", &self.api_key.is_some())
            .field("source", &self.source)
            .field("bedrock", &self.bedrock)
            .finish()
    }
}

/// A configuration of instances that cannot be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfigError(String);

impl fmt::Display for InstanceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InstanceConfigError {}

/// Names no instance may take: the gateway's own routes below `/api/v2/aibridge/`.
pub const RESERVED_INSTANCE_NAMES: &[&str] = &["providers", "interceptions", "sessions"];

/// Checks an instance name: 1 to [`MAX_INSTANCE_NAME_BYTES`] bytes of lowercase ASCII
/// letters, digits, `-` and `_`, starting with a letter or digit (it is a path segment),
/// and none of [`RESERVED_INSTANCE_NAMES`].
pub fn validate_instance_name(name: &str) -> Result<(), String> {
    if RESERVED_INSTANCE_NAMES.contains(&name) {
        return Err(format!("{name:?} is reserved for the gateway's own routes"));
    }
    if name.is_empty() || name.len() > MAX_INSTANCE_NAME_BYTES {
        return Err(format!(
            "an instance name has 1 to {MAX_INSTANCE_NAME_BYTES} characters"
        ));
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an instance name: use lowercase letters, digits, '-' and '_', \
             starting with a letter or digit"
        ))
    }
}

/// Checks and normalizes a base URL: `http` or `https`, no query, fragment or user
/// info, at most [`MAX_BASE_URL_BYTES`]; returned without a trailing `/`.
pub fn normalize_base_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > MAX_BASE_URL_BYTES {
        return Err(format!("a base URL has at most {MAX_BASE_URL_BYTES} bytes"));
    }
    codersdk::validate_http_url(raw).map_err(|reason| format!("the base URL {reason}"))?;
    let url = url::Url::parse(raw).map_err(|e| format!("the base URL is invalid: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the base URL must not have a query or a fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the base URL must not carry credentials".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The Bedrock settings of an instance of `instance_type` (checked): only a `bedrock`
/// instance may have them. The error names the setting (`REGION`, `MODEL`,
/// `SMALL_FAST_MODEL`) and says what is wrong.
pub fn bedrock_settings(
    instance_type: InstanceType,
    region: Option<&str>,
    model: Option<&str>,
    small_fast_model: Option<&str>,
) -> Result<BedrockSettings, (&'static str, String)> {
    let given = |v: Option<&str>| v.is_some_and(|v| !v.trim().is_empty());
    if instance_type != InstanceType::Bedrock {
        for (field, value) in [
            ("REGION", region),
            ("MODEL", model),
            ("SMALL_FAST_MODEL", small_fast_model),
        ] {
            if given(value) {
                return Err((field, "only a bedrock instance has this setting".to_owned()));
            }
        }
        return Ok(BedrockSettings::default());
    }
    // Each setting checked on its own first, so the error names the one at fault.
    BedrockSettings::new(region, None, None).map_err(|e| ("REGION", e))?;
    BedrockSettings::new(None, model, None).map_err(|e| ("MODEL", e))?;
    if let Some(small) = small_fast_model {
        chatprovider::gateway::validate_bedrock_model_id(small.trim())
            .or_else(|e| {
                if small.trim().is_empty() {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| ("SMALL_FAST_MODEL", e))?;
    }
    BedrockSettings::new(region, model, small_fast_model).map_err(|e| ("SMALL_FAST_MODEL", e))
}

#[derive(Default)]
struct EnvEntry {
    instance_type: Option<String>,
    name: Option<String>,
    key: Option<String>,
    base_url: Option<String>,
    region: Option<String>,
    model: Option<String>,
    small_fast_model: Option<String>,
}

/// The instances configured by `CHATD_AIBRIDGE_PROVIDER_<N>_{TYPE,NAME,KEY,BASE_URL}`
/// among `vars` (the process environment, passed in: libraries do not read it). `N` is
/// any non-negative integer; instances come in index order. `TYPE` and `NAME` are
/// required; `KEY` is optional (without it only requests bringing their own key are
/// served); `BASE_URL` defaults to the type's public endpoint.
///
/// Errors: an unknown suffix, a bad index, type, name or base URL, more than
/// [`MAX_ENV_INSTANCES`], and a name configured twice — also one of the default names
/// (`openai`, `anthropic`), which the chat providers' configuration already defines.
pub fn instances_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<ProviderInstance>, InstanceConfigError> {
    let mut entries: BTreeMap<u64, EnvEntry> = BTreeMap::new();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let (index, field) = rest.split_once('_').ok_or_else(|| {
            InstanceConfigError(format!(
                "{var}: expected {ENV_PREFIX}<N>_TYPE, _NAME, _KEY or _BASE_URL"
            ))
        })?;
        let index: u64 = index.parse().map_err(|_| {
            InstanceConfigError(format!("{var}: {index:?} is not an instance index"))
        })?;
        if !entries.contains_key(&index) && entries.len() >= MAX_ENV_INSTANCES {
            return Err(InstanceConfigError(format!(
                "at most {MAX_ENV_INSTANCES} AI Gateway instances may be configured"
            )));
        }
        let entry = entries.entry(index).or_default();
        let slot = match field {
            "TYPE" => &mut entry.instance_type,
            "NAME" => &mut entry.name,
            "KEY" => &mut entry.key,
            "BASE_URL" => &mut entry.base_url,
            "REGION" => &mut entry.region,
            "MODEL" => &mut entry.model,
            "SMALL_FAST_MODEL" => &mut entry.small_fast_model,
            _ => {
                return Err(InstanceConfigError(format!(
                    "{var}: unknown setting {field:?} (TYPE, NAME, KEY, BASE_URL, or for \
                     bedrock REGION, MODEL, SMALL_FAST_MODEL)"
                )))
            }
        };
        *slot = Some(value);
    }
    let mut instances: Vec<ProviderInstance> = Vec::with_capacity(entries.len());
    for (index, entry) in entries {
        let var = |field: &str| format!("{ENV_PREFIX}{index}_{field}");
        let raw_type = entry
            .instance_type
            .ok_or_else(|| InstanceConfigError(format!("{} is not set", var("TYPE"))))?;
        let instance_type = InstanceType::parse(&raw_type).ok_or_else(|| {
            InstanceConfigError(format!(
                "{}: {raw_type:?} is not an instance type (openai, anthropic or bedrock)",
                var("TYPE")
            ))
        })?;
        let name = entry
            .name
            .map(|n| n.trim().to_owned())
            .ok_or_else(|| InstanceConfigError(format!("{} is not set", var("NAME"))))?;
        validate_instance_name(&name)
            .map_err(|e| InstanceConfigError(format!("{}: {e}", var("NAME"))))?;
        if name == DEFAULT_OPENAI_INSTANCE
            || name == DEFAULT_ANTHROPIC_INSTANCE
            || instances.iter().any(|i| i.name == name)
        {
            return Err(InstanceConfigError(format!(
                "{}: the AI Gateway instance name {name:?} is configured twice",
                var("NAME")
            )));
        }
        let bedrock = bedrock_settings(
            instance_type,
            entry.region.as_deref(),
            entry.model.as_deref(),
            entry.small_fast_model.as_deref(),
        )
        .map_err(|(field, e)| InstanceConfigError(format!("{}: {e}", var(field))))?;
        let base_url = instance_type
            .base_url(entry.base_url.as_deref(), &bedrock)
            .map_err(|e| InstanceConfigError(format!("{}: {e}", var("BASE_URL"))))?;
        let api_key = match entry.key.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => {
                if key.len() > chatprovider::MAX_API_KEY_BYTES || key.chars().any(char::is_control)
                {
                    return Err(InstanceConfigError(format!(
                        "{}: the key is longer than {} bytes or has control characters",
                        var("KEY"),
                        chatprovider::MAX_API_KEY_BYTES
                    )));
                }
                Some(SecretString::from(key.to_owned()))
            }
            _ => None,
        };
        instances.push(ProviderInstance {
            name,
            instance_type,
            base_url,
            api_key,
            source: InstanceSource::Environment,
            bedrock,
        });
    }
    Ok(instances)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn indexed_variables_make_instances_in_index_order() {
        let instances = instances_from_env(env(&[
            ("CHATD_AIBRIDGE_PROVIDER_10_TYPE", "openai"),
            ("CHATD_AIBRIDGE_PROVIDER_10_NAME", "openai-eu"),
            ("CHATD_AIBRIDGE_PROVIDER_2_TYPE", "Anthropic"),
            ("CHATD_AIBRIDGE_PROVIDER_2_NAME", "anthropic-corp"),
            ("CHATD_AIBRIDGE_PROVIDER_2_KEY", "sk-ant-corp-0123456789"),
            (
                "CHATD_AIBRIDGE_PROVIDER_2_BASE_URL",
                "https://llm.corp.example/anthropic/",
            ),
            ("PATH", "/usr/bin"),
        ]))
        .unwrap();
        assert_eq!(instances.len(), 2);
        let corp = &instances[0];
        assert_eq!(corp.name, "anthropic-corp");
        assert_eq!(corp.instance_type, InstanceType::Anthropic);
        assert_eq!(corp.base_url, "https://llm.corp.example/anthropic");
        assert_eq!(corp.source, InstanceSource::Environment);
        let debug = format!("{corp:?}");
        assert!(!debug.contains("sk-ant-corp"), "{debug}");
        let eu = &instances[1];
        assert_eq!(eu.base_url, "https://api.openai.com/v1");
        assert!(eu.api_key.is_none());
    }

    #[test]
    fn a_name_configured_twice_is_an_error() {
        let twice = instances_from_env(env(&[
            ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
            ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "corp"),
            ("CHATD_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
            ("CHATD_AIBRIDGE_PROVIDER_1_NAME", "corp"),
        ]))
        .unwrap_err();
        assert!(twice.to_string().contains("configured twice"), "{twice}");
        let default_name = instances_from_env(env(&[
            ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
            ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "anthropic"),
        ]))
        .unwrap_err();
        assert!(default_name.to_string().contains("configured twice"));
    }

    #[test]
    fn bad_settings_name_their_variable() {
        for (pairs, needle) in [
            (
                vec![("CHATD_AIBRIDGE_PROVIDER_0_NAME", "x")],
                "CHATD_AIBRIDGE_PROVIDER_0_TYPE is not set",
            ),
            (
                vec![("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "openai")],
                "_0_NAME is not set",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "gemini"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "g"),
                ],
                "not an instance type",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "Bad Name"),
                ],
                "not an instance name",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "o"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_BASE_URL", "ftp://x"),
                ],
                "_0_BASE_URL",
            ),
            (
                vec![("CHATD_AIBRIDGE_PROVIDER_X_TYPE", "openai")],
                "not an instance index",
            ),
            (
                vec![("CHATD_AIBRIDGE_PROVIDER_0_DEPLOYMENT", "gpt")],
                "unknown setting",
            ),
            (vec![("CHATD_AIBRIDGE_PROVIDER_0", "gpt")], "expected"),
        ] {
            let err = instances_from_env(env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn bedrock_instances_take_a_region_or_a_base_url_and_a_model_mapping() {
        let instances = instances_from_env(env(&[
            ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "bedrock"),
            ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "claude-aws"),
            ("CHATD_AIBRIDGE_PROVIDER_0_REGION", "eu-west-1"),
            (
                "CHATD_AIBRIDGE_PROVIDER_0_MODEL",
                "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
            (
                "CHATD_AIBRIDGE_PROVIDER_0_SMALL_FAST_MODEL",
                "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            ),
            ("CHATD_AIBRIDGE_PROVIDER_1_TYPE", "Bedrock"),
            ("CHATD_AIBRIDGE_PROVIDER_1_NAME", "bedrock-proxy"),
            (
                "CHATD_AIBRIDGE_PROVIDER_1_BASE_URL",
                "https://bedrock.corp.example/",
            ),
            (
                "CHATD_AIBRIDGE_PROVIDER_1_KEY",
                "ABSKbedrockapikey0123456789",
            ),
        ]))
        .unwrap();
        let aws = &instances[0];
        assert_eq!(aws.instance_type, InstanceType::Bedrock);
        assert_eq!(
            aws.base_url,
            "https://bedrock-runtime.eu-west-1.amazonaws.com"
        );
        assert!(
            aws.api_key.is_none(),
            "signed with the server's AWS credentials"
        );
        assert_eq!(aws.bedrock.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            aws.bedrock.model_for("claude-haiku-4-5"),
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        let proxy = &instances[1];
        assert_eq!(proxy.base_url, "https://bedrock.corp.example");
        assert_eq!(proxy.bedrock.region, None);
        assert_eq!(proxy.bedrock.model_for("x.y"), "x.y");
        assert!(!format!("{proxy:?}").contains("ABSKbedrock"));

        for (pairs, needle) in [
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "bedrock"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "b"),
                ],
                "_0_BASE_URL: a bedrock instance needs a region or a base URL",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "a"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_REGION", "us-east-1"),
                ],
                "_0_REGION: only a bedrock instance",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "bedrock"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "b"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_REGION", "evil.com/x"),
                ],
                "_0_REGION",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "bedrock"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "b"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_REGION", "us-east-1"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_SMALL_FAST_MODEL", "h"),
                ],
                "_0_SMALL_FAST_MODEL",
            ),
            (
                vec![
                    ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "bedrock"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "b"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_REGION", "us-east-1"),
                    ("CHATD_AIBRIDGE_PROVIDER_0_MODEL", "two words"),
                ],
                "_0_MODEL",
            ),
        ] {
            let err = instances_from_env(env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn limits_hold_at_their_edges() {
        let name_at = "a".repeat(MAX_INSTANCE_NAME_BYTES);
        assert!(validate_instance_name(&name_at).is_ok());
        assert!(validate_instance_name(&format!("{name_at}a")).is_err());
        assert!(validate_instance_name("").is_err());
        assert!(validate_instance_name("-x").is_err());
        assert!(validate_instance_name("anthropic-corp_2").is_ok());
        for reserved in RESERVED_INSTANCE_NAMES {
            assert!(validate_instance_name(reserved).is_err());
        }
        let mut vars = Vec::new();
        for i in 0..MAX_ENV_INSTANCES {
            vars.push((format!("{ENV_PREFIX}{i}_TYPE"), "openai".to_owned()));
            vars.push((format!("{ENV_PREFIX}{i}_NAME"), format!("i{i}")));
        }
        assert_eq!(
            instances_from_env(vars.clone()).unwrap().len(),
            MAX_ENV_INSTANCES
        );
        vars.push((
            format!("{ENV_PREFIX}{MAX_ENV_INSTANCES}_TYPE"),
            "openai".to_owned(),
        ));
        assert!(instances_from_env(vars).is_err());
        let url_at = format!("https://e.com/{}", "a".repeat(MAX_BASE_URL_BYTES - 14));
        assert!(normalize_base_url(&url_at).is_ok());
        assert!(normalize_base_url(&format!("{url_at}a")).is_err());
        assert!(normalize_base_url("https://u:p@e.com").is_err());
        assert!(normalize_base_url("https://e.com/?q=1").is_err());
    }
}
