//! Hand-written wire samples and the properties every wire type must have.
//!
//! `tests/samples/<Type>/*.json` holds at least one sample per struct wire type of
//! `tests/it/generated.rs` (`ts_types!`), written by hand from the field tables of
//! `shared/spec/codersdk.md` in the order Coder's Go server emits fields: a FULL sample
//! (every field the server would emit) and, where a type has omit-when-empty fields, a
//! MINIMAL one (what is left when optional things are empty: zero-valued required part
//! fields, `"labels":{}`, `"children":[]`, `"last_turn_summary":null`, …).
//! `tests/samples/enums.json` lists every known value of every string enum plus one value
//! a newer server might send.
//!
//! What is checked:
//! * every sample deserializes and serializes back to itself byte for byte (compacted);
//! * tolerance: unknown fields, unknown enum strings, `null` for never-null arrays and
//!   maps, the `stream_silence_timeout` alias, legacy statuses, prices given as numbers
//!   or strings;
//! * hostile input (truncated, malformed, wrong types, huge strings, control characters,
//!   100 000-deep nesting) gives errors, never panics or stack overflows;
//! * property: for randomly mutated samples, whenever deserialization succeeds our own
//!   output is a fixpoint of serialize ∘ deserialize.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use codersdk::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Number, Value};

// ---------------------------------------------------------------------------------------
// Loading and comparing samples
// ---------------------------------------------------------------------------------------

fn samples_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples")
}

/// The samples of one type, sorted by file name: `(file name, text as written)`.
fn samples_of(ty: &str) -> Vec<(String, String)> {
    let dir = samples_root().join(ty);
    let mut out: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&p).unwrap();
            (name, text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no samples for {ty}");
    out
}

/// One sample, compacted.
fn sample(ty: &str, name: &str) -> String {
    let path = samples_root().join(ty).join(format!("{name}.json"));
    compact(&fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Compacts JSON text without reordering keys or re-escaping strings.
fn compact(text: &str) -> String {
    RawJson::from_json(text)
        .unwrap_or_else(|e| panic!("sample is not valid JSON: {e}\n{text}"))
        .get()
        .to_owned()
}

fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> Result<String, String> {
    let value: T = serde_json::from_str(text).map_err(|e| format!("deserialize: {e}"))?;
    serde_json::to_string(&value).map_err(|e| format!("serialize: {e}"))
}

/// Where two texts first differ, with some context, for readable failures.
fn first_difference(want: &str, got: &str) -> String {
    let at = want
        .char_indices()
        .zip(got.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| want.len().min(got.len()));
    let context = |s: &str| {
        let mut start = at.saturating_sub(60).min(s.len());
        while !s.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + 60).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        s[start..end].to_owned()
    };
    format!(
        "first difference at byte {at}\n want: …{}…\n  got: …{}…",
        context(want),
        context(got)
    )
}

fn assert_same(label: &str, want: &str, got: Result<String, String>) {
    match got {
        Ok(got) => assert!(
            got == want,
            "{label}: round trip differs; {}",
            first_difference(want, &got)
        ),
        Err(e) => panic!("{label}: {e}"),
    }
}

/// Replaces exactly the first occurrence of `from`, which must exist.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in {text}");
    text.replacen(from, to, 1)
}

// ---------------------------------------------------------------------------------------
// The registry of struct wire types
// ---------------------------------------------------------------------------------------

/// A struct wire type, type-erased so that table-driven tests can reach every type.
struct WireType {
    name: &'static str,
    round_trip: fn(&str) -> Result<String, String>,
    fixpoint: fn(&str) -> Result<(), String>,
}

impl WireType {
    fn get(name: &str) -> &'static WireType {
        WIRE_TYPES
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("{name} is not a registered wire type"))
    }
}

/// If `input` deserializes, our serialization of it must be a fixpoint:
/// `serialize(deserialize(serialize(x))) == serialize(x)`.
fn fixpoint_of<T: Serialize + DeserializeOwned>(input: &str) -> Result<(), String> {
    let Ok(x) = serde_json::from_str::<T>(input) else {
        return Ok(());
    };
    let first = serde_json::to_string(&x)
        .map_err(|e| format!("cannot serialize a value we accepted: {e}"))?;
    let y: T = serde_json::from_str(&first).map_err(|e| {
        format!("our own output does not deserialize: {e}\n input: {input}\noutput: {first}")
    })?;
    let second = serde_json::to_string(&y).map_err(|e| format!("second serialize: {e}"))?;
    if first == second {
        Ok(())
    } else {
        Err(format!(
            "not a fixpoint; {}\n input: {input}",
            first_difference(&first, &second)
        ))
    }
}

/// Whether serde_json reads back every f64 it writes (needs its `float_roundtrip` feature).
fn float_parsing_is_exact() -> bool {
    let x = 106_205_924_727_776_105_u64 as f64;
    serde_json::from_str::<f64>(&serde_json::to_string(&x).unwrap()).unwrap() == x
}

macro_rules! wire_types {
    ($($t:ident),+ $(,)?) => {
        const WIRE_TYPES: &[WireType] = &[
            $(WireType { name: stringify!($t), round_trip: round_trip::<$t>, fixpoint: fixpoint_of::<$t> },)+
        ];

        /// Every sample round-trips byte for byte, one test per type.
        #[allow(non_snake_case)]
        mod sample_round_trip {
            use super::*;
            $(
                #[test]
                fn $t() {
                    check_samples(stringify!($t));
                }
            )+
        }

        /// Property: mutated samples that deserialize serialize to a fixpoint.
        #[allow(non_snake_case)]
        mod fixpoint {
            use super::*;
            $(
                #[test]
                fn $t() {
                    check_fixpoint(stringify!($t));
                }
            )+
        }
    };
}

wire_types![
    // errors
    ChatError,
    ChatStreamRetry,
    Response,
    ValidationError,
    // chats
    Chat,
    ChatDiffStatus,
    ChatDiffContents,
    ChatFileMetadata,
    UploadChatFileResponse,
    // messages
    ChatMessage,
    ChatMessagePart,
    ChatMessageUsage,
    ChatQueuedMessage,
    ChatMessagesResponse,
    // requests
    ChatInputPart,
    CreateChatRequest,
    UpdateChatRequest,
    CreateChatMessageRequest,
    CreateChatMessageResponse,
    EditChatMessageRequest,
    EditChatMessageResponse,
    DynamicTool,
    ToolResult,
    SubmitToolResultsRequest,
    ChatStreamToolCall,
    DynamicToolResponse,
    ProposeChatTitleResponse,
    // streaming
    ChatStreamEvent,
    ChatStreamMessagePart,
    ChatStreamStatus,
    ChatStreamActionRequired,
    ChatWatchEvent,
    // providers and models
    ModelCostConfig,
    ChatModelCallConfig,
    ChatModelReasoningEffortConfig,
    ChatModelOpenAIConfig,
    ChatModelProviderOptions,
    ChatModelOpenAIProviderOptions,
    ChatModelAnthropicProviderOptions,
    ChatModelAnthropicThinkingOptions,
    ChatModelGoogleProviderOptions,
    ChatModelGoogleThinkingConfig,
    ChatModelGoogleSafetySetting,
    ChatModelOpenAICompatProviderOptions,
    ChatModelOpenRouterProviderOptions,
    ChatModelOpenRouterProvider,
    ChatModelReasoningOptions,
    ChatModelVercelProviderOptions,
    ChatModelVercelGatewayProviderOptions,
    ChatProviderConfig,
    CreateChatProviderConfigRequest,
    UpdateChatProviderConfigRequest,
    UserChatProviderConfig,
    CreateUserChatProviderKeyRequest,
    ChatModelConfig,
    CreateChatModelConfigRequest,
    UpdateChatModelConfigRequest,
    ChatModel,
    ChatModelProvider,
    ChatModelsResponse,
    ChatModelOverrideResponse,
    UpdateChatModelOverrideRequest,
    ChatPersonalModelOverridesAdminSettings,
    ChatPersonalModelOverride,
    ChatPersonalModelOverrideDeploymentDefaults,
    UserChatPersonalModelOverridesResponse,
    UpdateUserChatPersonalModelOverrideRequest,
    // cost and limits
    ChatCostTotals,
    ChatCostModelBreakdown,
    ChatCostChatBreakdown,
    ChatCostSummary,
    ChatCostUserRollup,
    ChatCostUsersResponse,
    ChatCost,
    ChatUsageLimitConfig,
    ChatUsageLimitOverride,
    ChatUsageLimitGroupOverride,
    ChatUsageLimitConfigResponse,
    ChatUsageLimitStatus,
    UpsertChatUsageLimitOverrideRequest,
    ChatUsageLimitExceededResponse,
    // AI Gateway records
    AIBridgeInitiator,
    AIBridgeTokenUsage,
    AIBridgeUserPrompt,
    AIBridgeToolUsage,
    AIBridgeInterceptionError,
    AIBridgeInterception,
    AIBridgeListInterceptionsResponse,
    AIBridgeSessionTokenUsageSummary,
    AIBridgeSession,
    AIBridgeListSessionsResponse,
    // MCP
    MCPServerConfig,
    CreateMCPServerConfigRequest,
    UpdateMCPServerConfigRequest,
    MCPServerUserHeaders,
    UpdateMCPServerUserHeadersRequest,
    // configuration and debug
    ChatSystemPromptResponse,
    UpdateChatSystemPromptRequest,
    ChatPlanModeInstructionsResponse,
    ChatDesktopEnabledResponse,
    ChatComputerUseProviderResponse,
    ChatDebugLoggingAdminSettings,
    UpdateChatDebugLoggingAllowUsersRequest,
    UserChatDebugLoggingSettings,
    UpdateUserChatDebugLoggingRequest,
    AdvisorConfig,
    UserChatCustomPrompt,
    UserChatCompactionThreshold,
    UserChatCompactionThresholds,
    UpdateUserChatCompactionThresholdRequest,
    ChatWorkspaceTTLResponse,
    ChatRetentionDaysResponse,
    ChatDebugRetentionDaysResponse,
    ChatAutoArchiveDaysResponse,
    ChatTemplateAllowlist,
    ChatDebugRunSummary,
    ChatDebugStep,
    ChatDebugRun,
    // users and tokens
    SlimRole,
    User,
    CreateUserRequest,
    UpdateRoles,
    GenerateAPIKeyResponse,
    GetUsersResponse,
    CreateTokenRequest,
    APIKey,
    // groups
    GroupMember,
    Group,
    CreateGroupRequest,
    PatchGroupRequest,
    // AI Gateway
    AIBridgeProviderInstance,
    CreateAIBridgeProviderInstanceRequest,
    UpdateAIBridgeProviderInstanceRequest,
];

fn check_samples(ty: &str) {
    let wt = WireType::get(ty);
    for (file, text) in samples_of(ty) {
        let want = compact(&text);
        // As written (indented) and compacted.
        assert_same(&format!("{ty}/{file}"), &want, (wt.round_trip)(&text));
        assert_same(
            &format!("{ty}/{file} (compact)"),
            &want,
            (wt.round_trip)(&want),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Coverage: every published type has samples, every sample directory is a type
// ---------------------------------------------------------------------------------------

/// The `ts_types![...]` list of `tests/it/generated.rs`.
fn published_types() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/generated.rs");
    let src = fs::read_to_string(path).unwrap();
    let start = src.find("ts_types![").expect("ts_types! invocation") + "ts_types![".len();
    let end = start + src[start..].find("];").expect("end of ts_types!");
    src[start..end]
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn enum_table() -> BTreeMap<String, Value> {
    let text = fs::read_to_string(samples_root().join("enums.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Published enums that are closed (no `Unknown` value: an unknown string is an error, not
/// kept), so the forward-compatible enum table does not fit them; each has its own test.
const CLOSED_ENUMS: &[&str] = &["ProviderId"];

#[test]
fn provider_ids_round_trip_and_unknown_ids_are_rejected() {
    for id in CHAT_PROVIDER_IDS {
        let json = serde_json::to_string(id).unwrap();
        let p: ProviderId = serde_json::from_str(&json).unwrap();
        assert_eq!(p.as_str(), *id);
        assert_eq!(serde_json::to_string(&p).unwrap(), json);
    }
    // Ids are read trimmed and ignoring ASCII case, and written canonically.
    let p: ProviderId = serde_json::from_str(r#"" OpenAI-Compat ""#).unwrap();
    assert_eq!(serde_json::to_string(&p).unwrap(), r#""openai-compat""#);
    // Closed: an unknown id or an alias is an error, never kept.
    for bad in [r#""acme""#, r#""azure-openai""#, r#""""#, "null", "1", "{}"] {
        assert!(serde_json::from_str::<ProviderId>(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_published_type_has_samples() {
    let published: BTreeSet<String> = published_types().into_iter().collect();
    assert!(
        published.len() > 100,
        "parsed only {} names from ts_types!",
        published.len()
    );
    let structs: BTreeSet<String> = WIRE_TYPES.iter().map(|w| w.name.to_owned()).collect();
    let enums: BTreeSet<String> = enum_table()
        .into_keys()
        .chain(CLOSED_ENUMS.iter().map(|s| s.to_string()))
        .collect();
    assert!(structs.is_disjoint(&enums));
    let covered: BTreeSet<String> = structs.union(&enums).cloned().collect();
    let missing: Vec<_> = published.difference(&covered).collect();
    let extra: Vec<_> = covered.difference(&published).collect();
    assert!(
        missing.is_empty(),
        "published types without samples: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "samples for types that are not published: {extra:?}"
    );

    let dirs: BTreeSet<String> = fs::read_dir(samples_root())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        dirs, structs,
        "sample directories must match the struct wire types"
    );
    for ty in &structs {
        for (file, text) in samples_of(ty) {
            assert!(
                compact(&text).starts_with('{'),
                "{ty}/{file}: samples are objects"
            );
        }
    }
}

#[test]
fn a_sample_for_every_part_type_and_event_type() {
    let parts: BTreeSet<String> = samples_of("ChatMessagePart")
        .iter()
        .map(|(_, t)| {
            serde_json::from_str::<ChatMessagePart>(t)
                .unwrap()
                .part_type
                .to_string()
        })
        .collect();
    for t in ChatMessagePartType::ALL {
        assert!(
            parts.contains(t.as_str()),
            "no ChatMessagePart sample of type {t}"
        );
    }
    let events: BTreeSet<String> = samples_of("ChatStreamEvent")
        .iter()
        .map(|(_, t)| {
            serde_json::from_str::<ChatStreamEvent>(t)
                .unwrap()
                .event_type
                .to_string()
        })
        .collect();
    for t in ChatStreamEventType::ALL {
        assert!(
            events.contains(t.as_str()),
            "no ChatStreamEvent sample of type {t}"
        );
    }
    let kinds: BTreeSet<String> = samples_of("ChatWatchEvent")
        .iter()
        .map(|(_, t)| {
            serde_json::from_str::<ChatWatchEvent>(t)
                .unwrap()
                .kind
                .to_string()
        })
        .collect();
    for k in ChatWatchEventKind::ALL {
        assert!(
            kinds.contains(k.as_str()),
            "no ChatWatchEvent sample of kind {k}"
        );
    }
    // tool-call parts: one with complete args, one streaming args_delta.
    let call_with_args: ChatMessagePart =
        serde_json::from_str(&sample("ChatMessagePart", "tool-call-args")).unwrap();
    assert!(call_with_args.args.is_some() && call_with_args.args_delta.is_empty());
    let call_delta: ChatMessagePart =
        serde_json::from_str(&sample("ChatMessagePart", "tool-call-args-delta")).unwrap();
    assert!(call_delta.args.is_none() && !call_delta.args_delta.is_empty());
}

// ---------------------------------------------------------------------------------------
// String enums: every known value, aliases, one unknown value
// ---------------------------------------------------------------------------------------

trait WireEnum: Serialize + DeserializeOwned + std::fmt::Debug {
    fn all_wire() -> Vec<String>;
    fn unknown(&self) -> bool;
    fn wire(&self) -> String;
}

macro_rules! wire_enums {
    ($($t:ident),+ $(,)?) => {
        $(
            impl WireEnum for $t {
                fn all_wire() -> Vec<String> {
                    $t::ALL.iter().map(|v| v.as_str().to_owned()).collect()
                }
                fn unknown(&self) -> bool {
                    self.is_unknown()
                }
                fn wire(&self) -> String {
                    self.as_str().to_owned()
                }
            }
        )+

        #[test]
        fn enum_table_covers_exactly_the_enums() {
            let listed: BTreeSet<String> = [$(stringify!($t)),+].iter().map(|s| s.to_string()).collect();
            let table: BTreeSet<String> = enum_table().into_keys().collect();
            assert_eq!(listed, table);
        }

        #[test]
        fn enums_known_values_aliases_and_unknown_round_trip() {
            let table = enum_table();
            $( check_enum::<$t>(stringify!($t), &table[stringify!($t)]); )+
        }
    };
}

wire_enums![
    ChatErrorKind,
    ChatStatus,
    ChatPlanMode,
    ChatClientType,
    ChatMessageRole,
    ChatMessagePartType,
    ChatInputPartType,
    ChatBusyBehavior,
    ChatStreamEventType,
    ChatWatchEventKind,
    ChatProviderConfigSource,
    ChatModelProviderUnavailableReason,
    ChatModelOverrideContext,
    ChatPersonalModelOverrideContext,
    ChatPersonalModelOverrideMode,
    ChatUsageLimitPeriod,
    MCPServerTransport,
    MCPServerAuthType,
    MCPServerAvailability,
    ChatComputerUseProvider,
    ChatDebugRunKind,
    ChatDebugStatus,
    ChatDebugStepOperation,
    UserStatus,
    LoginType,
];

fn check_enum<T: WireEnum>(name: &str, spec: &Value) {
    let known: Vec<String> = serde_json::from_value(spec["known"].clone()).unwrap();
    let ours: BTreeSet<String> = T::all_wire().into_iter().collect();
    let theirs: BTreeSet<String> = known.iter().cloned().collect();
    assert_eq!(ours, theirs, "{name}: known values differ from the spec");
    assert_eq!(T::all_wire().len(), known.len(), "{name}: duplicate values");
    for value in &known {
        let json = serde_json::to_string(value).unwrap();
        let v: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name} {value}: {e}"));
        assert!(!v.unknown(), "{name}: {value} read as unknown");
        assert_eq!(&v.wire(), value);
        assert_eq!(serde_json::to_string(&v).unwrap(), json, "{name}: {value}");
        // Matching is exact: other spellings are kept verbatim (and are not this value).
        for other in [
            value.to_uppercase(),
            format!(" {value}"),
            format!("{value}\u{0}"),
        ] {
            let other_json = serde_json::to_string(&other).unwrap();
            let o: T = serde_json::from_str(&other_json).unwrap();
            assert!(o.unknown(), "{name}: {other:?} must not match {value}");
            assert_eq!(serde_json::to_string(&o).unwrap(), other_json);
        }
    }
    if let Some(aliases) = spec.get("aliases").and_then(Value::as_object) {
        for (alias, target) in aliases {
            let v: T = serde_json::from_str(&serde_json::to_string(alias).unwrap()).unwrap();
            assert_eq!(
                Some(v.wire().as_str()),
                target.as_str(),
                "{name}: alias {alias}"
            );
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                serde_json::to_string(target).unwrap()
            );
        }
    }
    let unknown = spec["unknown"].as_str().unwrap();
    for u in [unknown, "", "😀 \u{1} \"quoted\""] {
        let json = serde_json::to_string(u).unwrap();
        let v: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name} {u:?}: {e}"));
        assert!(v.unknown(), "{name}: {u:?} should be unknown");
        assert_eq!(v.wire(), u);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            json,
            "{name}: unknown value is kept verbatim"
        );
    }
    for bad in ["1", "null", "true", "[]", "{}", "\"unterminated"] {
        assert!(
            serde_json::from_str::<T>(bad).is_err(),
            "{name}: {bad} must be rejected"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tolerance (a): unknown fields are ignored
// ---------------------------------------------------------------------------------------

const FUTURE_FIELD: &str = r#""some_future_field":{"x":[1]}"#;

fn with_leading_unknown(compact: &str) -> String {
    if compact == "{}" {
        format!("{{{FUTURE_FIELD}}}")
    } else {
        format!("{{{FUTURE_FIELD},{}", &compact[1..])
    }
}

fn with_trailing_unknown(compact: &str) -> String {
    if compact == "{}" {
        format!("{{{FUTURE_FIELD}}}")
    } else {
        format!("{},{FUTURE_FIELD}}}", &compact[..compact.len() - 1])
    }
}

#[test]
fn unknown_top_level_fields_are_ignored_by_every_type() {
    for wt in WIRE_TYPES {
        for (file, text) in samples_of(wt.name) {
            let want = compact(&text);
            for input in [with_leading_unknown(&want), with_trailing_unknown(&want)] {
                assert_same(
                    &format!("{}/{file} + unknown field", wt.name),
                    &want,
                    (wt.round_trip)(&input),
                );
            }
        }
    }
}

#[test]
fn unknown_nested_fields_are_ignored() {
    // (type, sample, anchor after which an unknown field is inserted)
    let cases: &[(&str, &str, &str)] = &[
        ("Chat", "full", r#""last_error":{"#),
        ("Chat", "full", r#""diff_status":{"#),
        ("Chat", "full", r#""files":[{"#),
        ("Chat", "full", r#""last_injected_context":[{"#),
        ("Chat", "full", r#""children":[{"#),
        ("ChatStreamEvent", "message_part", r#""message_part":{"#),
        ("ChatStreamEvent", "message_part", r#""part":{"#),
        ("ChatStreamEvent", "message", r#""message":{"#),
        ("ChatStreamEvent", "message", r#""content":[{"#),
        ("ChatStreamEvent", "message", r#""usage":{"#),
        ("ChatStreamEvent", "status", r#""status":{"#),
        ("ChatStreamEvent", "retry", r#""retry":{"#),
        ("ChatStreamEvent", "queue_update", r#""queued_messages":[{"#),
        ("ChatStreamEvent", "action_required", r#""tool_calls":[{"#),
        ("ChatWatchEvent", "action_required", r#""chat":{"#),
        ("ChatModelConfig", "full", r#""model_config":{"#),
        ("ChatModelConfig", "full", r#""cost":{"#),
        ("ChatModelConfig", "full", r#""provider_options":{"#),
        ("ChatModelConfig", "full", r#""anthropic":{"#),
        ("ChatModelConfig", "full", r#""thinking":{"#),
        ("ChatCostSummary", "full", r#""by_model":[{"#),
        ("ChatCostSummary", "full", r#""by_chat":[{"#),
        ("ChatCostSummary", "full", r#""usage_limit":{"#),
        ("ChatUsageLimitConfigResponse", "full", r#""overrides":[{"#),
        (
            "ChatUsageLimitConfigResponse",
            "full",
            r#""group_overrides":[{"#,
        ),
        (
            "UserChatPersonalModelOverridesResponse",
            "full",
            r#""root":{"#,
        ),
        (
            "UserChatPersonalModelOverridesResponse",
            "full",
            r#""deployment_defaults":{"general":{"#,
        ),
        ("ChatMessagesResponse", "full", r#""queued_messages":[{"#),
        ("CreateChatRequest", "full", r#""content":[{"#),
        ("CreateChatRequest", "full", r#""unsafe_dynamic_tools":[{"#),
        ("SubmitToolResultsRequest", "full", r#""results":[{"#),
        ("ChatDebugRun", "full", r#""steps":[{"#),
        ("Response", "full", r#""validations":[{"#),
    ];
    for (ty, name, anchor) in cases {
        let want = sample(ty, name);
        let input = replace_once(&want, anchor, &format!("{anchor}{FUTURE_FIELD},"));
        assert_same(
            &format!("{ty}/{name} + unknown after {anchor}"),
            &want,
            (WireType::get(ty).round_trip)(&input),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tolerance (b): unknown enum strings keep the enclosing object readable
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_enum_strings_round_trip_inside_their_objects() {
    // (type, sample, known text, replacement with a value from a newer server)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "Chat",
            "minimal",
            r#""status":"pending""#,
            r#""status":"interrupting""#,
        ),
        (
            "Chat",
            "full",
            r#""plan_mode":"plan""#,
            r#""plan_mode":"orchestrate""#,
        ),
        (
            "Chat",
            "full",
            r#""kind":"overloaded""#,
            r#""kind":"hook_denied""#,
        ),
        (
            "Chat",
            "full",
            r#""client_type":"ui""#,
            r#""client_type":"cli""#,
        ),
        (
            "ChatMessagePart",
            "text",
            r#""type":"text""#,
            r#""type":"hook-notice""#,
        ),
        (
            "ChatMessage",
            "full",
            r#""role":"assistant""#,
            r#""role":"developer""#,
        ),
        (
            "ChatMessage",
            "user",
            r#""type":"file-reference""#,
            r#""type":"hook-context""#,
        ),
        (
            "ChatStreamEvent",
            "status",
            r#""type":"status""#,
            r#""type":"preview_reset""#,
        ),
        (
            "ChatStreamEvent",
            "status",
            r#""status":"running""#,
            r#""status":"interrupting""#,
        ),
        (
            "ChatStreamEvent",
            "message_part",
            r#""role":"assistant""#,
            r#""role":"developer""#,
        ),
        (
            "ChatWatchEvent",
            "status_change",
            r#""kind":"status_change""#,
            r#""kind":"context_dirty""#,
        ),
        (
            "ChatError",
            "full",
            r#""kind":"overloaded""#,
            r#""kind":"hook_denied""#,
        ),
        (
            "ChatStreamRetry",
            "full",
            r#""kind":"rate_limit""#,
            r#""kind":"hook_dispatch_failed""#,
        ),
        (
            "ChatInputPart",
            "text",
            r#""type":"text""#,
            r#""type":"image""#,
        ),
        (
            "CreateChatRequest",
            "full",
            r#""client_type":"ui""#,
            r#""client_type":"cli""#,
        ),
        (
            "CreateChatMessageRequest",
            "full",
            r#""busy_behavior":"interrupt""#,
            r#""busy_behavior":"drop""#,
        ),
        (
            "ChatProviderConfig",
            "full",
            r#""source":"database""#,
            r#""source":"organization""#,
        ),
        (
            "ChatModelProvider",
            "unavailable",
            r#""unavailable_reason":"user_api_key_required""#,
            r#""unavailable_reason":"provider_disabled""#,
        ),
        (
            "ChatModelOverrideResponse",
            "full",
            r#""context":"title_generation""#,
            r#""context":"compaction""#,
        ),
        (
            "ChatPersonalModelOverride",
            "full",
            r#""mode":"model""#,
            r#""mode":"inherit""#,
        ),
        (
            "ChatUsageLimitConfig",
            "full",
            r#""period":"week""#,
            r#""period":"year""#,
        ),
        (
            "ChatUsageLimitStatus",
            "limited",
            r#""period":"day""#,
            r#""period":"year""#,
        ),
        (
            "MCPServerConfig",
            "full",
            r#""transport":"streamable_http""#,
            r#""transport":"stdio""#,
        ),
        (
            "MCPServerConfig",
            "full",
            r#""auth_type":"oauth2""#,
            r#""auth_type":"mtls""#,
        ),
        (
            "MCPServerConfig",
            "full",
            r#""availability":"default_on""#,
            r#""availability":"hidden""#,
        ),
        (
            "ChatComputerUseProviderResponse",
            "full",
            r#""provider":"anthropic""#,
            r#""provider":"google""#,
        ),
        (
            "ChatDebugRun",
            "full",
            r#""kind":"compaction""#,
            r#""kind":"advisor""#,
        ),
        (
            "ChatDebugRun",
            "full",
            r#""status":"interrupted""#,
            r#""status":"cancelled""#,
        ),
        (
            "ChatDebugStep",
            "full",
            r#""operation":"stream""#,
            r#""operation":"embed""#,
        ),
    ];
    for (ty, name, from, to) in cases {
        let input = replace_once(&sample(ty, name), from, to);
        assert_same(
            &format!("{ty}/{name} with {to}"),
            &input,
            (WireType::get(ty).round_trip)(&input),
        );
    }

    // The values are kept as Unknown, not mapped to something else.
    let chat: Chat = serde_json::from_str(&replace_once(
        &sample("Chat", "minimal"),
        r#""status":"pending""#,
        r#""status":"interrupting""#,
    ))
    .unwrap();
    assert_eq!(chat.status, ChatStatus::Unknown("interrupting".into()));
    let part: ChatMessagePart = serde_json::from_str(&replace_once(
        &sample("ChatMessagePart", "text"),
        r#""type":"text""#,
        r#""type":"hook-notice""#,
    ))
    .unwrap();
    assert_eq!(
        part.part_type,
        ChatMessagePartType::Unknown("hook-notice".into())
    );
    let watch: ChatWatchEvent = serde_json::from_str(&replace_once(
        &sample("ChatWatchEvent", "status_change"),
        r#""kind":"status_change""#,
        r#""kind":"context_dirty""#,
    ))
    .unwrap();
    assert_eq!(
        watch.kind,
        ChatWatchEventKind::Unknown("context_dirty".into())
    );
    let err: ChatError = serde_json::from_str(&replace_once(
        &sample("ChatError", "full"),
        r#""kind":"overloaded""#,
        r#""kind":"hook_denied""#,
    ))
    .unwrap();
    assert_eq!(err.kind, Some(ChatErrorKind::Unknown("hook_denied".into())));
}

#[test]
fn a_stream_frame_with_events_from_a_newer_server_still_parses() {
    let chat_id = "8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92";
    // A frame is a JSON array of events (§8.1); newer servers add event types and payloads.
    let frame = format!(
        r#"[{status},{{"type":"preview_reset","chat_id":"{chat_id}"}},{{"type":"history_reset","chat_id":"{chat_id}","history_version":3}},{part}]"#,
        status = sample("ChatStreamEvent", "status"),
        part = sample("ChatStreamEvent", "message_part"),
    );
    let events: Vec<ChatStreamEvent> = serde_json::from_str(&frame).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[1].event_type,
        ChatStreamEventType::Unknown("preview_reset".into())
    );
    assert_eq!(
        events[2].event_type,
        ChatStreamEventType::Unknown("history_reset".into())
    );
    let out = serde_json::to_string(&events).unwrap();
    let want = frame.replace(r#","history_version":3"#, "");
    assert_eq!(out, want);
}

// ---------------------------------------------------------------------------------------
// Tolerance (c): never-null arrays and maps; always-present fields
// ---------------------------------------------------------------------------------------

#[test]
fn never_null_arrays_and_maps_read_null_and_absent_as_empty() {
    // (type, sample, field, canonical value in the sample)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("Chat", "minimal", "mcp_server_ids", "[]"),
        ("Chat", "minimal", "labels", "{}"),
        ("Chat", "minimal", "children", "[]"),
        ("ChatMessagesResponse", "minimal", "messages", "[]"),
        ("ChatMessagesResponse", "minimal", "queued_messages", "[]"),
        ("ChatQueuedMessage", "minimal", "content", "[]"),
        ("ChatStreamActionRequired", "minimal", "tool_calls", "[]"),
        ("ChatModelsResponse", "minimal", "providers", "[]"),
        ("ChatModelProvider", "unavailable", "models", "[]"),
        ("ChatCostSummary", "minimal", "by_model", "[]"),
        ("ChatCostSummary", "minimal", "by_chat", "[]"),
        ("ChatCostUsersResponse", "minimal", "users", "[]"),
        ("AIBridgeInterception", "minimal", "token_usages", "[]"),
        ("AIBridgeInterception", "minimal", "user_prompts", "[]"),
        ("AIBridgeInterception", "minimal", "tool_usages", "[]"),
        (
            "AIBridgeListInterceptionsResponse",
            "minimal",
            "results",
            "[]",
        ),
        ("AIBridgeSession", "minimal", "providers", "[]"),
        ("AIBridgeSession", "minimal", "models", "[]"),
        ("AIBridgeListSessionsResponse", "minimal", "sessions", "[]"),
        ("ChatUsageLimitConfigResponse", "minimal", "overrides", "[]"),
        (
            "ChatUsageLimitConfigResponse",
            "minimal",
            "group_overrides",
            "[]",
        ),
        (
            "MCPServerConfig",
            "minimal",
            "custom_headers_user_keys",
            "[]",
        ),
        (
            "MCPServerConfig",
            "minimal",
            "custom_headers_user_key_descriptions",
            "{}",
        ),
        ("MCPServerConfig", "minimal", "tool_allow_list", "[]"),
        ("MCPServerConfig", "minimal", "tool_deny_list", "[]"),
        ("MCPServerUserHeaders", "minimal", "has_values", "{}"),
        (
            "UpdateMCPServerUserHeadersRequest",
            "minimal",
            "values",
            "{}",
        ),
        (
            "UserChatCompactionThresholds",
            "minimal",
            "thresholds",
            "[]",
        ),
        ("ChatTemplateAllowlist", "minimal", "template_ids", "[]"),
        ("ChatDebugStep", "minimal", "attempts", "[]"),
        ("ChatDebugRun", "minimal", "steps", "[]"),
        ("SubmitToolResultsRequest", "minimal", "results", "[]"),
        ("EditChatMessageRequest", "minimal", "content", "[]"),
        // Always present, null when empty.
        ("Chat", "minimal", "last_turn_summary", "null"),
    ];
    for (ty, name, field, canonical) in cases {
        let want = sample(ty, name);
        let rt = WireType::get(ty).round_trip;
        let present = format!(r#""{field}":{canonical}"#);
        assert!(want.contains(&present), "{ty}/{name} lacks {present}");
        let null_input = want.replace(&present, &format!(r#""{field}":null"#));
        assert_same(
            &format!("{ty}/{name} with {field}: null"),
            &want,
            rt(&null_input),
        );
        let absent_input = if want.contains(&format!("{present},")) {
            want.replace(&format!("{present},"), "")
        } else if want.contains(&format!(",{present}")) {
            want.replace(&format!(",{present}"), "")
        } else {
            want.replace(&present, "")
        };
        assert!(
            !absent_input.contains(&format!(r#""{field}""#)),
            "{ty}/{name}: {absent_input}"
        );
        assert_same(
            &format!("{ty}/{name} without {field}"),
            &want,
            rt(&absent_input),
        );
    }

    // The same inside a full object, where the arrays have siblings.
    let full = sample("Chat", "full");
    let nulled = full
        .replace(
            r#""mcp_server_ids":[],"labels":{}"#,
            r#""mcp_server_ids":null,"labels":null"#,
        )
        .replace(r#""children":[]"#, r#""children":null"#);
    assert_ne!(nulled, full);
    assert_same(
        "Chat/full with nulls in the child",
        &full,
        (WireType::get("Chat").round_trip)(&nulled),
    );
}

#[test]
fn always_present_scalars_are_written_when_absent_on_input() {
    // (type, input, expected output)
    let cases: &[(&str, &str, &str)] = &[
        (
            "ChatError",
            r#"{"message":"boom"}"#,
            r#"{"message":"boom","retryable":false}"#,
        ),
        (
            "ChatError",
            r#"{"retryable":true}"#,
            r#"{"message":"","retryable":true}"#,
        ),
        ("CreateChatMessageResponse", r#"{}"#, r#"{"queued":false}"#),
        (
            "ChatMessagesResponse",
            r#"{}"#,
            r#"{"messages":[],"queued_messages":[],"has_more":false}"#,
        ),
        (
            "Response",
            r#"{"validations":[],"detail":""}"#,
            r#"{"message":""}"#,
        ),
        ("ChatStreamActionRequired", r#"{}"#, r#"{"tool_calls":[]}"#),
        // Older servers' short form reads; the spend and period bounds are always written
        // (Coder writes them as 0 and Go's zero time when no limit applies).
        (
            "ChatUsageLimitStatus",
            r#"{"is_limited":false,"period":null}"#,
            r#"{"is_limited":false,"current_spend":0,"period_start":"0001-01-01T00:00:00Z","period_end":"0001-01-01T00:00:00Z"}"#,
        ),
        (
            "ChatUsageLimitStatus",
            r#"{"is_limited":false,"current_spend":null,"period_start":null,"period_end":null}"#,
            r#"{"is_limited":false,"current_spend":0,"period_start":"0001-01-01T00:00:00Z","period_end":"0001-01-01T00:00:00Z"}"#,
        ),
    ];
    for (ty, input, want) in cases {
        assert_same(
            &format!("{ty} from {input}"),
            want,
            (WireType::get(ty).round_trip)(input),
        );
    }
}

#[test]
fn parts_written_without_zero_fields_gain_them() {
    // A TypeScript client (or an older stored row) sends only its variant's fields; our
    // output carries every field some variant requires, as Go does.
    let cases: &[(&str, &str)] = &[
        (r#"{"type":"text","text":"hi"}"#, "text"),
        (
            r#"{"type":"tool-call","tool_call_id":"c1","tool_name":"ls","args":{}}"#,
            "tool-call",
        ),
        (r#"{"type":"source","url":"https://go.dev"}"#, "source"),
        (
            r#"{"type":"file","media_type":"image/png","file_id":"e5c1a8f3-6d2b-4c9e-b1a7-3d8f5c2e9a40"}"#,
            "file",
        ),
        (
            r#"{"type":"file-reference","file_name":"a.go","start_line":1,"end_line":2,"content":"x"}"#,
            "file-reference",
        ),
        (
            r#"{"type":"context-file","context_file_path":"/AGENTS.md"}"#,
            "context-file",
        ),
        (r#"{"type":"skill","skill_name":"deploy"}"#, "skill"),
    ];
    for (input, ty) in cases {
        let out = (WireType::get("ChatMessagePart").round_trip)(input).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        for field in [
            "text",
            "url",
            "media_type",
            "file_name",
            "start_line",
            "end_line",
            "content",
            "context_file_path",
            "skill_name",
        ] {
            assert!(v.get(field).is_some(), "{ty}: {field} missing from {out}");
        }
        assert_eq!(v["type"], *ty);
    }
    assert_eq!(
        (WireType::get("ChatMessagePart").round_trip)(r#"{"type":"skill","skill_name":"deploy"}"#)
            .unwrap(),
        sample("ChatMessagePart", "skill-minimal")
    );
    assert_eq!(
        (WireType::get("ChatMessagePart").round_trip)(r#"{"type":"tool-call"}"#).unwrap(),
        sample("ChatMessagePart", "tool-call-minimal")
    );
}

#[test]
fn omitted_when_empty_fields_are_not_written() {
    // Zero values of omit-when-empty fields on input disappear on output.
    let cases: &[(&str, &str, &str)] = &[
        (
            "ChatMessagePart",
            r#"{"type":"text","text":"x","signature":"","tool_call_id":"","tool_name":"","args_delta":"","result_delta":"","result_reset":false,"is_error":false,"is_media":false,"source_id":"","title":"","name":"","data":"","provider_executed":false,"hook_rewritten":false,"context_file_content":"","context_file_truncated":false,"context_file_os":"","context_file_directory":"","skill_description":"","skill_dir":"","context_file_skill_meta_file":""}"#,
            r#"{"type":"text","text":"x","url":"","media_type":"","file_name":"","start_line":0,"end_line":0,"content":"","context_file_path":"","skill_name":""}"#,
        ),
        (
            "ChatMessage",
            r#"{"id":1,"chat_id":"8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92","created_at":"2026-03-01T12:00:00Z","role":"assistant","content":[],"usage":{}}"#,
            r#"{"id":1,"chat_id":"8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92","created_at":"2026-03-01T12:00:00Z","role":"assistant"}"#,
        ),
        (
            "ChatError",
            r#"{"message":"m","detail":"","provider":"","retryable":false,"status_code":0}"#,
            r#"{"message":"m","retryable":false}"#,
        ),
        (
            "ChatStreamRetry",
            r#"{"attempt":1,"delay_ms":1000,"error":"e","provider":"","status_code":0,"retrying_at":"2026-03-01T12:00:01Z"}"#,
            r#"{"attempt":1,"delay_ms":1000,"error":"e","retrying_at":"2026-03-01T12:00:01Z"}"#,
        ),
        (
            "ChatDiffStatus",
            r#"{"chat_id":"8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92","url":"","pull_request_state":""}"#,
            r#"{"chat_id":"8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92","pull_request_title":"","pull_request_draft":false,"changes_requested":false,"additions":0,"deletions":0,"changed_files":0}"#,
        ),
        (
            "CreateChatMessageResponse",
            r#"{"queued":true,"warnings":[]}"#,
            r#"{"queued":true}"#,
        ),
        (
            "MCPServerConfig",
            &sample("MCPServerConfig", "minimal").replace(
                r#""auth_type":"none","#,
                r#""auth_type":"none","oauth2_client_id":"","oauth2_auth_url":"","oauth2_token_url":"","oauth2_scopes":"","api_key_header":"","#,
            ),
            &sample("MCPServerConfig", "minimal"),
        ),
    ];
    for (ty, input, want) in cases {
        assert_same(
            &format!("{ty} from {input}"),
            want,
            (WireType::get(ty).round_trip)(input),
        );
    }
    let chat = sample("Chat", "minimal").replace(
        r#""children":[]"#,
        r#""files":[],"last_injected_context":[],"warnings":[],"children":[]"#,
    );
    assert_same(
        "Chat with empty optional arrays",
        &sample("Chat", "minimal"),
        (WireType::get("Chat").round_trip)(&chat),
    );
}

#[test]
fn empty_enum_strings_are_omitted_like_go() {
    // (type, sample, field text in the sample, the same field present but empty)
    let cases: &[(&str, &str, &str)] = &[
        ("ChatError", "minimal", r#""retryable":false"#),
        ("ChatStreamRetry", "minimal", r#""retrying_at":"#),
        ("Chat", "minimal", r#""last_turn_summary":null"#),
        ("ChatModelProvider", "available", r#""models":["#),
    ];
    let empty = [
        r#""kind":"","#,
        r#""kind":"","#,
        r#""plan_mode":"","#,
        r#""unavailable_reason":"","#,
    ];
    for ((ty, name, anchor), field) in cases.iter().zip(empty) {
        let want = sample(ty, name);
        let input = replace_once(&want, anchor, &format!("{field}{anchor}"));
        assert_same(
            &format!("{ty}/{name} with {field}"),
            &want,
            (WireType::get(ty).round_trip)(&input),
        );
    }
}

#[test]
fn optional_arrays_tolerate_null_like_go() {
    // Go reads `null` into any slice; these omit-when-empty arrays never carry null from a
    // Go server, but a stored row or a hand-written client might.
    let chat = sample("Chat", "minimal").replace(
        r#""children":[]"#,
        r#""files":null,"last_injected_context":null,"warnings":null,"children":[]"#,
    );
    assert_same(
        "Chat with null optional arrays",
        &sample("Chat", "minimal"),
        (WireType::get("Chat").round_trip)(&chat),
    );
    let msg = replace_once(
        &sample("ChatMessage", "minimal"),
        r#""role":"assistant""#,
        r#""role":"assistant","content":null,"usage":null"#,
    );
    assert_same(
        "ChatMessage with null content",
        &sample("ChatMessage", "minimal"),
        (WireType::get("ChatMessage").round_trip)(&msg),
    );
    let cleared = replace_once(
        &sample("ChatStreamEvent", "queue_update-cleared"),
        r#""queued_messages":[]"#,
        r#""queued_messages":null"#,
    );
    assert!(serde_json::from_str::<ChatStreamEvent>(&cleared).is_ok());
}

// ---------------------------------------------------------------------------------------
// Tolerance (d): aliases and legacy values
// ---------------------------------------------------------------------------------------

#[test]
fn stream_silence_timeout_reads_as_startup_timeout() {
    let error = r#"{"message":"Anthropic did not start responding in time.","kind":"stream_silence_timeout","provider":"anthropic","retryable":true}"#;
    let parsed: ChatError = serde_json::from_str(error).unwrap();
    assert_eq!(parsed.kind, Some(ChatErrorKind::StartupTimeout));
    assert_same(
        "ChatError alias",
        &error.replace("stream_silence_timeout", "startup_timeout"),
        (WireType::get("ChatError").round_trip)(error),
    );

    let retry = replace_once(
        &sample("ChatStreamRetry", "full"),
        r#""kind":"rate_limit""#,
        r#""kind":"stream_silence_timeout""#,
    );
    assert_same(
        "ChatStreamRetry alias",
        &retry.replace("stream_silence_timeout", "startup_timeout"),
        (WireType::get("ChatStreamRetry").round_trip)(&retry),
    );

    let event = replace_once(
        &sample("ChatStreamEvent", "error"),
        r#""kind":"auth""#,
        r#""kind":"stream_silence_timeout""#,
    );
    assert_same(
        "ChatStreamEvent alias",
        &event.replace("stream_silence_timeout", "startup_timeout"),
        (WireType::get("ChatStreamEvent").round_trip)(&event),
    );
}

#[test]
fn legacy_statuses_deserialize() {
    for (legacy, want) in [
        ("paused", ChatStatus::Paused),
        ("completed", ChatStatus::Completed),
    ] {
        let status: ChatStreamStatus =
            serde_json::from_str(&format!(r#"{{"status":"{legacy}"}}"#)).unwrap();
        assert_eq!(status.status, want);
        let input = replace_once(
            &sample("Chat", "minimal"),
            r#""status":"pending""#,
            &format!(r#""status":"{legacy}""#),
        );
        let chat: Chat = serde_json::from_str(&input).unwrap();
        assert_eq!(chat.status, want);
        assert!(!chat.status.is_unknown());
        assert!(!chat.status.is_busy());
        assert_same(
            &format!("Chat {legacy}"),
            &input,
            (WireType::get("Chat").round_trip)(&input),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tolerance (e): prices are exact decimals, read from numbers or strings, written as strings
// ---------------------------------------------------------------------------------------

#[test]
fn prices_read_exactly_and_write_as_strings() {
    // (price on input, exact value, price on output)
    let cases: &[(&str, Decimal, &str)] = &[
        ("3.75", Decimal::new(375, 2), r#""3.75""#),
        (r#""3.75""#, Decimal::new(375, 2), r#""3.75""#),
        ("1e-7", Decimal::new(1, 7), r#""0.0000001""#),
        (r#""1e-7""#, Decimal::new(1, 7), r#""0.0000001""#),
        ("1E-7", Decimal::new(1, 7), r#""0.0000001""#),
        (r#""0.0000003""#, Decimal::new(3, 7), r#""0.0000003""#),
        ("0.0000003", Decimal::new(3, 7), r#""0.0000003""#),
        ("0.1", Decimal::new(1, 1), r#""0.1""#),
        ("3.750", Decimal::new(375, 2), r#""3.75""#),
        ("15", Decimal::new(15, 0), r#""15""#),
        ("0", Decimal::ZERO, r#""0""#),
        (r#""0""#, Decimal::ZERO, r#""0""#),
        ("1.5e2", Decimal::new(150, 0), r#""150""#),
        (
            "123456789.123456789",
            Decimal::new(123_456_789_123_456_789, 9),
            r#""123456789.123456789""#,
        ),
        (r#"" 2.5 ""#, Decimal::new(25, 1), r#""2.5""#),
    ];
    for (input, exact, output) in cases {
        let text = format!(r#"{{"input_price_per_million_tokens":{input}}}"#);
        let cfg: ModelCostConfig =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(cfg.input_price_per_million_tokens, Some(*exact), "{input}");
        assert_eq!(
            serde_json::to_string(&cfg).unwrap(),
            format!(r#"{{"input_price_per_million_tokens":{output}}}"#),
            "{input}"
        );
    }

    // Every price field, and the same prices nested in a model config and its requests.
    let numbers = r#"{"input_price_per_million_tokens":3,"output_price_per_million_tokens":15,"cache_read_price_per_million_tokens":0.3,"cache_write_price_per_million_tokens":3.75}"#;
    let strings = sample("ModelCostConfig", "full");
    assert_same(
        "ModelCostConfig numbers",
        &strings,
        (WireType::get("ModelCostConfig").round_trip)(numbers),
    );
    let model = sample("ChatModelConfig", "full");
    assert!(model.contains(&strings));
    assert_same(
        "ChatModelConfig numeric prices",
        &model,
        (WireType::get("ChatModelConfig").round_trip)(&model.replace(&strings, numbers)),
    );
    let create = sample("CreateChatModelConfigRequest", "full");
    let create_numbers = create.replace(r#""3""#, "3").replace(r#""15""#, "1.5e1");
    assert_ne!(create, create_numbers);
    assert_same(
        "CreateChatModelConfigRequest numeric prices",
        &create,
        (WireType::get("CreateChatModelConfigRequest").round_trip)(&create_numbers),
    );

    // Legacy layout: prices at the top level of model_config move into `cost`.
    let legacy = r#"{"temperature":0.2,"input_price_per_million_tokens":1e-7,"output_price_per_million_tokens":"0.0000003"}"#;
    assert_same(
        "legacy top-level prices",
        r#"{"temperature":0.2,"cost":{"input_price_per_million_tokens":"0.0000001","output_price_per_million_tokens":"0.0000003"}}"#,
        (WireType::get("ChatModelCallConfig").round_trip)(legacy),
    );

    // null means unpriced, not free.
    assert_same(
        "null price",
        "{}",
        (WireType::get("ModelCostConfig").round_trip)(r#"{"input_price_per_million_tokens":null}"#),
    );

    for bad in [
        r#""abc""#,
        "true",
        "[1]",
        r#"{"a":1}"#,
        r#""""#,
        r#""1e""#,
        r#""NaN""#,
        r#""Infinity""#,
        r#""1,5""#,
        r#""0x10""#,
        r#""1.2.3""#,
    ] {
        let text = format!(r#"{{"input_price_per_million_tokens":{bad}}}"#);
        assert!(
            serde_json::from_str::<ModelCostConfig>(&text).is_err(),
            "{bad} must be rejected"
        );
    }
    let too_long = format!(
        r#"{{"input_price_per_million_tokens":"{}"}}"#,
        "1".repeat(10_000)
    );
    assert!(serde_json::from_str::<ModelCostConfig>(&too_long).is_err());
    let too_precise = r#"{"input_price_per_million_tokens":1.2345678901234567890123456789}"#;
    assert!(
        serde_json::from_str::<ModelCostConfig>(too_precise).is_err(),
        "prices are never rounded"
    );
}

/// Runs `f` on another thread and fails if it does not finish within `secs`.
fn finishes_within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

#[test]
fn zero_price_with_huge_exponent_is_fast() {
    for price in [
        "0e-999999999999",
        r#""0e999999999999""#,
        "0.000e-4000000000",
    ] {
        let text = format!(r#"{{"input_price_per_million_tokens":{price}}}"#);
        let result = finishes_within(5, price, move || {
            serde_json::from_str::<ModelCostConfig>(&text).map(|c| c.input_price_per_million_tokens)
        });
        if let Ok(value) = result {
            assert_eq!(value, Some(Decimal::ZERO), "{price}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tolerance (f): hostile input gives errors, never panics
// ---------------------------------------------------------------------------------------

#[test]
fn truncated_samples_are_errors() {
    for wt in WIRE_TYPES {
        for (file, text) in samples_of(wt.name) {
            let full = compact(&text);
            let step = (full.len() / 200).max(1);
            let mut cut = 0;
            while cut < full.len() {
                if full.is_char_boundary(cut) {
                    assert!(
                        (wt.round_trip)(&full[..cut]).is_err(),
                        "{}/{file} truncated at {cut} was accepted",
                        wt.name
                    );
                }
                cut += step;
            }
            // The last few bytes one by one: the closing brackets matter most.
            for back in 1..8.min(full.len()) {
                let cut = full.len() - back;
                if full.is_char_boundary(cut) {
                    assert!(
                        (wt.round_trip)(&full[..cut]).is_err(),
                        "{}/{file} truncated at {cut} was accepted",
                        wt.name
                    );
                }
            }
        }
    }
}

#[test]
fn malformed_json_is_an_error() {
    for wt in WIRE_TYPES {
        let (_, text) = &samples_of(wt.name)[0];
        let full = compact(text);
        let mut broken = vec![
            String::new(),
            " ".to_owned(),
            "{".to_owned(),
            "}".to_owned(),
            format!("{full}}}"),
            format!("{full} x"),
            format!("{full},"),
            format!("\u{feff}{full}"),
            full.replacen(':', "", 1),
            full.replacen('"', "'", 2),
            full.replacen('{', "{,", 1),
            r#"{"a"}"#.to_owned(),
            "{'a':1}".to_owned(),
            "{a:1}".to_owned(),
            r#"{"a":1,}"#.to_owned(),
            r#"{"a":tru}"#.to_owned(),
            r#"{"a":01}"#.to_owned(),
            r#"{"a":"\x"}"#.to_owned(),
            "[".repeat(10),
        ];
        if full.len() > 2 {
            broken.push(format!("{},}}", &full[..full.len() - 1]));
        }
        for input in broken {
            assert!(
                (wt.round_trip)(&input).is_err(),
                "{}: {input:?} was accepted",
                wt.name
            );
        }
        // Valid JSON of the wrong shape: an error or an accepted value, never a panic.
        for input in ["null", "[]", "0", "\"x\"", "true", "[{}]", "{}"] {
            if let Err(e) = (wt.fixpoint)(input) {
                panic!("{}: {input}: {e}", wt.name);
            }
        }
    }
}

#[test]
fn wrong_types_in_every_field_never_panic() {
    let wrong = [
        json!(true),
        json!("x"),
        json!(""),
        json!(123),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(i64::MIN),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"x": [1]}),
        Value::Null,
    ];
    for wt in WIRE_TYPES {
        for (file, text) in samples_of(wt.name) {
            let base: Value = serde_json::from_str(&text).unwrap();
            let Value::Object(map) = &base else {
                unreachable!()
            };
            for key in map.keys() {
                for w in &wrong {
                    let mut v = base.clone();
                    v[key.as_str()] = w.clone();
                    let input = serde_json::to_string(&v).unwrap();
                    if let Err(e) = (wt.fixpoint)(&input) {
                        panic!("{}/{file} with {key} = {w}: {e}", wt.name);
                    }
                }
            }
        }
    }
}

/// A 1 MiB string with some multi-byte characters and escapes.
fn megabyte_string() -> String {
    let unit = "lorem ipsum 👩‍💻 Grüße \\n \\\" \\u0001 日本 ";
    let mut s = String::with_capacity(1 << 20);
    while s.len() < (1 << 20) {
        s.push_str(unit);
    }
    s
}

#[test]
fn megabyte_strings_round_trip() {
    let big = megabyte_string();
    // (type, sample, field text to replace, replacement template with BIG)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "Chat",
            "minimal",
            r#""title":"New Chat""#,
            r#""title":"BIG""#,
        ),
        (
            "ChatMessagePart",
            "text",
            r#""text":"I found"#,
            r#""text":"BIG I found"#,
        ),
        (
            "ChatMessagePart",
            "tool-call-args",
            r#""timeout_ms":120000"#,
            r#""timeout_ms":120000,"blob":"BIG""#,
        ),
        (
            "ChatMessagePart",
            "tool-result-error",
            r#""result":"open "#,
            r#""result":"BIG open "#,
        ),
        (
            "DynamicTool",
            "full",
            r#""description":"Trigger"#,
            r#""description":"BIG Trigger"#,
        ),
        (
            "ToolResult",
            "error",
            r#""output":"pipeline"#,
            r#""output":"BIG pipeline"#,
        ),
        (
            "ChatStreamEvent",
            "message_part-args-delta",
            r#""args_delta":"{"#,
            r#""args_delta":"BIG{"#,
        ),
        (
            "MCPServerConfig",
            "full",
            r#""description":"Issues"#,
            r#""description":"BIG Issues"#,
        ),
        (
            "ChatDebugRunSummary",
            "full",
            r#""first_message":"Fix"#,
            r#""first_message":"BIG Fix"#,
        ),
    ];
    for (ty, name, from, to) in cases {
        let input = replace_once(&sample(ty, name), from, &to.replace("BIG", &big));
        assert!(input.len() > 1 << 20);
        let out =
            (WireType::get(ty).round_trip)(&input).unwrap_or_else(|e| panic!("{ty}/{name}: {e}"));
        assert!(
            out == input,
            "{ty}/{name}: 1 MiB string did not round-trip; {}",
            first_difference(&input, &out)
        );
    }
}

#[test]
fn raw_control_characters_in_strings_are_errors() {
    let base = sample("ChatMessagePart", "text");
    for c in (0u8..0x20).map(char::from) {
        let input = replace_once(&base, "I found", &format!("I{c}found"));
        assert!(
            (WireType::get("ChatMessagePart").round_trip)(&input).is_err(),
            "raw {c:?} accepted"
        );
        // Inside raw JSON too.
        let args = replace_once(
            &sample("ChatMessagePart", "tool-call-args"),
            "GOFLAGS",
            &format!("GO{c}FLAGS"),
        );
        assert!(
            (WireType::get("ChatMessagePart").round_trip)(&args).is_err(),
            "raw {c:?} accepted in args"
        );
    }
    // Escaped control characters, DEL, line separators and emoji are fine and kept.
    let escaped = replace_once(&base, "I found", r#"I\u0001\u001f\b\f\n\r\t found"#);
    assert_same(
        "escaped controls",
        &escaped,
        (WireType::get("ChatMessagePart").round_trip)(&escaped),
    );
    let raw_ok = replace_once(&base, "I found", "I\u{7f}\u{2028}\u{2029}😀 found");
    assert_same(
        "DEL and separators",
        &raw_ok,
        (WireType::get("ChatMessagePart").round_trip)(&raw_ok),
    );
    // Escapes serde_json writes differently are still read; output is canonical and stable.
    let alt = replace_once(&base, "I found", r#"I\u0041\/\u00e9\ud83d\ude00 found"#);
    let out = (WireType::get("ChatMessagePart").round_trip)(&alt).unwrap();
    assert!(out.contains("IA/é😀 found"), "{out}");
    // Invalid escapes and lone surrogates in typed strings are errors, not panics.
    for bad in [
        r#"I\x found"#,
        r#"I\u12 found"#,
        r#"I\ud800 found"#,
        r#"I\udc00\u0041 found"#,
    ] {
        let input = replace_once(&base, "I found", bad);
        let _ = (WireType::get("ChatMessagePart").round_trip)(&input);
        if let Err(e) = (WireType::get("ChatMessagePart").fixpoint)(&input) {
            panic!("{bad}: {e}");
        }
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    const DEEP: usize = 100_000;
    for deep in [nested(DEEP), nested_objects(DEEP), "[".repeat(DEEP)] {
        // (type, sample, field text, replacement with DEEP)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "ChatMessagePart",
                "tool-call-args",
                r#""args":{"#,
                r#""args":DEEP,"x":{"#,
            ),
            (
                "ChatMessagePart",
                "tool-result",
                r#""result":{"#,
                r#""result":DEEP,"x":{"#,
            ),
            (
                "ChatMessagePart",
                "stored-context-file",
                r#""provider_metadata":{"#,
                r#""provider_metadata":DEEP,"x":{"#,
            ),
            (
                "DynamicTool",
                "full",
                r#""input_schema":{"#,
                r#""input_schema":DEEP,"x":{"#,
            ),
            (
                "CreateChatRequest",
                "full",
                r#""input_schema":{"#,
                r#""input_schema":DEEP,"x":{"#,
            ),
            (
                "ToolResult",
                "full",
                r#""output":{"#,
                r#""output":DEEP,"x":{"#,
            ),
            (
                "ChatDebugRunSummary",
                "full",
                r#""summary":{"#,
                r#""summary":DEEP,"x":{"#,
            ),
            (
                "ChatDebugStep",
                "full",
                r#""attempts":["#,
                r#""attempts":[DEEP,"#,
            ),
            (
                "ChatModelOpenAIProviderOptions",
                "full",
                r#""metadata":{"#,
                r#""metadata":{"deep":DEEP,"#,
            ),
            (
                "ChatModelOpenRouterProviderOptions",
                "full",
                r#""extra_body":{"#,
                r#""extra_body":{"deep":DEEP,"#,
            ),
            ("Chat", "full", r#""labels":{"#, r#""labels":{"deep":DEEP,"#),
            (
                "Chat",
                "minimal",
                r#""title":"New Chat""#,
                r#""title":DEEP"#,
            ),
            (
                "ChatStreamEvent",
                "message",
                r#""content":[{"#,
                r#""content":[DEEP,{"#,
            ),
            (
                "ChatStreamEvent",
                "message_part",
                r#""part":{"#,
                r#""part":{"args":DEEP,"#,
            ),
            (
                "ChatMessagesResponse",
                "full",
                r#""messages":["#,
                r#""messages":[DEEP,"#,
            ),
            (
                "ChatModelCallConfig",
                "full",
                r#""cost":{"#,
                r#""cost":{"input_price_per_million_tokens":DEEP,"#,
            ),
            (
                "ChatCostSummary",
                "full",
                r#""by_model":["#,
                r#""by_model":[DEEP,"#,
            ),
            (
                "ChatUsageLimitConfigResponse",
                "full",
                r#""overrides":["#,
                r#""overrides":[DEEP,"#,
            ),
        ];
        for (ty, name, from, to) in cases {
            let input = replace_once(&sample(ty, name), from, &to.replace("DEEP", &deep));
            assert!(
                (WireType::get(ty).round_trip)(&input).is_err(),
                "{ty}/{name}: deep input accepted"
            );
        }
        // A deep value in an unknown field is skipped (iteratively) or rejected; no crash.
        let unknown = replace_once(
            &sample("ChatModelCallConfig", "full"),
            r#""max_output_tokens":32000"#,
            &format!(r#""max_output_tokens":32000,"x":{deep}"#),
        );
        match (WireType::get("ChatModelCallConfig").round_trip)(&unknown) {
            Ok(out) => assert_eq!(out, sample("ChatModelCallConfig", "full")),
            Err(e) => assert!(!e.is_empty()),
        }
        // Deep nesting as the whole document: arrays are rejected; a deep object's only key
        // is unknown, so types whose fields all have defaults may skip it (iteratively).
        if deep.starts_with('[') {
            for wt in WIRE_TYPES {
                assert!(
                    (wt.round_trip)(&deep).is_err(),
                    "{}: deep document accepted",
                    wt.name
                );
            }
        } else {
            for ty in [
                "ChatError",
                "ChatMessageUsage",
                "UpdateChatRequest",
                "Chat",
                "ChatMessagePart",
            ] {
                if let Err(e) = (WireType::get(ty).fixpoint)(&deep) {
                    panic!("{ty}: deep object: {e}");
                }
            }
        }
    }
}

#[test]
fn raw_json_depth_limit_edge() {
    let at_limit = nested(MAX_RAW_JSON_DEPTH);
    let over = nested(MAX_RAW_JSON_DEPTH + 1);
    let base = sample("ChatMessagePart", "tool-call-minimal");
    let with = |args: &str| {
        replace_once(
            &base,
            r#""text":"","#,
            &format!(r#""text":"","args":{args},"#),
        )
    };
    assert_same(
        "args at the depth limit",
        &with(&at_limit),
        (WireType::get("ChatMessagePart").round_trip)(&with(&at_limit)),
    );
    assert!((WireType::get("ChatMessagePart").round_trip)(&with(&over)).is_err());
    // The limit counts the raw value's own nesting, not where it sits in the document.
    let event = format!(
        r#"{{"type":"message_part","chat_id":"8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92","message_part":{{"role":"assistant","part":{}}}}}"#,
        with(&at_limit)
    );
    assert_same(
        "args at the limit inside an event",
        &event,
        (WireType::get("ChatStreamEvent").round_trip)(&event),
    );
    // Brackets inside strings do not count.
    let stringy = with(&format!("\"{}\"", "[".repeat(100_000)));
    assert_same(
        "brackets in a string",
        &stringy,
        (WireType::get("ChatMessagePart").round_trip)(&stringy),
    );
}

// ---------------------------------------------------------------------------------------
// Output that must always be readable again
// ---------------------------------------------------------------------------------------

#[test]
fn timestamps_round_trip_to_go_rfc3339nano() {
    let base = sample("ChatFileMetadata", "minimal");
    let at = |ts: &str| {
        replace_once(
            &base,
            r#""created_at":"2026-03-01T11:59:58Z""#,
            &format!(r#""created_at":"{ts}""#),
        )
    };
    for (input, output) in [
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),
        ("2026-03-01T12:00:00.5Z", "2026-03-01T12:00:00.5Z"),
        ("2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00.123456Z"),
        (
            "2026-03-01T12:00:00.987654321Z",
            "2026-03-01T12:00:00.987654321Z",
        ),
        ("2026-03-01T12:00:00.120000000Z", "2026-03-01T12:00:00.12Z"),
        ("2026-03-01T14:00:00+02:00", "2026-03-01T12:00:00Z"),
        ("2026-03-01T12:00:00.25-00:30", "2026-03-01T12:30:00.25Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        (
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59.999999999Z",
        ),
    ] {
        assert_same(
            input,
            &at(output),
            (WireType::get("ChatFileMetadata").round_trip)(&at(input)),
        );
    }
    for bad in [
        "2026-03-01",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "1772366400",
        "",
        "2026-03-01T12:00:00",
        "yesterday",
    ] {
        assert!(
            (WireType::get("ChatFileMetadata").round_trip)(&at(bad)).is_err(),
            "{bad} accepted"
        );
    }
}

#[test]
fn timestamps_out_of_go_range_are_rejected_or_readable() {
    let base = sample("ChatFileMetadata", "minimal");
    for ts in ["9999-12-31T23:00:00-05:00", "0000-01-01T00:00:00+01:00"] {
        let input = replace_once(
            &base,
            r#""created_at":"2026-03-01T11:59:58Z""#,
            &format!(r#""created_at":"{ts}""#),
        );
        if let Err(e) = (WireType::get("ChatFileMetadata").fixpoint)(&input) {
            panic!("{ts}: {e}");
        }
    }
}

#[test]
fn f64_fields_are_fixpoints() {
    assert!(
        float_parsing_is_exact(),
        "serde_json float parsing is not exact"
    );
    for t in [
        "1.0620592472777611e17",
        "0.30000000000000004",
        "1.7976931348623157e308",
        "5e-324",
        "123456.78901234567",
    ] {
        let input = format!(r#"{{"temperature":{t},"top_p":{t}}}"#);
        let first = (WireType::get("ChatModelCallConfig").round_trip)(&input).unwrap();
        let second = (WireType::get("ChatModelCallConfig").round_trip)(&first).unwrap();
        assert_eq!(first, second, "{t}");
        let options = format!(r#"{{"metadata":{{"x":{t}}}}}"#);
        let first = (WireType::get("ChatModelOpenAIProviderOptions").round_trip)(&options).unwrap();
        let second = (WireType::get("ChatModelOpenAIProviderOptions").round_trip)(&first).unwrap();
        assert_eq!(first, second, "{t}");
    }
}

#[test]
fn floats_are_written_like_go() {
    for input in [
        r#"{"temperature":1,"top_p":1,"presence_penalty":0,"frequency_penalty":-2}"#,
        r#"{"temperature":0.000001,"top_p":0.5}"#,
        r#"{"temperature":100000000000000000000}"#,
        r#"{"temperature":1e+21,"top_p":1e-7}"#,
    ] {
        assert_same(
            "Go float format",
            input,
            (WireType::get("ChatModelCallConfig").round_trip)(input),
        );
    }
}

#[test]
fn numbers_keep_their_precision_where_they_are_raw() {
    // int64 message ids beyond 2^53 and raw numbers in args are not squeezed through f64.
    let full = sample("ChatMessage", "full");
    assert!(full.contains(r#""id":9007199254740993"#));
    let args = sample("ChatMessagePart", "tool-call-args");
    assert!(args.contains("1.000000000000000000001"));
    let m: ChatMessage = serde_json::from_str(&full).unwrap();
    assert_eq!(m.id, 9_007_199_254_740_993);
    for id in [i64::MAX, i64::MIN, 0, -1] {
        let input = replace_once(
            &sample("ChatMessage", "minimal"),
            r#""id":1"#,
            &format!(r#""id":{id}"#),
        );
        assert_same(
            &format!("id {id}"),
            &input,
            (WireType::get("ChatMessage").round_trip)(&input),
        );
    }
    for bad in ["9223372036854775808", "1.5", "\"1\"", "1e3"] {
        let input = replace_once(
            &sample("ChatMessage", "minimal"),
            r#""id":1"#,
            &format!(r#""id":{bad}"#),
        );
        assert!(
            (WireType::get("ChatMessage").round_trip)(&input).is_err(),
            "id {bad} accepted"
        );
    }
}

#[test]
fn secrets_are_sent_but_never_printed() {
    let req: CreateChatProviderConfigRequest =
        serde_json::from_str(&sample("CreateChatProviderConfigRequest", "full")).unwrap();
    let debug = format!("{req:?}");
    assert!(!debug.contains("sk-internal-4f7a9c2e1b8d"), "{debug}");
    let mcp: CreateMCPServerConfigRequest =
        serde_json::from_str(&sample("CreateMCPServerConfigRequest", "full")).unwrap();
    let debug = format!("{mcp:?}");
    for secret in ["s3cr3t-oauth-value", "Bearer jira-key-123", "do-not-log-me"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    let headers: UpdateMCPServerUserHeadersRequest =
        serde_json::from_str(&sample("UpdateMCPServerUserHeadersRequest", "full")).unwrap();
    assert!(!format!("{headers:?}").contains("atl-personal-token-99"));
}

// ---------------------------------------------------------------------------------------
// Property test: random mutations of every sample
// ---------------------------------------------------------------------------------------

/// A step of a JSON path.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Idx(usize),
}

/// One random change to a JSON document. `node` picks among the nodes the change applies
/// to (modulo their number), so every mutation applies to any document.
#[derive(Debug, Clone)]
enum Mutation {
    DropField {
        node: usize,
        key: usize,
    },
    SetNull {
        node: usize,
    },
    SetString {
        node: usize,
        s: String,
    },
    SetNumber {
        node: usize,
        n: Number,
    },
    EmptyArray {
        node: usize,
    },
    GrowArray {
        node: usize,
        extra: usize,
    },
    InsertUnknown {
        node: usize,
        key: String,
        value: Value,
    },
    Retype {
        node: usize,
        value: Value,
    },
}

fn collect_paths(v: &Value, want: fn(&Value) -> bool, cur: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    if want(v) {
        out.push(cur.clone());
    }
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                cur.push(Seg::Idx(i));
                collect_paths(item, want, cur, out);
                cur.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                cur.push(Seg::Key(k.clone()));
                collect_paths(item, want, cur, out);
                cur.pop();
            }
        }
        _ => {}
    }
}

/// The `node`-th node (modulo their count) for which `want` holds.
fn pick(root: &mut Value, node: usize, want: fn(&Value) -> bool) -> Option<&mut Value> {
    let mut paths = Vec::new();
    collect_paths(root, want, &mut Vec::new(), &mut paths);
    if paths.is_empty() {
        return None;
    }
    let path = paths.swap_remove(node % paths.len());
    let mut v = root;
    for seg in path {
        v = match seg {
            Seg::Key(k) => v.get_mut(&k).unwrap(),
            Seg::Idx(i) => &mut v[i],
        };
    }
    Some(v)
}

fn apply(root: &mut Value, m: &Mutation) {
    match m {
        Mutation::DropField { node, key } => {
            if let Some(Value::Object(map)) = pick(root, *node, Value::is_object) {
                if let Some(k) = map.keys().nth(key % map.len().max(1)).cloned() {
                    map.remove(&k);
                }
            }
        }
        Mutation::SetNull { node } => {
            if let Some(v) = pick(root, *node, |_| true) {
                *v = Value::Null;
            }
        }
        Mutation::SetString { node, s } => {
            if let Some(v) = pick(root, *node, Value::is_string) {
                *v = Value::String(s.clone());
            }
        }
        Mutation::SetNumber { node, n } => {
            if let Some(v) = pick(root, *node, Value::is_number) {
                *v = Value::Number(n.clone());
            }
        }
        Mutation::EmptyArray { node } => {
            if let Some(Value::Array(items)) = pick(root, *node, Value::is_array) {
                items.clear();
            }
        }
        Mutation::GrowArray { node, extra } => {
            if let Some(Value::Array(items)) = pick(root, *node, Value::is_array) {
                if !items.is_empty() {
                    for i in 0..*extra {
                        let copy = items[i % items.len()].clone();
                        items.push(copy);
                    }
                }
            }
        }
        Mutation::InsertUnknown { node, key, value } => {
            if let Some(Value::Object(map)) = pick(root, *node, Value::is_object) {
                map.insert(key.clone(), value.clone());
            }
        }
        Mutation::Retype { node, value } => {
            if let Some(v) = pick(root, *node, |_| true) {
                *v = value.clone();
            }
        }
    }
}

/// Strings that mean something somewhere in the wire types, so that mutated documents
/// often still deserialize and exercise the interesting paths.
const MEANINGFUL_STRINGS: &[&str] = &[
    "",
    "plan",
    "text",
    "tool-call",
    "hook-notice",
    "message_part",
    "queue_update",
    "preview_reset",
    "waiting",
    "paused",
    "interrupting",
    "assistant",
    "tool",
    "stream_silence_timeout",
    "hook_denied",
    "status_change",
    "context_dirty",
    "month",
    "default_on",
    "oauth2",
    "00000000-0000-0000-0000-000000000000",
    "8c3f2a1e-5b7d-4e9f-a2c6-3b8d1f4e7a92",
    "2026-03-01T12:00:00.123456Z",
    "2026-03-01T14:00:00.1+02:00",
    "3.75",
    "1e-7",
    " 0.0000003 ",
    "-0",
    "{\"a\":1}",
    "[]",
    "null",
];

fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        2 => prop::sample::select(vec![
            '😀', '👩', '\u{200d}', '💻', '\u{7f}', '\u{2028}', '\u{2029}', '"', '\\', '/', '<',
            '&', 'é', '日', '\u{feff}', '\u{fffd}', '\u{10ffff}',
        ]),
        3 => prop::char::range('a', 'z'),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(arb_char(), 0..16).prop_map(String::from_iter),
        3 => prop::sample::select(MEANINGFUL_STRINGS).prop_map(str::to_owned),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => (-62_135_596_800i64..253_402_300_799i64, 0u32..1_000_000_000)
            .prop_map(|(s, ns)| Timestamp(chrono::DateTime::from_timestamp(s, ns).unwrap()).to_string()),
    ]
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-3i64..300).prop_map(Number::from),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"x": [1]})),
        Just(json!([])),
        Just(json!({})),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_string().prop_map(Value::String),
        arb_number().prop_map(Value::Number),
    ]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let node = || any::<usize>();
    prop_oneof![
        3 => (node(), any::<usize>()).prop_map(|(node, key)| Mutation::DropField { node, key }),
        2 => node().prop_map(|node| Mutation::SetNull { node }),
        4 => (node(), arb_string()).prop_map(|(node, s)| Mutation::SetString { node, s }),
        2 => (node(), arb_number()).prop_map(|(node, n)| Mutation::SetNumber { node, n }),
        1 => node().prop_map(|node| Mutation::EmptyArray { node }),
        2 => (node(), 1usize..4).prop_map(|(node, extra)| Mutation::GrowArray { node, extra }),
        2 => (node(), prop_oneof![Just("some_future_field".to_owned()), arb_string()], arb_value())
            .prop_map(|(node, key, value)| Mutation::InsertUnknown { node, key, value }),
        1 => (node(), arb_value()).prop_map(|(node, value)| Mutation::Retype { node, value }),
    ]
}

fn check_fixpoint(ty: &str) {
    let wt = WireType::get(ty);
    let bases: Vec<Value> = samples_of(ty)
        .iter()
        .map(|(_, text)| serde_json::from_str(text).unwrap())
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..bases.len(), prop::collection::vec(arb_mutation(), 1..5));
    let result = runner.run(&strategy, |(i, mutations)| {
        let mut doc = bases[i].clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        let text = serde_json::to_string(&doc).unwrap();
        (wt.fixpoint)(&text).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{ty}: {e}");
    }
}

#[test]
fn mutations_apply_as_intended() {
    let mut doc = json!({"a": [1, 2], "b": {"c": "x"}});
    apply(&mut doc, &Mutation::GrowArray { node: 0, extra: 3 });
    assert_eq!(doc["a"], json!([1, 2, 1, 2, 1]));
    apply(
        &mut doc,
        &Mutation::SetString {
            node: 0,
            s: "y".into(),
        },
    );
    assert_eq!(doc["b"]["c"], json!("y"));
    apply(
        &mut doc,
        &Mutation::InsertUnknown {
            node: 1,
            key: "k".into(),
            value: Value::Null,
        },
    );
    assert_eq!(doc["b"]["k"], Value::Null);
    apply(&mut doc, &Mutation::DropField { node: 0, key: 0 });
    assert!(doc.get("a").is_none());
    apply(&mut doc, &Mutation::SetNull { node: 0 });
    assert_eq!(doc, Value::Null);
}
