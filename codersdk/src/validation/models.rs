//! Model configurations: provider, model id, context window, compaction threshold and
//! call options with prices.

use super::providers::check_provider_id;
use super::{check_display_name, Problems};
use crate::{
    ChatModelCallConfig, CreateChatModelConfigRequest, ProviderId, Response,
    UpdateChatModelConfigRequest, DEFAULT_COMPRESSION_THRESHOLD,
};

/// Longest provider model identifier (`model`), in bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// Highest compaction threshold, in percent of the context limit; the lowest is 0.
pub const MAX_COMPRESSION_THRESHOLD_PERCENT: i32 = 100;

/// Lowest sampling temperature.
pub const MIN_MODEL_TEMPERATURE: f64 = 0.0;

/// Highest sampling temperature.
pub const MAX_MODEL_TEMPERATURE: f64 = 2.0;

/// Highest nucleus-sampling `top_p`; the lowest is 0. It is a probability mass.
pub const MAX_MODEL_TOP_P: f64 = 1.0;

/// Bound of `presence_penalty` and `frequency_penalty`: both lie in `[-2, 2]`, the range
/// OpenAI-style APIs accept.
pub const MAX_MODEL_PENALTY: f64 = 2.0;

fn check_model_name(raw: &str, p: &mut Problems) -> String {
    let model = raw.trim();
    if model.is_empty() {
        p.push(
            "model",
            "model is required: the provider's model identifier, e.g. gpt-4o.",
        );
    } else if model.len() > MAX_MODEL_NAME_BYTES {
        p.push(
            "model",
            format!("model may be at most {MAX_MODEL_NAME_BYTES} bytes."),
        );
    } else if model.chars().any(|c| c.is_control() || c.is_whitespace()) {
        p.push(
            "model",
            "model must not contain spaces or control characters.",
        );
    }
    model.to_owned()
}

fn check_context_limit(v: i64, p: &mut Problems) {
    if v <= 0 {
        p.push(
            "context_limit",
            "context_limit must be a positive number of tokens.",
        );
    }
}

fn check_threshold(v: i32, field: &str, p: &mut Problems) {
    if !(0..=MAX_COMPRESSION_THRESHOLD_PERCENT).contains(&v) {
        p.push(
            field,
            format!("{field} must be a percentage from 0 to {MAX_COMPRESSION_THRESHOLD_PERCENT}."),
        );
    }
}

/// Validates a compaction threshold in percent (0–[`MAX_COMPRESSION_THRESHOLD_PERCENT`]),
/// e.g. `threshold_percent` of the per-user thresholds, reported under `field`.
pub fn validate_compression_threshold(value: i32, field: &str) -> Result<i32, Response> {
    let mut p = Problems::default();
    check_threshold(value, field, &mut p);
    p.finish("Invalid compression threshold.")?;
    Ok(value)
}

fn check_range(value: Option<f64>, field: &str, min: f64, max: f64, p: &mut Problems) {
    if let Some(v) = value {
        if !(v.is_finite() && (min..=max).contains(&v)) {
            p.push(
                format!("model_config.{field}"),
                format!("{field} must be from {min} to {max}."),
            );
        }
    }
}

fn check_call_config(cfg: &ChatModelCallConfig, p: &mut Problems) {
    if cfg.max_output_tokens.is_some_and(|v| v <= 0) {
        p.push(
            "model_config.max_output_tokens",
            "max_output_tokens must be a positive number of tokens.",
        );
    }
    check_range(
        cfg.temperature,
        "temperature",
        MIN_MODEL_TEMPERATURE,
        MAX_MODEL_TEMPERATURE,
        p,
    );
    check_range(cfg.top_p, "top_p", 0.0, MAX_MODEL_TOP_P, p);
    if cfg.top_k.is_some_and(|v| v <= 0) {
        p.push("model_config.top_k", "top_k must be a positive number.");
    }
    check_range(
        cfg.presence_penalty,
        "presence_penalty",
        -MAX_MODEL_PENALTY,
        MAX_MODEL_PENALTY,
        p,
    );
    check_range(
        cfg.frequency_penalty,
        "frequency_penalty",
        -MAX_MODEL_PENALTY,
        MAX_MODEL_PENALTY,
        p,
    );
    if let Some(cost) = &cfg.cost {
        for (name, price) in cost.prices() {
            if price.is_some_and(|v| v.is_sign_negative() && !v.is_zero()) {
                p.push(
                    format!("model_config.cost.{name}"),
                    format!("{name} must not be negative (USD per million tokens)."),
                );
            }
        }
    }
}

/// Validates the call options and prices of a model config (`model_config`):
/// positive `max_output_tokens` and `top_k`, `temperature` in
/// [[`MIN_MODEL_TEMPERATURE`], [`MAX_MODEL_TEMPERATURE`]], `top_p` in [0,
/// [`MAX_MODEL_TOP_P`]], penalties in ±[`MAX_MODEL_PENALTY`], and non-negative prices.
/// Provider-specific options are passed through unchecked.
pub fn validate_model_call_config(cfg: &ChatModelCallConfig) -> Result<(), Response> {
    let mut p = Problems::default();
    check_call_config(cfg, &mut p);
    p.finish("Invalid model configuration.")
}

/// A [`CreateChatModelConfigRequest`] after validation, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedModelConfig {
    /// Normalized provider id (whether it is configured is the server's check).
    pub provider: String,
    /// Trimmed model id.
    pub model: String,
    /// Trimmed display name; the model id when none was given.
    pub display_name: String,
    /// Default true.
    pub enabled: bool,
    /// Default false (the server makes the first model the default anyway).
    pub is_default: bool,
    /// Context window in tokens.
    pub context_limit: i64,
    /// Default [`DEFAULT_COMPRESSION_THRESHOLD`].
    pub compression_threshold: i32,
    /// Call options and pricing.
    pub model_config: Option<ChatModelCallConfig>,
}

/// Validates `POST /chats/model-configs`: known provider, `model` required,
/// `context_limit` required and > 0, `compression_threshold` 0–100, and the call options
/// of [`validate_model_call_config`].
pub fn validate_create_model_config(
    req: &CreateChatModelConfigRequest,
) -> Result<ValidatedModelConfig, Response> {
    let mut p = Problems::default();
    let provider = check_provider_id(&req.provider, &mut p);
    let model = check_model_name(&req.model, &mut p);
    let display_name = check_display_name(req.display_name.as_deref().unwrap_or_default(), &mut p);
    match req.context_limit {
        Some(v) => check_context_limit(v, &mut p),
        None => p.push(
            "context_limit",
            "context_limit is required: the model's context window in tokens.",
        ),
    }
    let threshold = req
        .compression_threshold
        .unwrap_or(DEFAULT_COMPRESSION_THRESHOLD);
    check_threshold(threshold, "compression_threshold", &mut p);
    if let Some(cfg) = &req.model_config {
        check_call_config(cfg, &mut p);
    }
    p.finish("Invalid model configuration.")?;
    Ok(ValidatedModelConfig {
        provider: provider
            .map(ProviderId::as_str)
            .unwrap_or_default()
            .to_owned(),
        display_name: if display_name.is_empty() {
            model.clone()
        } else {
            display_name
        },
        model,
        enabled: req.enabled.unwrap_or(true),
        is_default: req.is_default.unwrap_or(false),
        context_limit: req.context_limit.unwrap_or_default(),
        compression_threshold: threshold,
        model_config: req.model_config.clone(),
    })
}

/// Validates `PATCH /chats/model-configs/{modelConfig}` and returns it normalized:
/// blank strings become `None` ("keep"), other strings are trimmed, the provider id is
/// normalized, and the numeric rules of [`validate_create_model_config`] apply to every
/// field that is present.
pub fn validate_update_model_config(
    req: &UpdateChatModelConfigRequest,
) -> Result<UpdateChatModelConfigRequest, Response> {
    let mut p = Problems::default();
    let non_blank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let provider = non_blank(&req.provider)
        .and_then(|raw| check_provider_id(&raw, &mut p))
        .map(|id| id.as_str().to_owned());
    let model = non_blank(&req.model).map(|m| check_model_name(&m, &mut p));
    let display_name = non_blank(&req.display_name).map(|n| check_display_name(&n, &mut p));
    if let Some(v) = req.context_limit {
        check_context_limit(v, &mut p);
    }
    if let Some(v) = req.compression_threshold {
        check_threshold(v, "compression_threshold", &mut p);
    }
    if let Some(cfg) = &req.model_config {
        check_call_config(cfg, &mut p);
    }
    p.finish("Invalid model configuration.")?;
    Ok(UpdateChatModelConfigRequest {
        provider,
        model,
        display_name,
        enabled: req.enabled,
        is_default: req.is_default,
        context_limit: req.context_limit,
        compression_threshold: req.compression_threshold,
        model_config: req.model_config.clone(),
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::validation::test_support::*;
    use crate::*;
    use proptest::prelude::*;

    fn model_req() -> CreateChatModelConfigRequest {
        CreateChatModelConfigRequest {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            context_limit: Some(128_000),
            ..Default::default()
        }
    }

    fn with_call(cfg: ChatModelCallConfig) -> CreateChatModelConfigRequest {
        CreateChatModelConfigRequest {
            model_config: Some(cfg),
            ..model_req()
        }
    }

    #[test]
    fn create_model_table() {
        let call = ChatModelCallConfig::default;
        let price = |v: i64| ModelCostConfig {
            output_price_per_million_tokens: Some(Decimal::from(v)),
            ..Default::default()
        };
        let cases: Vec<(CreateChatModelConfigRequest, Vec<&str>)> = vec![
            (model_req(), vec![]),
            (
                CreateChatModelConfigRequest {
                    model: " ".into(),
                    ..model_req()
                },
                vec!["model"],
            ),
            (
                CreateChatModelConfigRequest {
                    model: "a b".into(),
                    ..model_req()
                },
                vec!["model"],
            ),
            (
                CreateChatModelConfigRequest {
                    model: "m".repeat(MAX_MODEL_NAME_BYTES),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    model: "m".repeat(MAX_MODEL_NAME_BYTES + 1),
                    ..model_req()
                },
                vec!["model"],
            ),
            (
                CreateChatModelConfigRequest {
                    provider: "nope".into(),
                    ..model_req()
                },
                vec!["provider"],
            ),
            (
                CreateChatModelConfigRequest {
                    context_limit: None,
                    ..model_req()
                },
                vec!["context_limit"],
            ),
            (
                CreateChatModelConfigRequest {
                    context_limit: Some(0),
                    ..model_req()
                },
                vec!["context_limit"],
            ),
            (
                CreateChatModelConfigRequest {
                    context_limit: Some(1),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(0),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(100),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(101),
                    ..model_req()
                },
                vec!["compression_threshold"],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(-1),
                    ..model_req()
                },
                vec!["compression_threshold"],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(0.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(2.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(2.0001),
                    ..call()
                }),
                vec!["model_config.temperature"],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(-0.1),
                    ..call()
                }),
                vec!["model_config.temperature"],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(f64::NAN),
                    ..call()
                }),
                vec!["model_config.temperature"],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(1.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(0.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(-0.01),
                    ..call()
                }),
                vec!["model_config.top_p"],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(1.01),
                    ..call()
                }),
                vec!["model_config.top_p"],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_k: Some(1),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_k: Some(0),
                    ..call()
                }),
                vec!["model_config.top_k"],
            ),
            (
                with_call(ChatModelCallConfig {
                    max_output_tokens: Some(1),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    max_output_tokens: Some(0),
                    ..call()
                }),
                vec!["model_config.max_output_tokens"],
            ),
            (
                with_call(ChatModelCallConfig {
                    presence_penalty: Some(-2.0),
                    frequency_penalty: Some(2.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    presence_penalty: Some(-2.01),
                    frequency_penalty: Some(2.01),
                    ..call()
                }),
                vec![
                    "model_config.presence_penalty",
                    "model_config.frequency_penalty",
                ],
            ),
            (
                with_call(ChatModelCallConfig {
                    cost: Some(price(0)),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    cost: Some(price(-1)),
                    ..call()
                }),
                vec!["model_config.cost.output_price_per_million_tokens"],
            ),
        ];
        for (req, want) in cases {
            match validate_create_model_config(&req) {
                Ok(_) => assert!(want.is_empty(), "{req:?}"),
                Err(r) => assert_eq!(fields(&r), want, "{req:?}"),
            }
        }
        let v = validate_create_model_config(&CreateChatModelConfigRequest {
            provider: " OpenAI".into(),
            ..model_req()
        })
        .unwrap();
        assert_eq!(
            (v.provider.as_str(), v.display_name.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!(v.compression_threshold, DEFAULT_COMPRESSION_THRESHOLD);
        assert!(v.enabled);
    }

    #[test]
    fn update_model_normalizes_blanks() {
        let req = UpdateChatModelConfigRequest {
            provider: Some(" ".into()),
            model: Some(" gpt-5 ".into()),
            display_name: Some(String::new()),
            ..Default::default()
        };
        let v = validate_update_model_config(&req).unwrap();
        assert_eq!(
            (v.provider, v.model, v.display_name),
            (None, Some("gpt-5".into()), None)
        );
        let bad = UpdateChatModelConfigRequest {
            provider: Some("nope".into()),
            context_limit: Some(0),
            compression_threshold: Some(101),
            ..Default::default()
        };
        let r = validate_update_model_config(&bad).unwrap_err();
        assert_eq!(
            fields(&r),
            vec!["provider", "context_limit", "compression_threshold"]
        );
        assert!(validate_compression_threshold(100, "threshold_percent").is_ok());
        assert_eq!(
            fields(&validate_compression_threshold(101, "threshold_percent").unwrap_err()),
            vec!["threshold_percent"]
        );
        assert!(validate_model_call_config(&ChatModelCallConfig::default()).is_ok());
    }

    proptest! {
        #[test]
        fn model_validator_never_panics(s in any::<String>(), t in any::<String>()) {
            let _ = validate_create_model_config(&CreateChatModelConfigRequest { provider: s.clone(), model: t.clone(), ..model_req() });
        }
    }
}
