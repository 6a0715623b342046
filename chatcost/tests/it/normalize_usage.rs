//! Usage normalization against the recorded provider streams (fixtures/streams) and the
//! cost cross-check (fixtures/cost/cost-crosscheck.json).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::str::FromStr;

use chatcost::normalize::{
    self, anthropic, deepseek_chat, openai_chat, openai_compatible_chat, openai_responses, xai_chat,
};
use chatcost::{
    calculate_total_cost_micros, AnthropicCacheCreation, AnthropicUsage, AnthropicUsageAccumulator,
    CostErrorKind, DeepSeekUsage, OpenAiChatUsage, OpenAiResponsesUsage, PriceBook, XaiUsage,
};
use chatd_test_support::fixtures::read_testdata_string;
use codersdk::{ChatMessageUsage, ModelCostConfig};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

fn read(rel: &str) -> String {
    read_testdata_string(rel)
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Which rule a recorded stream needs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Xai,
    DeepSeek,
}

fn rule_for(stream: &str) -> Rule {
    if stream.starts_with("openai-chat--") || stream.starts_with("openai-compatible--groq") {
        Rule::OpenAiChat
    } else if stream.starts_with("openai-responses--") {
        Rule::OpenAiResponses
    } else if stream.starts_with("anthropic-messages--") || stream.contains("anthropic") {
        Rule::Anthropic
    } else if stream.starts_with("openai-compatible--xai") {
        Rule::Xai
    } else if stream.starts_with("openai-compatible--deepseek") {
        Rule::DeepSeek
    } else {
        panic!("no rule for {stream}")
    }
}

/// Normalizes one complete raw usage object with `rule`.
fn normalize_raw(rule: Rule, raw: &str) -> ChatMessageUsage {
    let r = match rule {
        Rule::OpenAiChat => openai_chat(&serde_json::from_str::<OpenAiChatUsage>(raw).unwrap()),
        Rule::OpenAiResponses => {
            openai_responses(&serde_json::from_str::<OpenAiResponsesUsage>(raw).unwrap())
        }
        Rule::Anthropic => anthropic(&serde_json::from_str::<AnthropicUsage>(raw).unwrap()),
        Rule::Xai => xai_chat(&serde_json::from_str::<XaiUsage>(raw).unwrap()),
        Rule::DeepSeek => deepseek_chat(&serde_json::from_str::<DeepSeekUsage>(raw).unwrap()),
    };
    r.unwrap_or_else(|e| panic!("{rule:?} {raw}: {e}"))
}

/// The SSE `data` payloads (or JSONL lines) of a recorded stream.
fn payloads(file: &str) -> Vec<Value> {
    let text = read(&format!("streams/{file}"));
    let lines: Vec<&str> = if file.ends_with(".sse") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|l| *l != "[DONE]")
            .collect()
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    };
    lines
        .into_iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
        .collect()
}

/// Usage exactly as a streaming client would see it: the last usage chunk for OpenAI-style
/// chat, `response.completed` for Responses, message_start + message_delta for Anthropic.
fn usage_from_stream(file: &str, rule: Rule) -> Option<ChatMessageUsage> {
    let events = payloads(file);
    match rule {
        Rule::Anthropic => {
            let mut acc = AnthropicUsageAccumulator::new();
            for e in &events {
                match e["type"].as_str() {
                    Some("message_start") => acc.message_start(
                        &serde_json::from_value(e["message"]["usage"].clone()).unwrap(),
                    ),
                    Some("message_delta") => {
                        acc.message_delta(&serde_json::from_value(e["usage"].clone()).unwrap())
                    }
                    _ => {}
                }
            }
            Some(acc.finish().unwrap())
        }
        Rule::OpenAiResponses => events
            .iter()
            .filter(|e| e["type"] == "response.completed")
            .filter_map(|e| e["response"].get("usage").filter(|u| u.is_object()))
            .next_back()
            .map(|u| normalize_raw(rule, &u.to_string())),
        _ => events
            .iter()
            .filter_map(|e| e.get("usage").filter(|u| u.is_object()))
            .next_back()
            .map(|u| normalize_raw(rule, &u.to_string())),
    }
}

#[test]
fn recorded_streams_normalize_like_their_final_usage() {
    let expected: Value = serde_json::from_str(&read("streams/expected-decoded.json")).unwrap();
    let streams = expected["streams"].as_object().unwrap();
    let mut checked = 0;
    for (file, want) in streams {
        let rule = rule_for(file);
        let final_usage = want
            .get("final_usage")
            .or_else(|| want.get("usage"))
            .unwrap();
        let got = usage_from_stream(file, rule);
        if final_usage.is_null() {
            assert_eq!(got, None, "{file}");
            continue;
        }
        // Streaming (accumulated events) equals non-streaming (the final usage object).
        let non_streaming = normalize_raw(rule, &final_usage.to_string());
        let got = got.unwrap();
        assert_eq!(got, non_streaming, "{file}");
        // Our computed total equals the provider's total wherever one is reported.
        if let Some(total) = final_usage.get("total_tokens").and_then(Value::as_i64) {
            assert_eq!(got.total_tokens, Some(total), "{file}");
        }
        // Every bucket is non-negative and input excludes cached tokens.
        assert!(
            got.input_tokens.unwrap() >= 0 && got.cache_read_tokens.unwrap() >= 0,
            "{file}"
        );
        checked += 1;
    }
    assert_eq!(checked, 27, "all recorded streams with usage");
}

#[test]
fn groq_x_groq_usage_equals_top_level_usage() {
    let events = payloads("openai-compatible--groq--tool-call.jsonl");
    let chunk = events
        .iter()
        .find(|e| e.get("x_groq").and_then(|x| x.get("usage")).is_some())
        .unwrap();
    let a = normalize_raw(Rule::OpenAiChat, &chunk["usage"].to_string());
    let b = normalize_raw(Rule::OpenAiChat, &chunk["x_groq"]["usage"].to_string());
    assert_eq!(a, b);
    assert_eq!(
        (a.input_tokens, a.output_tokens, a.total_tokens),
        (Some(210), Some(15), Some(225))
    );
    // Groq reports no reasoning breakdown: unknown, not zero.
    assert_eq!(a.reasoning_tokens, None);
}

#[test]
fn openai_compatible_detects_reasoning_outside_completion() {
    for (file, rule) in [
        (
            "openai-compatible--xai--reasoning-tool-call.jsonl",
            Rule::Xai,
        ),
        (
            "openai-compatible--deepseek--reasoning-tool-call.jsonl",
            Rule::DeepSeek,
        ),
        ("openai-compatible--groq--tool-call.jsonl", Rule::OpenAiChat),
        (
            "openai-chat--text--obfuscation-usage.jsonl",
            Rule::OpenAiChat,
        ),
    ] {
        let raw = payloads(file)
            .into_iter()
            .filter_map(|e| e.get("usage").filter(|u| u.is_object()).cloned())
            .next_back();
        let raw = raw.unwrap().to_string();
        let generic = openai_compatible_chat(&serde_json::from_str(&raw).unwrap()).unwrap();
        assert_eq!(generic, normalize_raw(rule, &raw), "{file}");
    }
}

#[derive(Deserialize)]
struct Crosscheck {
    cases: Vec<CrossCase>,
}

#[derive(Deserialize)]
struct CrossCase {
    stream: String,
    model: String,
    raw_provider_usage: Box<RawValue>,
    coder_normalized_usage: BTreeMap<String, i64>,
    models_dev_price_per_million: Option<BTreeMap<String, Box<RawValue>>>,
    coder_rule_exact_micros: Option<String>,
    coder_rule_micros_ceil: Option<i64>,
    coder_rule_micros_ceil_with_litellm_prices: Option<i64>,
}

fn cost_from_fixture(prices: &BTreeMap<String, Box<RawValue>>) -> ModelCostConfig {
    // Read from the JSON text, never through f64.
    let get = |k: &str| {
        prices
            .get(k)
            .map(|v| chatcost::parse_price(v.get()).unwrap())
    };
    ModelCostConfig {
        input_price_per_million_tokens: get("input"),
        output_price_per_million_tokens: get("output"),
        cache_read_price_per_million_tokens: get("cache_read"),
        cache_write_price_per_million_tokens: get("cache_write"),
    }
}

fn exact_micros(u: &ChatMessageUsage, c: &ModelCostConfig) -> Decimal {
    [
        (u.input_tokens, c.input_price_per_million_tokens),
        (u.output_tokens, c.output_price_per_million_tokens),
        (u.cache_read_tokens, c.cache_read_price_per_million_tokens),
        (
            u.cache_creation_tokens,
            c.cache_write_price_per_million_tokens,
        ),
    ]
    .into_iter()
    .map(|(t, p)| Decimal::from(t.unwrap_or(0)) * p.unwrap_or_default())
    .sum()
}

fn book_provider(rule: Rule) -> &'static str {
    match rule {
        Rule::OpenAiChat | Rule::OpenAiResponses => "openai",
        Rule::Anthropic => "anthropic",
        Rule::Xai => "xai",
        Rule::DeepSeek => "deepseek",
    }
}

#[test]
fn cost_crosscheck() {
    let doc: Crosscheck = serde_json::from_str(&read("cost/cost-crosscheck.json")).unwrap();
    assert_eq!(doc.cases.len(), 12);
    for case in &doc.cases {
        let name = &case.stream;
        let rule = rule_for(name);
        let usage = normalize_raw(rule, case.raw_provider_usage.get());

        // Same buckets as Coder's normalization, except where we deliberately differ.
        let ours = BTreeMap::from([
            ("input_tokens", usage.input_tokens),
            ("output_tokens", usage.output_tokens),
            ("reasoning_tokens", usage.reasoning_tokens),
            ("cache_read_tokens", usage.cache_read_tokens),
            ("cache_creation_tokens", usage.cache_creation_tokens),
        ]);
        for (field, want) in &case.coder_normalized_usage {
            let got = ours[field.as_str()];
            match (rule, field.as_str()) {
                // xAI: reasoning billed as output (26 + 227), see docs/cost.md.
                (Rule::Xai, "output_tokens") => assert_eq!(got, Some(253), "{name}"),
                // Buckets a provider does not report are unknown (None), not 0.
                (Rule::Anthropic, "reasoning_tokens") | (_, "cache_creation_tokens")
                    if got.is_none() =>
                {
                    assert_eq!(*want, 0, "{name} {field}")
                }
                _ => assert_eq!(got, Some(*want), "{name} {field}"),
            }
        }

        // The price book gives the same models.dev prices the fixture lists.
        let listed = case
            .models_dev_price_per_million
            .as_ref()
            .map(cost_from_fixture);
        let booked = PriceBook::embedded().lookup(book_provider(rule), &case.model);
        assert_eq!(
            booked, listed,
            "{name}: price book vs fixture for {}",
            case.model
        );

        let got = calculate_total_cost_micros(&usage, listed.as_ref());
        if rule == Rule::Xai {
            // grok-3-mini is not on models.dev: unpriced for us and for Coder.
            assert_eq!(got, None);
            assert_eq!(case.coder_rule_micros_ceil, None);
            continue;
        }
        assert_eq!(got, case.coder_rule_micros_ceil, "{name}");
        let exact = case.coder_rule_exact_micros.as_deref().unwrap();
        assert_eq!(
            exact_micros(&usage, listed.as_ref().unwrap()),
            d(exact),
            "{name}"
        );
    }
}

#[test]
fn xai_bills_reasoning_tokens() {
    let doc: Crosscheck = serde_json::from_str(&read("cost/cost-crosscheck.json")).unwrap();
    let case = doc
        .cases
        .iter()
        .find(|c| rule_for(&c.stream) == Rule::Xai)
        .unwrap();
    let raw: XaiUsage = serde_json::from_str(case.raw_provider_usage.get()).unwrap();
    let usage = xai_chat(&raw).unwrap();
    assert_eq!(
        usage,
        ChatMessageUsage {
            input_tokens: Some(1),
            output_tokens: Some(253),
            total_tokens: Some(560),
            reasoning_tokens: Some(227),
            cache_creation_tokens: None,
            cache_read_tokens: Some(306),
            context_limit: None,
        }
    );
    // grok-3-mini's published prices (the fixture's "assumed" LiteLLM registration).
    let prices = ModelCostConfig {
        input_price_per_million_tokens: Some(d("0.30")),
        output_price_per_million_tokens: Some(d("0.50")),
        cache_read_price_per_million_tokens: Some(d("0.075")),
        cache_write_price_per_million_tokens: None,
    };
    // Ours: 1 × 0.3 + 253 × 0.5 + 306 × 0.075 = 149.75 → 150.
    assert_eq!(exact_micros(&usage, &prices), d("149.75"));
    assert_eq!(
        calculate_total_cost_micros(&usage, Some(&prices)),
        Some(150)
    );
    // Coder's rule (output = completion_tokens = 26) gives 36.25 → 37.
    assert_eq!(case.coder_rule_micros_ceil_with_litellm_prices, Some(37));
    let coder = ChatMessageUsage {
        output_tokens: Some(26),
        ..usage
    };
    assert_eq!(calculate_total_cost_micros(&coder, Some(&prices)), Some(37));
    // xAI's own figure: 1,497,500 ticks of 1e-10 USD = 149.75 micros, same as ours.
    assert_eq!(raw.cost_in_usd_ticks, Some(1_497_500));
    assert_eq!(Decimal::new(raw.cost_in_usd_ticks.unwrap(), 4), d("149.75"));
}

#[test]
fn anthropic_delta_overrides_start() {
    let start = AnthropicUsage {
        input_tokens: Some(43),
        output_tokens: Some(1),
        ..Default::default()
    };
    let delta = AnthropicUsage {
        input_tokens: Some(61),
        output_tokens: Some(2),
        ..Default::default()
    };
    let mut acc = AnthropicUsageAccumulator::new();
    assert_eq!(acc.finish().unwrap(), ChatMessageUsage::default());
    acc.message_start(&start);
    acc.message_delta(&delta);
    let u = acc.finish().unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (Some(61), Some(2), Some(63))
    );
    // Null/absent fields in the delta keep message_start's values.
    let mut acc = AnthropicUsageAccumulator::new();
    let start: AnthropicUsage = serde_json::from_str(
        r#"{"input_tokens":450,"cache_creation_input_tokens":10,"cache_read_input_tokens":20,"output_tokens":1}"#,
    )
    .unwrap();
    acc.message_start(&start);
    acc.message_delta(
        &serde_json::from_str(r#"{"input_tokens":null,"output_tokens":124}"#).unwrap(),
    );
    let u = acc.finish().unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_creation_tokens,
            u.cache_read_tokens,
            u.total_tokens
        ),
        (Some(450), Some(124), Some(10), Some(20), Some(604))
    );
    assert_eq!(acc.usage().output_tokens, Some(124));
    // A second message_start resets everything.
    acc.message_start(&AnthropicUsage {
        input_tokens: Some(1),
        ..Default::default()
    });
    assert_eq!(acc.finish().unwrap().output_tokens, Some(0));
}

#[test]
fn anthropic_cache_creation_breakdown() {
    let with = |flat: Option<i64>, m5: Option<i64>, h1: Option<i64>| AnthropicUsage {
        input_tokens: Some(100),
        output_tokens: Some(10),
        cache_creation_input_tokens: flat,
        cache_read_input_tokens: Some(0),
        cache_creation: Some(AnthropicCacheCreation {
            ephemeral_5m_input_tokens: m5,
            ephemeral_1h_input_tokens: h1,
        }),
    };
    // Breakdown present: sum of both TTL buckets wins over the flat count.
    assert_eq!(
        anthropic(&with(Some(300), Some(300), Some(200)))
            .unwrap()
            .cache_creation_tokens,
        Some(500)
    );
    assert_eq!(
        anthropic(&with(None, Some(7), None))
            .unwrap()
            .cache_creation_tokens,
        Some(7)
    );
    // An empty breakdown object is not a breakdown.
    assert_eq!(
        anthropic(&with(Some(40), None, None))
            .unwrap()
            .cache_creation_tokens,
        Some(40)
    );
    let flat = AnthropicUsage {
        cache_creation: None,
        ..with(Some(40), None, None)
    };
    assert_eq!(anthropic(&flat).unwrap().cache_creation_tokens, Some(40));

    // Streaming: a delta repeating the flat count keeps the start's breakdown…
    let mut acc = AnthropicUsageAccumulator::new();
    acc.message_start(&with(Some(300), Some(300), Some(200)));
    acc.message_delta(&AnthropicUsage {
        cache_creation_input_tokens: Some(300),
        output_tokens: Some(50),
        ..Default::default()
    });
    assert_eq!(acc.finish().unwrap().cache_creation_tokens, Some(500));
    // …a new flat count without breakdown replaces it…
    acc.message_delta(&AnthropicUsage {
        cache_creation_input_tokens: Some(900),
        ..Default::default()
    });
    assert_eq!(acc.finish().unwrap().cache_creation_tokens, Some(900));
    // …and a delta breakdown merges field by field.
    let mut acc = AnthropicUsageAccumulator::new();
    acc.message_start(&with(Some(300), Some(300), Some(200)));
    acc.message_delta(&AnthropicUsage {
        cache_creation: Some(AnthropicCacheCreation {
            ephemeral_5m_input_tokens: None,
            ephemeral_1h_input_tokens: Some(1000),
        }),
        ..Default::default()
    });
    assert_eq!(acc.finish().unwrap().cache_creation_tokens, Some(1300));
    let mut acc = AnthropicUsageAccumulator::new();
    acc.message_delta(&AnthropicUsage {
        cache_creation: Some(AnthropicCacheCreation {
            ephemeral_5m_input_tokens: Some(5),
            ephemeral_1h_input_tokens: None,
        }),
        ..Default::default()
    });
    assert_eq!(acc.finish().unwrap().cache_creation_tokens, Some(5));
}

#[test]
fn openai_rules_and_bad_input() {
    let chat: OpenAiChatUsage = serde_json::from_str(
        r#"{"prompt_tokens":1000,"completion_tokens":50,"total_tokens":1050,
            "prompt_tokens_details":{"cached_tokens":600,"cache_write_tokens":100,"audio_tokens":0},
            "completion_tokens_details":{"reasoning_tokens":20}}"#,
    )
    .unwrap();
    let u = openai_chat(&chat).unwrap();
    assert_eq!(
        u,
        ChatMessageUsage {
            input_tokens: Some(300),
            output_tokens: Some(50),
            total_tokens: Some(1050),
            reasoning_tokens: Some(20),
            cache_creation_tokens: Some(100),
            cache_read_tokens: Some(600),
            context_limit: None,
        }
    );
    // Responses API, same rules under different names.
    let resp: OpenAiResponsesUsage = serde_json::from_str(
        r#"{"input_tokens":7112,"input_tokens_details":{"cached_tokens":3072},"output_tokens":463,
            "output_tokens_details":{"reasoning_tokens":64},"total_tokens":7575}"#,
    )
    .unwrap();
    let r = openai_responses(&resp).unwrap();
    assert_eq!(
        (
            r.input_tokens,
            r.cache_read_tokens,
            r.output_tokens,
            r.reasoning_tokens
        ),
        (Some(4040), Some(3072), Some(463), Some(64))
    );
    assert_eq!(r.cache_creation_tokens, None);

    // No counters at all: empty usage, which costs None.
    for raw in [
        "{}",
        r#"{"prompt_tokens":null}"#,
        r#"{"prompt_tokens_details":{}}"#,
    ] {
        let u = openai_chat(&serde_json::from_str(raw).unwrap()).unwrap();
        assert!(u.is_empty(), "{raw}");
    }
    assert!(openai_responses(&OpenAiResponsesUsage::default())
        .unwrap()
        .is_empty());
    assert!(anthropic(&AnthropicUsage::default()).unwrap().is_empty());
    assert!(xai_chat(&XaiUsage::default()).unwrap().is_empty());
    assert!(deepseek_chat(&DeepSeekUsage::default()).unwrap().is_empty());
    // Missing counters inside a usage object count as zero.
    let u = openai_chat(&serde_json::from_str(r#"{"completion_tokens":5}"#).unwrap()).unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.total_tokens
        ),
        (Some(0), Some(5), Some(0), Some(5))
    );

    // Negative counters are rejected with the field named.
    let err = openai_chat(&serde_json::from_str(r#"{"prompt_tokens":-5}"#).unwrap()).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::InvalidTokenCount);
    assert_eq!(err.field(), Some("prompt_tokens"));
    assert_eq!(
        err.to_string(),
        "provider usage field prompt_tokens is negative (-5)"
    );
    let err = openai_responses(
        &serde_json::from_str(r#"{"input_tokens":5,"input_tokens_details":{"cached_tokens":-1}}"#)
            .unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.field(), Some("input_tokens_details.cached_tokens"));
    let err = anthropic(
        &serde_json::from_str(r#"{"cache_creation":{"ephemeral_1h_input_tokens":-1}}"#).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err.field(),
        Some("cache_creation.ephemeral_1h_input_tokens")
    );
    let err = deepseek_chat(&serde_json::from_str(r#"{"prompt_cache_miss_tokens":-1}"#).unwrap())
        .unwrap_err();
    assert!(err.is_invalid_usage());
    let err = xai_chat(
        &serde_json::from_str(r#"{"completion_tokens_details":{"reasoning_tokens":-2}}"#).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err.field(),
        Some("completion_tokens_details.reasoning_tokens")
    );

    // More cached than prompt tokens contradicts itself.
    let err = openai_chat(
        &serde_json::from_str(r#"{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":6}}"#)
            .unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::InconsistentUsage);
    assert!(
        err.to_string().contains("prompt_tokens (5) is less than"),
        "{err}"
    );

    // Values beyond i64 and non-integers are refused by the deserializer.
    assert!(
        serde_json::from_str::<OpenAiChatUsage>(r#"{"prompt_tokens":9223372036854775808}"#)
            .is_err()
    );
    assert!(serde_json::from_str::<OpenAiChatUsage>(r#"{"prompt_tokens":1.5}"#).is_err());
    assert!(serde_json::from_str::<OpenAiChatUsage>(r#"{"prompt_tokens":"1"}"#).is_err());
}

#[test]
fn absurd_counts_saturate_or_report() {
    let max = i64::MAX;
    // The total saturates; it is informational and never billed.
    let u = openai_chat(&OpenAiChatUsage {
        prompt_tokens: Some(max),
        completion_tokens: Some(max),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (Some(max), Some(max), Some(max))
    );
    // A billed sum that does not fit is an error, never a wrapped number.
    let x = XaiUsage {
        completion_tokens: Some(max),
        completion_tokens_details: Some(chatcost::OpenAiOutputDetails {
            reasoning_tokens: Some(1),
        }),
        ..Default::default()
    };
    let err = xai_chat(&x).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::Overflow);
    let a = AnthropicUsage {
        cache_creation: Some(AnthropicCacheCreation {
            ephemeral_5m_input_tokens: Some(max),
            ephemeral_1h_input_tokens: Some(1),
        }),
        ..Default::default()
    };
    assert!(anthropic(&a).unwrap_err().is_overflow());
    let o = OpenAiChatUsage {
        prompt_tokens: Some(max),
        prompt_tokens_details: Some(chatcost::OpenAiInputDetails {
            cached_tokens: Some(max),
            cache_write_tokens: Some(1),
        }),
        ..Default::default()
    };
    assert!(openai_chat(&o).unwrap_err().is_overflow());
    // At the edge, exact.
    let x = XaiUsage {
        completion_tokens: Some(max - 1),
        completion_tokens_details: Some(chatcost::OpenAiOutputDetails {
            reasoning_tokens: Some(1),
        }),
        ..Default::default()
    };
    assert_eq!(xai_chat(&x).unwrap().output_tokens, Some(max));
}

#[test]
fn deepseek_cache_split() {
    let full: DeepSeekUsage = serde_json::from_str(
        r#"{"prompt_tokens":339,"completion_tokens":83,"total_tokens":422,"prompt_tokens_details":{"cached_tokens":320},
            "completion_tokens_details":{"reasoning_tokens":39},"prompt_cache_hit_tokens":320,"prompt_cache_miss_tokens":19}"#,
    )
    .unwrap();
    let u = deepseek_chat(&full).unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.output_tokens,
            u.reasoning_tokens
        ),
        (Some(19), Some(320), Some(83), Some(39))
    );
    // Half of the split: the other half is the rest of the prompt.
    let hit_only = DeepSeekUsage {
        prompt_cache_miss_tokens: None,
        ..full
    };
    assert_eq!(deepseek_chat(&hit_only).unwrap(), u);
    let miss_only = DeepSeekUsage {
        prompt_cache_hit_tokens: None,
        ..full
    };
    assert_eq!(deepseek_chat(&miss_only).unwrap(), u);
    // No split at all: OpenAI rule with cached_tokens.
    let neither = DeepSeekUsage {
        prompt_cache_hit_tokens: None,
        prompt_cache_miss_tokens: None,
        ..full
    };
    assert_eq!(deepseek_chat(&neither).unwrap(), u);
    let bad = DeepSeekUsage {
        prompt_cache_miss_tokens: Some(400),
        prompt_cache_hit_tokens: None,
        ..full
    };
    assert_eq!(
        deepseek_chat(&bad).unwrap_err().kind(),
        CostErrorKind::InconsistentUsage
    );
}

#[test]
fn normalize_module_is_reachable_by_path() {
    // The functions live in `chatcost::normalize`; the raw types are also at the root.
    let u = normalize::openai_chat(&OpenAiChatUsage {
        prompt_tokens: Some(1),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(u.input_tokens, Some(1));
}

fn count() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        Just(None),
        (0i64..100_000).prop_map(Some),
        any::<i64>().prop_map(Some)
    ]
}

fn check_invariants(u: &ChatMessageUsage) -> Result<(), TestCaseError> {
    for v in [
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        u.reasoning_tokens,
        u.cache_creation_tokens,
        u.cache_read_tokens,
    ] {
        prop_assert!(v.is_none_or(|v| v >= 0));
    }
    if !u.is_empty() {
        let sum = [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_creation_tokens,
        ]
        .iter()
        .map(|v| i128::from(v.unwrap_or(0)))
        .sum::<i128>()
        .min(i128::from(i64::MAX));
        prop_assert_eq!(u.total_tokens.map(i128::from), Some(sum));
    }
    prop_assert_eq!(u.context_limit, None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn normalization_never_panics(
        a in count(), b in count(), c in count(), e in count(), f in count(), g in count(), h in count(),
    ) {
        let inp = Some(chatcost::OpenAiInputDetails { cached_tokens: e, cache_write_tokens: f });
        let out = Some(chatcost::OpenAiOutputDetails { reasoning_tokens: g });
        let results = [
            openai_chat(&OpenAiChatUsage { prompt_tokens: a, completion_tokens: b, total_tokens: c, prompt_tokens_details: inp, completion_tokens_details: out }),
            openai_compatible_chat(&OpenAiChatUsage { prompt_tokens: a, completion_tokens: b, total_tokens: c, prompt_tokens_details: inp, completion_tokens_details: out }),
            openai_responses(&OpenAiResponsesUsage { input_tokens: a, output_tokens: b, total_tokens: c, input_tokens_details: inp, output_tokens_details: out }),
            xai_chat(&XaiUsage { prompt_tokens: a, completion_tokens: b, total_tokens: c, prompt_tokens_details: inp, completion_tokens_details: out, cost_in_usd_ticks: h }),
            deepseek_chat(&DeepSeekUsage { prompt_tokens: a, completion_tokens: b, total_tokens: c, prompt_cache_hit_tokens: e, prompt_cache_miss_tokens: h, prompt_tokens_details: inp, completion_tokens_details: out }),
            anthropic(&AnthropicUsage { input_tokens: a, output_tokens: b, cache_creation_input_tokens: c, cache_read_input_tokens: e,
                cache_creation: Some(AnthropicCacheCreation { ephemeral_5m_input_tokens: f, ephemeral_1h_input_tokens: g }) }),
        ];
        for r in results {
            match r {
                Ok(u) => {
                    check_invariants(&u)?;
                    // Whatever normalization accepts, costing accepts.
                    let cost = ModelCostConfig { input_price_per_million_tokens: Some(Decimal::ONE), ..Default::default() };
                    prop_assert!(chatcost::try_calculate_total_cost_micros(&u, Some(&cost)).is_ok());
                }
                Err(e) => prop_assert!(e.is_invalid_usage() || e.is_overflow()),
            }
        }
    }

    #[test]
    fn raw_json_never_panics(text in "\\PC{0,120}") {
        if let Ok(u) = serde_json::from_str::<OpenAiChatUsage>(&text) { let _ = openai_chat(&u); }
        if let Ok(u) = serde_json::from_str::<AnthropicUsage>(&text) {
            let mut acc = AnthropicUsageAccumulator::new();
            acc.message_delta(&u);
            let _ = acc.finish();
        }
    }
}
