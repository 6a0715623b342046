//! Reasoning effort (per-provider allow-lists, plus the numeric scale with per-model
//! bounds), OpenAI text verbosity, service tier and web-search context
//! size.

use std::fmt;

use codersdk::{ChatModelCallConfig, ChatModelReasoningEffortConfig};

use crate::catalog::Provider;

/// A step on the global reasoning-effort scale, ordered
/// `none < minimal < low < medium < high < xhigh < max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ReasoningEffort {
    /// `none`.
    None,
    /// `minimal`.
    Minimal,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `xhigh`.
    XHigh,
    /// `max`.
    Max,
}

impl ReasoningEffort {
    /// The whole scale, lowest first.
    pub const ALL: [ReasoningEffort; 7] = [
        ReasoningEffort::None,
        ReasoningEffort::Minimal,
        ReasoningEffort::Low,
        ReasoningEffort::Medium,
        ReasoningEffort::High,
        ReasoningEffort::XHigh,
        ReasoningEffort::Max,
    ];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::None => "none",
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
            ReasoningEffort::XHigh => "xhigh",
            ReasoningEffort::Max => "max",
        }
    }

    /// Reads an exact scale value: no trimming, no case folding (`" HIGH "` is not one).
    pub fn parse_exact(value: &str) -> Option<ReasoningEffort> {
        ReasoningEffort::ALL
            .into_iter()
            .find(|e| e.as_str() == value)
    }
}

impl fmt::Display for ReasoningEffort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const OPENAI_EFFORTS: &[&str] = &["minimal", "low", "medium", "high", "xhigh"];
const ANTHROPIC_EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];
const OPENROUTER_EFFORTS: &[&str] = &["low", "medium", "high"];
const VERCEL_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

/// The reasoning efforts a provider accepts from a chat (Era B column);
/// empty for providers that take none (Azure, Bedrock, Google, OpenAI Compatible) and for
/// unknown names.
pub fn allowed_reasoning_efforts(provider: &str) -> &'static [&'static str] {
    match Provider::parse(provider) {
        Some(p) => efforts_of(p),
        None => &[],
    }
}

fn efforts_of(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::OpenAi => OPENAI_EFFORTS,
        Provider::Anthropic => ANTHROPIC_EFFORTS,
        Provider::OpenRouter => OPENROUTER_EFFORTS,
        Provider::Vercel => VERCEL_EFFORTS,
        _ => &[],
    }
}

/// Trims, lowercases and looks `value` up in `allowed`, returning the canonical spelling.
pub(crate) fn pick(value: Option<&str>, allowed: &[&'static str]) -> Option<&'static str> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    let lower = value.to_lowercase();
    allowed.iter().copied().find(|a| *a == lower)
}

pub(crate) fn openai_effort(value: Option<&str>) -> Option<&'static str> {
    pick(value, OPENAI_EFFORTS)
}

pub(crate) fn anthropic_effort(value: Option<&str>) -> Option<&'static str> {
    pick(value, ANTHROPIC_EFFORTS)
}

pub(crate) fn openrouter_effort(value: Option<&str>) -> Option<&'static str> {
    pick(value, OPENROUTER_EFFORTS)
}

pub(crate) fn vercel_effort(value: Option<&str>) -> Option<&'static str> {
    pick(value, VERCEL_EFFORTS)
}

/// Normalizes a chat's reasoning effort for a provider: `None` or blank
/// gives `None`; otherwise the value, trimmed and lowercased, must be one of
/// [`allowed_reasoning_efforts`] and is returned in its canonical spelling.
///
/// ```
/// use chatprovider::reasoning_effort_from_chat;
/// assert_eq!(reasoning_effort_from_chat("openai", Some(" HIGH ")).as_deref(), Some("high"));
/// assert_eq!(reasoning_effort_from_chat("bedrock", Some("high")), None);
/// ```
pub fn reasoning_effort_from_chat(provider: &str, value: Option<&str>) -> Option<String> {
    pick(value, allowed_reasoning_efforts(provider)).map(str::to_owned)
}

/// OpenAI text verbosity: `low`, `medium` or `high` (trimmed, any case); else `None`.
pub fn openai_text_verbosity(value: Option<&str>) -> Option<&'static str> {
    pick(value, &["low", "medium", "high"])
}

/// OpenAI service tier: `auto`, `flex`, `priority`, `default` or `scale` (trimmed, any
/// case); else `None`.
pub fn openai_service_tier(value: Option<&str>) -> Option<&'static str> {
    pick(value, &["auto", "flex", "priority", "default", "scale"])
}

/// OpenAI web-search context size: `low`, `medium` or `high` (trimmed, any case); else
/// `None`.
pub fn openai_search_context_size(value: Option<&str>) -> Option<&'static str> {
    pick(value, &["low", "medium", "high"])
}

/// Applies a model's reasoning-effort bounds to a requested effort (Era C).
///
/// No bounds gives `None`. The requested value is used when it is an exact scale value
/// ([`ReasoningEffort::parse_exact`]), else the bounds' default; if neither is usable the
/// result is `None`. A `max` that is set (non-blank) but not a scale value gives `None`;
/// a value above `max` becomes `max`.
///
/// ```
/// use chatprovider::{resolve_reasoning_effort, ReasoningEffort};
/// use codersdk::ChatModelReasoningEffortConfig;
/// let bounds = ChatModelReasoningEffortConfig {
///     default: Some("medium".into()),
///     max: Some("high".into()),
/// };
/// assert_eq!(resolve_reasoning_effort(None, Some(&bounds)), Some(ReasoningEffort::Medium));
/// assert_eq!(resolve_reasoning_effort(Some("max"), Some(&bounds)), Some(ReasoningEffort::High));
/// ```
pub fn resolve_reasoning_effort(
    requested: Option<&str>,
    bounds: Option<&ChatModelReasoningEffortConfig>,
) -> Option<ReasoningEffort> {
    let bounds = bounds?;
    let value = requested
        .and_then(ReasoningEffort::parse_exact)
        .or_else(|| {
            bounds
                .default
                .as_deref()
                .and_then(ReasoningEffort::parse_exact)
        })?;
    match bounds.max.as_deref().filter(|m| !m.trim().is_empty()) {
        None => Some(value),
        Some(max) => ReasoningEffort::parse_exact(max).map(|max| value.min(max)),
    }
}

/// The effort string a call should ask for, before each provider's allow-list is applied:
/// with reasoning bounds in the model config, [`resolve_reasoning_effort`]; without, the
/// requested value as given (blank is `None`).
pub fn requested_reasoning_effort(
    requested: Option<&str>,
    config: Option<&ChatModelCallConfig>,
) -> Option<String> {
    match config.and_then(|c| c.reasoning_effort.as_ref()) {
        Some(bounds) => {
            resolve_reasoning_effort(requested, Some(bounds)).map(|e| e.as_str().to_owned())
        }
        None => requested
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    }
}

/// [`reasoning_effort_from_chat`] of [`requested_reasoning_effort`]: the effort a chat
/// runs with on `provider`, after the model's bounds and the provider's allow-list.
pub fn effective_reasoning_effort(
    provider: &str,
    requested: Option<&str>,
    config: Option<&ChatModelCallConfig>,
) -> Option<String> {
    reasoning_effort_from_chat(
        provider,
        requested_reasoning_effort(requested, config).as_deref(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn era_b_vectors() {
        let table: [(&str, Option<&str>, Option<&str>); 12] = [
            ("openai", Some(" HIGH "), Some("high")),
            ("openai", Some("xhigh"), Some("xhigh")),
            ("anthropic", Some("max"), Some("max")),
            ("anthropic", Some("xhigh"), Some("xhigh")),
            ("openrouter", Some("medium"), Some("medium")),
            ("vercel", Some("xhigh"), Some("xhigh")),
            ("openai", Some("unknown"), None),
            ("bedrock", Some("high"), None),
            ("openai", None, None),
            ("openai", Some("   "), None),
            (" OpenAI ", Some("Minimal"), Some("minimal")),
            ("acme", Some("high"), None),
        ];
        for (p, v, want) in table {
            assert_eq!(
                reasoning_effort_from_chat(p, v).as_deref(),
                want,
                "{p} {v:?}"
            );
        }
    }

    #[test]
    fn era_b_allow_lists_in_full() {
        let scale = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];
        let table: [(&str, &[&str]); 9] = [
            ("openai", &["minimal", "low", "medium", "high", "xhigh"]),
            ("anthropic", &["low", "medium", "high", "xhigh", "max"]),
            ("openrouter", &["low", "medium", "high"]),
            (
                "vercel",
                &["none", "minimal", "low", "medium", "high", "xhigh"],
            ),
            ("azure", &[]),
            ("bedrock", &[]),
            ("google", &[]),
            ("openai-compat", &[]),
            ("nope", &[]),
        ];
        for (p, allowed) in table {
            assert_eq!(allowed_reasoning_efforts(p), allowed, "{p}");
            for v in scale {
                let want = allowed.contains(&v).then_some(v);
                assert_eq!(
                    reasoning_effort_from_chat(p, Some(v)).as_deref(),
                    want,
                    "{p} {v}"
                );
                let upper = v.to_uppercase();
                assert_eq!(reasoning_effort_from_chat(p, Some(&upper)).as_deref(), want);
            }
        }
    }

    #[test]
    fn verbosity_tier_context_size() {
        for (v, want) in [
            (Some(" LOW "), Some("low")),
            (Some("medium"), Some("medium")),
            (Some("High"), Some("high")),
            (Some("max"), None),
            (Some(""), None),
            (None, None),
        ] {
            assert_eq!(openai_text_verbosity(v), want, "{v:?}");
            assert_eq!(openai_search_context_size(v), want, "{v:?}");
        }
        for (v, want) in [
            (Some("auto"), Some("auto")),
            (Some(" Flex"), Some("flex")),
            (Some("PRIORITY"), Some("priority")),
            (Some("default"), Some("default")),
            (Some("scale"), Some("scale")),
            (Some("turbo"), None),
            (None, None),
        ] {
            assert_eq!(openai_service_tier(v), want, "{v:?}");
        }
    }

    fn bounds(default: Option<&str>, max: Option<&str>) -> ChatModelReasoningEffortConfig {
        ChatModelReasoningEffortConfig {
            default: default.map(str::to_owned),
            max: max.map(str::to_owned),
        }
    }

    #[test]
    fn era_c_scale_vectors() {
        use ReasoningEffort as E;
        type Case = (
            Option<&'static str>,
            Option<ChatModelReasoningEffortConfig>,
            Option<ReasoningEffort>,
        );
        let table: Vec<Case> = vec![
            (Some("high"), None, None),
            (
                None,
                Some(bounds(Some("medium"), Some("high"))),
                Some(E::Medium),
            ),
            (
                Some("high"),
                Some(bounds(Some("medium"), Some("high"))),
                Some(E::High),
            ),
            (
                Some("high"),
                Some(bounds(Some("medium"), None)),
                Some(E::High),
            ),
            (
                Some("xhigh"),
                Some(bounds(Some("low"), Some("medium"))),
                Some(E::Medium),
            ),
            (
                None,
                Some(bounds(Some("xhigh"), Some("medium"))),
                Some(E::Medium),
            ),
            (
                Some(" HIGH "),
                Some(bounds(Some("low"), None)),
                Some(E::Low),
            ),
            (
                Some("high"),
                Some(bounds(Some("low"), Some(" HIGH "))),
                None,
            ),
            (Some("high"), Some(bounds(None, None)), Some(E::High)),
            (None, Some(bounds(None, None)), None),
            (None, Some(bounds(Some(" medium"), None)), None),
            (
                Some("none"),
                Some(bounds(Some("high"), Some("max"))),
                Some(E::None),
            ),
            (Some("max"), Some(bounds(None, Some("max"))), Some(E::Max)),
            (Some("max"), Some(bounds(None, Some("  "))), Some(E::Max)),
        ];
        for (requested, config, want) in table {
            assert_eq!(
                resolve_reasoning_effort(requested, config.as_ref()),
                want,
                "{requested:?} {config:?}"
            );
        }
        let ordered: Vec<&str> = ReasoningEffort::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            ordered,
            ["none", "minimal", "low", "medium", "high", "xhigh", "max"]
        );
        assert!(ReasoningEffort::XHigh < ReasoningEffort::Max);
        assert_eq!(ReasoningEffort::XHigh.to_string(), "xhigh");
    }

    #[test]
    fn composition() {
        let with_bounds = ChatModelCallConfig {
            reasoning_effort: Some(bounds(Some("low"), Some("high"))),
            ..Default::default()
        };
        assert_eq!(
            effective_reasoning_effort("openai", Some("xhigh"), Some(&with_bounds)).as_deref(),
            Some("high")
        );
        assert_eq!(
            effective_reasoning_effort("openrouter", None, Some(&with_bounds)).as_deref(),
            Some("low")
        );
        // Without bounds the chat's value goes straight to the allow-list.
        assert_eq!(
            effective_reasoning_effort("anthropic", Some(" MAX "), None).as_deref(),
            Some("max")
        );
        assert_eq!(
            effective_reasoning_effort(
                "openai",
                Some("max"),
                Some(&ChatModelCallConfig::default())
            ),
            None
        );
        assert_eq!(requested_reasoning_effort(Some("  "), None), None);
    }
}
