//! [`ProviderId`]: the LLM providers chatd can talk to, one vocabulary for every crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of the eight LLM providers chatd knows.
///
/// The wire form is the lowercase id: `anthropic`, `azure`, `bedrock`, `google`, `openai`,
/// `openai-compat`, `openrouter`, `vercel`. Wire fields that carry a provider
/// (`ChatProviderConfig::provider`, `ChatModelConfig::provider`, …) stay strings, so a newer
/// server's provider still reads; this type is what those strings are checked and matched
/// against. New providers may be added, so match with a wildcard arm.
///
/// # Reading a provider name
///
/// There are two ways, for two kinds of input:
///
/// - [`ProviderId::parse`] (also [`FromStr`] and serde) reads an **id**, as administrators
///   send it in requests and as it is stored: surrounding whitespace is trimmed and ASCII
///   case is ignored (`" OpenAI "` is `openai`), but nothing else is accepted. A near-miss
///   such as `azure-openai` or `gemini` is refused, so a typo in a provider configuration is
///   a 400 naming the valid ids rather than a silent guess, and stored rows only ever hold
///   the canonical ids.
/// - [`ProviderId::parse_lenient`] reads a **name** seen in free text (an SDK's provider
///   label, an upstream error message): the ids as above, plus the spellings
///   [`PROVIDER_NAME_ALIASES`] lists — `azure openai`, `azure-openai` for `azure`, and
///   `openai compat`, `openai compatible`, `openai_compat` for `openai-compat` (also ASCII
///   case-insensitive). `chaterror` uses it to attribute an error to a provider.
///
/// Before this type existed, codersdk's validation and chatprovider's catalog each had a
/// strict copy of the first rule (they agreed), and chaterror had its own lenient copy of
/// the second (which also kept unknown names, lowercased, so a custom provider still shows
/// in an error; `chaterror::normalize_provider` still does that on top of
/// [`ProviderId::parse_lenient`]). One difference went away: chaterror lowercased with
/// Unicode rules, which could turn a non-ASCII look-alike letter (the Kelvin sign `K`)
/// into an ASCII one; ids are now compared with ASCII case folding only, and such a name is
/// kept as an unknown provider.
///
/// ```
/// use codersdk::ProviderId;
///
/// assert_eq!(ProviderId::parse(" OpenAI "), Some(ProviderId::OpenAi));
/// assert_eq!(ProviderId::parse("azure-openai"), None);
/// assert_eq!(ProviderId::parse_lenient("Azure OpenAI"), Some(ProviderId::Azure));
/// assert_eq!(ProviderId::OpenAiCompat.as_str(), "openai-compat");
/// assert_eq!(ProviderId::Bedrock.display_name(), "AWS Bedrock");
/// assert_eq!(serde_json::to_string(&ProviderId::Vercel)?, r#""vercel""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProviderId {
    /// Anthropic (`anthropic`).
    Anthropic,
    /// Azure OpenAI (`azure`); needs a base URL.
    Azure,
    /// AWS Bedrock (`bedrock`); may run on the server's ambient AWS credentials.
    Bedrock,
    /// Google Gemini (`google`).
    Google,
    /// OpenAI (`openai`).
    OpenAi,
    /// Any OpenAI-compatible endpoint (`openai-compat`).
    OpenAiCompat,
    /// OpenRouter (`openrouter`).
    OpenRouter,
    /// Vercel AI Gateway (`vercel`).
    Vercel,
}

/// Spellings of provider names that [`ProviderId::parse_lenient`] accepts besides the ids,
/// compared ASCII case-insensitively after trimming. They are the names SDKs and upstream
/// error texts use for Azure OpenAI and for OpenAI-compatible endpoints.
pub const PROVIDER_NAME_ALIASES: &[(&str, ProviderId)] = &[
    ("azure openai", ProviderId::Azure),
    ("azure-openai", ProviderId::Azure),
    ("openai compat", ProviderId::OpenAiCompat),
    ("openai compatible", ProviderId::OpenAiCompat),
    ("openai_compat", ProviderId::OpenAiCompat),
];

/// Provider ids this version knows, in catalog order: the ids of
/// [`ProviderId::ALL`].
pub const CHAT_PROVIDER_IDS: &[&str] = &ProviderId::ids();

impl ProviderId {
    /// Every provider, in catalog order (alphabetical by id).
    pub const ALL: [ProviderId; 8] = [
        ProviderId::Anthropic,
        ProviderId::Azure,
        ProviderId::Bedrock,
        ProviderId::Google,
        ProviderId::OpenAi,
        ProviderId::OpenAiCompat,
        ProviderId::OpenRouter,
        ProviderId::Vercel,
    ];

    /// The wire id (`openai`, `openai-compat`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderId::Anthropic => "anthropic",
            ProviderId::Azure => "azure",
            ProviderId::Bedrock => "bedrock",
            ProviderId::Google => "google",
            ProviderId::OpenAi => "openai",
            ProviderId::OpenAiCompat => "openai-compat",
            ProviderId::OpenRouter => "openrouter",
            ProviderId::Vercel => "vercel",
        }
    }

    /// The ids of [`ProviderId::ALL`], computed at compile time for [`CHAT_PROVIDER_IDS`].
    const fn ids() -> [&'static str; 8] {
        let mut out = [""; 8];
        let mut i = 0;
        while i < out.len() {
            #[allow(clippy::indexing_slicing)] // `i` runs over the array's own length.
            {
                out[i] = ProviderId::ALL[i].as_str();
            }
            i += 1;
        }
        out
    }

    /// Reads a provider id: trimmed, ASCII case-insensitive, otherwise exact. Aliases are
    /// refused (see the type's docs for why); `None` for anything else.
    pub fn parse(name: &str) -> Option<ProviderId> {
        let name = name.trim();
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }

    /// Reads a provider name as free text spells it: an id as [`ProviderId::parse`] reads
    /// it, or one of the [`PROVIDER_NAME_ALIASES`].
    pub fn parse_lenient(name: &str) -> Option<ProviderId> {
        ProviderId::parse(name).or_else(|| {
            let name = name.trim();
            PROVIDER_NAME_ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                .map(|(_, id)| *id)
        })
    }

    /// The name people see ("Azure OpenAI", "AWS Bedrock", …): the default display name of
    /// a provider configuration, and the subject of provider error messages.
    pub const fn display_name(self) -> &'static str {
        match self {
            ProviderId::Anthropic => "Anthropic",
            ProviderId::Azure => "Azure OpenAI",
            ProviderId::Bedrock => "AWS Bedrock",
            ProviderId::Google => "Google",
            ProviderId::OpenAi => "OpenAI",
            ProviderId::OpenAiCompat => "OpenAI Compatible",
            ProviderId::OpenRouter => "OpenRouter",
            ProviderId::Vercel => "Vercel AI Gateway",
        }
    }

    /// Whether a deployment can preset this provider from its environment (a provider
    /// listed with source `env_preset`, from `OPENAI_API_KEY` or `ANTHROPIC_API_KEY`). True
    /// only for OpenAI and Anthropic.
    pub const fn is_env_preset(self) -> bool {
        matches!(self, ProviderId::OpenAi | ProviderId::Anthropic)
    }

    /// Whether the provider may run without a stored key, on credentials the server already
    /// has (AWS role, instance profile, environment), which waives "central mode needs a
    /// key" in the key policy. True only for Bedrock.
    pub const fn allows_ambient_credentials(self) -> bool {
        matches!(self, ProviderId::Bedrock)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ProviderId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Longest piece of an unknown provider name repeated in [`UnknownProviderId`]'s message,
/// in characters; the rest is cut and marked with `…`.
pub const MAX_ECHOED_PROVIDER_NAME_CHARS: usize = 64;

/// A name [`ProviderId::parse`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported model provider {}", echo(.0))]
pub struct UnknownProviderId(String);

impl UnknownProviderId {
    /// The name as given.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Quotes a name for a message: escaped and cut to [`MAX_ECHOED_PROVIDER_NAME_CHARS`].
fn echo(name: &str) -> String {
    let mut cut: String = name.chars().take(MAX_ECHOED_PROVIDER_NAME_CHARS).collect();
    if cut.len() < name.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

impl FromStr for ProviderId {
    type Err = UnknownProviderId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::parse(s).ok_or_else(|| UnknownProviderId(s.to_owned()))
    }
}

impl Serialize for ProviderId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProviderId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        ProviderId::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown provider {}; expected one of: {}",
                echo(&name),
                CHAT_PROVIDER_IDS.join(", ")
            ))
        })
    }
}

impl ts_rs::TS for ProviderId {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;
    const IS_ENUM: bool = true;

    fn docs() -> Option<String> {
        Some(
            "/**\n * ProviderId: the id of an LLM provider. Wire fields that carry one are \
             plain strings, so a newer server's provider still reads.\n */\n"
                .to_owned(),
        )
    }
    fn name(_: &ts_rs::Config) -> String {
        "ProviderId".to_owned()
    }
    fn inline(_: &ts_rs::Config) -> String {
        ProviderId::ALL
            .iter()
            .map(|p| format!("\"{}\"", p.as_str()))
            .collect::<Vec<_>>()
            .join(" | ")
    }
    fn decl(cfg: &ts_rs::Config) -> String {
        format!("type ProviderId = {};", <Self as ts_rs::TS>::inline(cfg))
    }
    fn decl_concrete(cfg: &ts_rs::Config) -> String {
        <Self as ts_rs::TS>::decl(cfg)
    }
    fn output_path() -> Option<std::path::PathBuf> {
        Some(std::path::PathBuf::from("ProviderId.ts"))
    }
}

impl schemars::JsonSchema for ProviderId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProviderId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": CHAT_PROVIDER_IDS })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_flags() {
        // (id, display name, env preset, ambient credentials)
        let table = [
            ("anthropic", "Anthropic", true, false),
            ("azure", "Azure OpenAI", false, false),
            ("bedrock", "AWS Bedrock", false, true),
            ("google", "Google", false, false),
            ("openai", "OpenAI", true, false),
            ("openai-compat", "OpenAI Compatible", false, false),
            ("openrouter", "OpenRouter", false, false),
            ("vercel", "Vercel AI Gateway", false, false),
        ];
        assert_eq!(ProviderId::ALL.len(), table.len());
        assert_eq!(
            CHAT_PROVIDER_IDS,
            table.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        for (p, (id, name, preset, ambient)) in ProviderId::ALL.into_iter().zip(table) {
            assert_eq!(p.as_str(), id);
            assert_eq!(p.to_string(), id);
            assert_eq!(p.as_ref(), id);
            assert_eq!(p.display_name(), name);
            assert_eq!(p.is_env_preset(), preset, "{id}");
            assert_eq!(p.allows_ambient_credentials(), ambient, "{id}");
            assert_eq!(ProviderId::parse(id), Some(p));
            assert_eq!(ProviderId::parse_lenient(id), Some(p));
            assert_eq!(id.parse::<ProviderId>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{id}\""));
            assert_eq!(serde_json::from_str::<ProviderId>(&json).unwrap(), p);
        }
    }

    #[test]
    fn parse_is_exact_after_trim_and_ascii_case() {
        let cases: &[(&str, Option<ProviderId>)] = &[
            ("openai", Some(ProviderId::OpenAi)),
            (" OpenAI ", Some(ProviderId::OpenAi)),
            ("\tBEDROCK\n", Some(ProviderId::Bedrock)),
            ("OpenAI-Compat", Some(ProviderId::OpenAiCompat)),
            ("OpenRouter", Some(ProviderId::OpenRouter)),
            // Aliases are names, not ids.
            ("openai_compat", None),
            ("openai compatible", None),
            ("openai compat", None),
            ("azure-openai", None),
            ("azure openai", None),
            // Unknown ids.
            ("", None),
            ("   ", None),
            ("open ai", None),
            ("gemini", None),
            ("claude", None),
            ("aws", None),
            ("openai-compatible", None),
            ("ｏｐｅｎａｉ", None),
            ("BEDROC\u{212A}", None),
        ];
        for (input, want) in cases {
            assert_eq!(ProviderId::parse(input), *want, "{input:?}");
        }
    }

    #[test]
    fn every_alias_is_a_lenient_name_only() {
        let cases: &[(&str, ProviderId)] = &[
            ("azure openai", ProviderId::Azure),
            ("Azure OpenAI", ProviderId::Azure),
            ("azure-openai", ProviderId::Azure),
            (" AZURE-OPENAI ", ProviderId::Azure),
            ("openai compat", ProviderId::OpenAiCompat),
            ("openai compatible", ProviderId::OpenAiCompat),
            ("OpenAI Compatible", ProviderId::OpenAiCompat),
            ("openai_compat", ProviderId::OpenAiCompat),
            ("OPENAI_COMPAT", ProviderId::OpenAiCompat),
        ];
        for (input, want) in cases {
            assert_eq!(ProviderId::parse_lenient(input), Some(*want), "{input:?}");
            assert_eq!(ProviderId::parse(input), None, "{input:?}");
        }
        for (alias, id) in PROVIDER_NAME_ALIASES {
            assert_eq!(ProviderId::parse_lenient(alias), Some(*id), "{alias}");
        }
        for unknown in [
            "",
            "azure  openai",
            "gemini",
            "mycustomprovider",
            "openai-compatible",
        ] {
            assert_eq!(ProviderId::parse_lenient(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn unknown_ids_are_errors_that_quote_the_name_boundedly() {
        let err = "acme".parse::<ProviderId>().unwrap_err();
        assert_eq!(err.to_string(), "unsupported model provider \"acme\"");
        assert_eq!(err.name(), "acme");
        let long = "x".repeat(1000);
        let err = long.parse::<ProviderId>().unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
        assert!(err.ends_with("…\""), "{err}");
        let err = "\"a\nb\"".parse::<ProviderId>().unwrap_err().to_string();
        assert_eq!(err, r#"unsupported model provider "\"a\nb\"""#);

        let p: ProviderId = serde_json::from_str("\" Vercel \"").unwrap();
        assert_eq!(p, ProviderId::Vercel);
        let err = serde_json::from_str::<ProviderId>("\"azure-openai\"").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown provider \"azure-openai\"; expected one of: anthropic, azure, bedrock, \
                 google, openai, openai-compat, openrouter, vercel"
            ),
            "{err}"
        );
        assert!(serde_json::from_str::<ProviderId>("42").is_err());
    }

    #[test]
    fn typescript_is_a_string_union() {
        use ts_rs::TS;
        let cfg = ts_rs::Config::new();
        assert_eq!(
            ProviderId::decl(&cfg),
            "type ProviderId = \"anthropic\" | \"azure\" | \"bedrock\" | \"google\" | \
             \"openai\" | \"openai-compat\" | \"openrouter\" | \"vercel\";"
        );
    }
}
