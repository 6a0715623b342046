//! Drift checks for the generated artefacts under `bindings/`: the TypeScript types
//! (ts-rs) and the JSON Schemas of request bodies (schemars).
//!
//! Regenerate with `CHATD_UPDATE_BINDINGS=1 cargo test -p codersdk --test it generated`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codersdk::*;
use ts_rs::TS;

fn bindings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings")
}

fn updating() -> bool {
    std::env::var("CHATD_UPDATE_BINDINGS").is_ok_and(|v| v == "1")
}

/// Every wire type whose TypeScript we publish; dependencies are exported with them.
macro_rules! ts_types {
    ($($t:ty),+ $(,)?) => {
        /// Exports every listed type and its dependencies into `dir`.
        fn export_ts(cfg: &ts_rs::Config) {
            $( <$t as TS>::export_all(cfg).expect("export"); )+
        }
    };
}

ts_types![
    // errors
    ChatError,
    ChatErrorKind,
    ChatStreamRetry,
    Response,
    ValidationError,
    // chats
    Chat,
    ChatStatus,
    ChatPlanMode,
    ChatClientType,
    ChatDiffStatus,
    ChatDiffContents,
    ChatFileMetadata,
    UploadChatFileResponse,
    // messages
    ChatMessage,
    ChatMessageRole,
    ChatMessagePart,
    ChatMessagePartType,
    ChatMessageUsage,
    ChatQueuedMessage,
    ChatMessagesResponse,
    // requests
    ChatInputPart,
    ChatInputPartType,
    CreateChatRequest,
    UpdateChatRequest,
    ChatBusyBehavior,
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
    ChatStreamEventType,
    ChatStreamMessagePart,
    ChatStreamStatus,
    ChatStreamActionRequired,
    ChatWatchEvent,
    ChatWatchEventKind,
    // providers and models
    ProviderId,
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
    ChatProviderConfigSource,
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
    ChatModelProviderUnavailableReason,
    ChatModelOverrideContext,
    ChatModelOverrideResponse,
    UpdateChatModelOverrideRequest,
    ChatPersonalModelOverridesAdminSettings,
    ChatPersonalModelOverrideContext,
    ChatPersonalModelOverrideMode,
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
    ChatUsageLimitPeriod,
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
    MCPServerTransport,
    MCPServerAuthType,
    MCPServerAvailability,
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
    ChatComputerUseProvider,
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
    ChatDebugRunKind,
    ChatDebugStatus,
    ChatDebugStepOperation,
    ChatDebugRunSummary,
    ChatDebugStep,
    ChatDebugRun,
    // users and tokens
    UserStatus,
    LoginType,
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

/// Request names that are Rust type aliases. ts-rs exports types, not aliases, so each is
/// written as `export type Alias = Target;` into `bindings/Alias.ts`, so that TypeScript has
/// every name Coder's generated types have (`UpdateChatRetentionDaysRequest`, …). The
/// function pointer proves at compile time that the alias is the target type.
macro_rules! ts_aliases {
    ($($alias:ident => $target:ty),+ $(,)?) => {
        /// `(alias, target)` as TypeScript names, in declaration order.
        fn ts_aliases() -> Vec<(&'static str, String)> {
            vec![$({
                let _same_type: fn($alias) -> $target = |x| x;
                (stringify!($alias), <$target as TS>::name(&ts_config()))
            }),+]
        }
    };
}

ts_aliases![
    DynamicToolCall => ChatStreamToolCall,
    UpdateAdvisorConfigRequest => AdvisorConfig,
    UpdateChatAutoArchiveDaysRequest => ChatAutoArchiveDaysResponse,
    UpdateChatComputerUseProviderRequest => ChatComputerUseProviderResponse,
    UpdateChatDebugRetentionDaysRequest => ChatDebugRetentionDaysResponse,
    UpdateChatDesktopEnabledRequest => ChatDesktopEnabledResponse,
    UpdateChatPersonalModelOverridesAdminSettingsRequest => ChatPersonalModelOverridesAdminSettings,
    UpdateChatPlanModeInstructionsRequest => ChatPlanModeInstructionsResponse,
    UpdateChatRetentionDaysRequest => ChatRetentionDaysResponse,
    UpdateChatTemplateAllowlistRequest => ChatTemplateAllowlist,
    UpdateChatWorkspaceTTLRequest => ChatWorkspaceTTLResponse,
    UpsertChatUsageLimitGroupOverrideRequest => UpsertChatUsageLimitOverrideRequest,
];

/// Rust aliases that are not wire names, so not exported: `JsonObject` is how free-form
/// option objects are spelled in Rust (TypeScript inlines the map), the rest belong to the
/// typed client.
const NOT_EXPORTED_ALIASES: &[&str] = &[
    "JsonObject",
    "Result",
    "ChatEventStream",
    "WatchEventStream",
];

/// The TypeScript file of an alias: its target imported and re-declared under the alias.
fn alias_file(alias: &str, target: &str) -> String {
    format!(
        "// Generated by codersdk's `generated` test from a Rust type alias (ts-rs exports \
         types, not aliases). Do not edit this file manually.\n\
         import type {{ {target} }} from \"./{target}\";\n\n\
         /**\n * Another name for `{target}`: the same JSON shape.\n */\n\
         export type {alias} = {target};\n"
    )
}

/// JSON Schemas published for request bodies (and the dynamic-tool shapes).
fn schemas() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    macro_rules! schema {
        ($name:literal, $t:ty) => {
            let s = schemars::schema_for!($t);
            let mut text = serde_json::to_string_pretty(&s).expect("schema json");
            text.push('\n');
            out.insert(format!("{}.json", $name), text);
        };
    }
    schema!("CreateChatRequest", CreateChatRequest);
    schema!("UpdateChatRequest", UpdateChatRequest);
    schema!("CreateChatMessageRequest", CreateChatMessageRequest);
    schema!("EditChatMessageRequest", EditChatMessageRequest);
    schema!("SubmitToolResultsRequest", SubmitToolResultsRequest);
    schema!("DynamicTool", DynamicTool);
    schema!("ToolResult", ToolResult);
    schema!("ChatStreamToolCall", ChatStreamToolCall);
    schema!(
        "CreateChatProviderConfigRequest",
        CreateChatProviderConfigRequest
    );
    schema!(
        "UpdateChatProviderConfigRequest",
        UpdateChatProviderConfigRequest
    );
    schema!(
        "CreateUserChatProviderKeyRequest",
        CreateUserChatProviderKeyRequest
    );
    schema!("CreateChatModelConfigRequest", CreateChatModelConfigRequest);
    schema!("UpdateChatModelConfigRequest", UpdateChatModelConfigRequest);
    schema!("ChatModelCallConfig", ChatModelCallConfig);
    schema!(
        "UpdateChatModelOverrideRequest",
        UpdateChatModelOverrideRequest
    );
    schema!(
        "UpdateChatPersonalModelOverridesAdminSettingsRequest",
        UpdateChatPersonalModelOverridesAdminSettingsRequest
    );
    schema!(
        "UpdateUserChatPersonalModelOverrideRequest",
        UpdateUserChatPersonalModelOverrideRequest
    );
    schema!("ChatUsageLimitConfig", ChatUsageLimitConfig);
    schema!("CreateGroupRequest", CreateGroupRequest);
    schema!("PatchGroupRequest", PatchGroupRequest);
    schema!(
        "CreateAIBridgeProviderInstanceRequest",
        CreateAIBridgeProviderInstanceRequest
    );
    schema!(
        "UpdateAIBridgeProviderInstanceRequest",
        UpdateAIBridgeProviderInstanceRequest
    );
    schema!(
        "UpsertChatUsageLimitOverrideRequest",
        UpsertChatUsageLimitOverrideRequest
    );
    schema!("CreateMCPServerConfigRequest", CreateMCPServerConfigRequest);
    schema!("UpdateMCPServerConfigRequest", UpdateMCPServerConfigRequest);
    schema!(
        "UpdateMCPServerUserHeadersRequest",
        UpdateMCPServerUserHeadersRequest
    );
    schema!(
        "UpdateChatSystemPromptRequest",
        UpdateChatSystemPromptRequest
    );
    schema!(
        "UpdateChatPlanModeInstructionsRequest",
        UpdateChatPlanModeInstructionsRequest
    );
    schema!(
        "UpdateChatDesktopEnabledRequest",
        UpdateChatDesktopEnabledRequest
    );
    schema!(
        "UpdateChatComputerUseProviderRequest",
        UpdateChatComputerUseProviderRequest
    );
    schema!(
        "UpdateChatDebugLoggingAllowUsersRequest",
        UpdateChatDebugLoggingAllowUsersRequest
    );
    schema!(
        "UpdateUserChatDebugLoggingRequest",
        UpdateUserChatDebugLoggingRequest
    );
    schema!("UpdateAdvisorConfigRequest", UpdateAdvisorConfigRequest);
    schema!("UserChatCustomPrompt", UserChatCustomPrompt);
    schema!(
        "UpdateUserChatCompactionThresholdRequest",
        UpdateUserChatCompactionThresholdRequest
    );
    schema!(
        "UpdateChatWorkspaceTTLRequest",
        UpdateChatWorkspaceTTLRequest
    );
    schema!(
        "UpdateChatRetentionDaysRequest",
        UpdateChatRetentionDaysRequest
    );
    schema!(
        "UpdateChatDebugRetentionDaysRequest",
        UpdateChatDebugRetentionDaysRequest
    );
    schema!(
        "UpdateChatAutoArchiveDaysRequest",
        UpdateChatAutoArchiveDaysRequest
    );
    schema!(
        "UpdateChatTemplateAllowlistRequest",
        UpdateChatTemplateAllowlistRequest
    );
    schema!("CreateUserRequest", CreateUserRequest);
    schema!("UpdateRoles", UpdateRoles);
    schema!("CreateTokenRequest", CreateTokenRequest);
    out
}

fn ts_config() -> ts_rs::Config {
    // JSON numbers, as Coder's generated types use: ids stay well below 2^53.
    ts_rs::Config::new().with_large_int("number")
}

/// The full expected content of `bindings/` (TypeScript files and `index.ts`).
fn expected_ts() -> BTreeMap<String, String> {
    static FILES: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    FILES
        .get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let dir =
                std::env::temp_dir().join(format!("chatd-bindings-{}-{nanos}", std::process::id()));
            export_ts(&ts_config().with_out_dir(&dir));
            let mut files = BTreeMap::new();
            collect(&dir, &dir, &mut files);
            std::fs::remove_dir_all(&dir).unwrap();
            for (alias, target) in ts_aliases() {
                assert!(
                    files.contains_key(&format!("{target}.ts")),
                    "{alias} aliases {target}, which is not exported"
                );
                let previous = files.insert(format!("{alias}.ts"), alias_file(alias, &target));
                assert!(previous.is_none(), "{alias} is also a generated type");
            }
            let mut index = String::from(
                "// Generated by codersdk's `generated` test. Do not edit this file manually.\n",
            );
            for name in files.keys() {
                let module = name.trim_end_matches(".ts");
                index.push_str(&format!("export * from \"./{module}\";\n"));
            }
            files.insert("index.ts".to_owned(), index);
            files
        })
        .clone()
}

/// Reads every file below `dir` keyed by its path relative to `root` (with `/`).
fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Compares (or, when updating, rewrites) the generated files in `dir` with `*.ext`.
fn check_dir(dir: &Path, ext: &str, expected: &BTreeMap<String, String>, keep: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut existing = BTreeMap::new();
    collect(dir, dir, &mut existing);
    // Only files of this kind, outside node_modules, are ours to judge.
    let stale: Vec<String> = existing
        .keys()
        .filter(|n| {
            n.ends_with(ext) && !n.starts_with("node_modules/") && !n.starts_with("schemas/")
        })
        .filter(|n| !expected.contains_key(*n) && !keep.contains(&n.as_str()))
        .cloned()
        .collect();
    if updating() {
        for name in &stale {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        for (name, content) in expected {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        return;
    }
    let mut problems = Vec::new();
    for (name, content) in expected {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(actual) if &actual == content => {}
            Ok(_) => problems.push(format!("{name}: differs")),
            Err(_) => problems.push(format!("{name}: missing")),
        }
    }
    for name in stale {
        problems.push(format!("{name}: stale (no longer generated)"));
    }
    assert!(
        problems.is_empty(),
        "generated files in {} are out of date; run `CHATD_UPDATE_BINDINGS=1 cargo test -p codersdk --test it generated`:\n{}",
        dir.display(),
        problems.join("\n")
    );
}

#[test]
fn typescript_bindings_are_up_to_date() {
    // check.ts is hand-written; it lives beside the generated files.
    check_dir(&bindings_dir(), ".ts", &expected_ts(), &["check.ts"]);
}

#[test]
fn json_schemas_are_up_to_date() {
    check_dir(&bindings_dir().join("schemas"), ".json", &schemas(), &[]);
}

#[test]
fn every_rust_type_alias_is_exported() {
    // A new `pub type` in codersdk must be exported (listed in `ts_aliases!`) or named in
    // NOT_EXPORTED_ALIASES; otherwise TypeScript silently lacks the name.
    let mut sources = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    collect(&src, &src, &mut sources);
    let mut found = Vec::new();
    for text in sources.values() {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub type ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
    }
    let exported: Vec<&str> = ts_aliases().iter().map(|(a, _)| *a).collect();
    let missing: Vec<&String> = found
        .iter()
        .filter(|n| !exported.contains(&n.as_str()) && !NOT_EXPORTED_ALIASES.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "Rust aliases without TypeScript: {missing:?}"
    );
    for alias in &exported {
        assert!(
            found.iter().any(|n| n == alias),
            "{alias} is not a codersdk alias"
        );
    }
    // Every exported alias is a file of its own and re-exported by index.ts.
    let files = expected_ts();
    let index = files.get("index.ts").unwrap();
    for (alias, target) in ts_aliases() {
        let file = files.get(&format!("{alias}.ts")).unwrap();
        assert!(
            file.contains(&format!("export type {alias} = {target};")),
            "{file}"
        );
        assert!(
            index.contains(&format!("export * from \"./{alias}\";")),
            "{alias}"
        );
    }
}

#[test]
fn coders_request_names_are_present() {
    // Names Coder's generated TypeScript declares that are Rust aliases here.
    let coder_names = [
        "DynamicToolCall",
        "UpdateAdvisorConfigRequest",
        "UpdateChatAutoArchiveDaysRequest",
        "UpdateChatComputerUseProviderRequest",
        "UpdateChatDebugRetentionDaysRequest",
        "UpdateChatPersonalModelOverridesAdminSettingsRequest",
        "UpdateChatPlanModeInstructionsRequest",
        "UpdateChatRetentionDaysRequest",
        "UpdateChatWorkspaceTTLRequest",
    ];
    let files = expected_ts();
    for name in coder_names {
        assert!(
            files.contains_key(&format!("{name}.ts")),
            "{name} is not generated"
        );
        assert!(
            bindings_dir().join(format!("{name}.ts")).exists(),
            "{name} is missing from bindings/"
        );
    }
}

#[test]
fn every_schema_is_named_after_a_typescript_type() {
    // A request body's schema and its TypeScript type share the name.
    let files = expected_ts();
    for name in schemas().keys() {
        let ts = name.replace(".json", ".ts");
        assert!(
            files.contains_key(&ts),
            "{name} has no TypeScript type {ts}"
        );
    }
}
