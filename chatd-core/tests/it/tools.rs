//! The tool system through its public API: registration rules, a turn's tool set (modes,
//! dynamic tools, name clashes) and step execution (order, concurrency, failures,
//! timeouts, interrupts, truncation). Time is paused, so timeouts are exact and instant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatd_core::tools::{
    parse_arguments, schema_for, timed_out_message, AllowAll, Tool, ToolCallOutcome, ToolContext,
    ToolOutput, ToolPolicy, ToolRegistry, TurnContext, TurnTools, DEFAULT_TOOL_TIMEOUT,
    MAX_TOOL_OUTPUT_BYTES, TOOL_ARGUMENTS_INVALID_MESSAGE, TOOL_INTERRUPTED_MESSAGE,
    TOOL_NOT_ACTIVE_MESSAGE, TOOL_NOT_FOUND_MESSAGE, TOOL_PANICKED_MESSAGE,
};
use chatd_core::ErrorKind;
use chatprovider::ToolCall;
use codersdk::{ChatMessagePart, DynamicTool, RawJson, Uuid};
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type RunFn = dyn Fn(ToolContext, RawJson) -> BoxFuture<'static, ToolOutput> + Send + Sync;

/// A tool whose behaviour is a closure, with every trait knob settable.
struct FnTool {
    name: String,
    description: String,
    schema: schemars::Schema,
    run: Arc<RunFn>,
    timeout: Duration,
    stops_turn: bool,
    plan_only: bool,
    mcp: Option<Uuid>,
}

impl std::fmt::Debug for FnTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTool").field("name", &self.name).finish()
    }
}

impl FnTool {
    fn new(
        name: &str,
        run: impl Fn(ToolContext, RawJson) -> BoxFuture<'static, ToolOutput> + Send + Sync + 'static,
    ) -> Self {
        FnTool {
            name: name.to_owned(),
            description: format!("The {name} tool."),
            schema: schemars::json_schema!({"type": "object"}),
            run: Arc::new(run),
            timeout: DEFAULT_TOOL_TIMEOUT,
            stops_turn: false,
            plan_only: false,
            mcp: None,
        }
    }

    /// Sleeps `delay`, then answers `{"tool": name, "args": args}`.
    fn sleeper(name: &str, delay: Duration) -> Self {
        let n = name.to_owned();
        FnTool::new(name, move |_ctx, args| {
            let n = n.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                ToolOutput::json(&serde_json::json!({"tool": n, "args": args}))
            })
        })
    }

    fn arc(self) -> Arc<dyn Tool> {
        Arc::new(self)
    }
}

#[async_trait::async_trait]
impl Tool for FnTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> schemars::Schema {
        self.schema.clone()
    }
    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        (self.run)(ctx, args).await
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn stops_turn(&self) -> bool {
        self.stops_turn
    }
    fn available(&self, turn: &TurnContext) -> bool {
        !self.plan_only || turn.plan_mode
    }
    fn mcp_server_config_id(&self) -> Option<Uuid> {
        self.mcp
    }
}

fn call(id: &str, name: &str, args: &str) -> ToolCall {
    ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: args.to_owned(),
        arguments_valid: RawJson::from_json(args).is_ok(),
        provider_executed: false,
    }
}

fn turn() -> TurnContext {
    TurnContext::new(Uuid::new_v4(), Uuid::new_v4())
}

fn registry(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> ToolRegistry {
    let mut r = ToolRegistry::new();
    for t in tools {
        r.register(t).unwrap();
    }
    r
}

fn dynamic(name: &str) -> DynamicTool {
    DynamicTool {
        name: name.to_owned(),
        description: format!("client tool {name}"),
        input_schema: RawJson::from_json(r#"{"type":"object"}"#).unwrap(),
    }
}

fn error_text(part: &ChatMessagePart) -> String {
    assert!(part.is_error, "{part:?}");
    part.result.as_ref().unwrap().to_value()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ------------------------------------------------------------------------------------
// Registration
// ------------------------------------------------------------------------------------

#[test]
fn duplicate_names_are_a_conflict() {
    let mut r = registry([FnTool::sleeper("read_file", secs(0)).arc()]);
    let err = r
        .register(FnTool::sleeper("read_file", secs(0)).arc())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("read_file"), "{err}");
    assert_eq!(r.len(), 1);
}

#[test]
fn names_must_be_what_providers_accept() {
    let at_limit = "n".repeat(64);
    registry([FnTool::sleeper(&at_limit, secs(0)).arc()]);
    for bad in ["", "read file", "lire_fiché", &"n".repeat(65)] {
        let err = ToolRegistry::new()
            .with_tool(FnTool::sleeper(bad, secs(0)).arc())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
}

#[test]
fn parameters_must_be_an_object_schema() {
    for schema in [
        schemars::json_schema!(true),
        schemars::json_schema!({"type": "string"}),
    ] {
        let mut tool = FnTool::sleeper("t", secs(0));
        tool.schema = schema;
        let err = ToolRegistry::new().with_tool(tool.arc()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct ReadArgs {
    /// Path of the file to read.
    path: String,
    /// First line to return.
    offset: Option<u32>,
    mode: Mode,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Text,
    Binary,
}

#[test]
fn derived_schemas_are_lean_inline_object_schemas() {
    let schema = schema_for::<ReadArgs>().to_value();
    assert_eq!(schema["type"], "object");
    assert!(schema.get("$schema").is_none());
    assert!(schema.get("title").is_none());
    assert!(schema.get("$defs").is_none(), "{schema}");
    assert_eq!(
        schema["properties"]["path"]["description"],
        "Path of the file to read."
    );
    assert_eq!(schema["required"], serde_json::json!(["path", "mode"]));
    assert_eq!(
        schema["properties"]["mode"]["enum"],
        serde_json::json!(["text", "binary"])
    );

    let mut tool = FnTool::sleeper("read_file", secs(0));
    tool.schema = schema_for::<ReadArgs>();
    let defs = registry([tool.arc()])
        .turn_tools(turn())
        .build()
        .definitions();
    assert_eq!(defs[0].input_schema.to_value(), schema);
    assert_eq!(defs[0].description, "The read_file tool.");
}

// ------------------------------------------------------------------------------------
// A turn's tool set
// ------------------------------------------------------------------------------------

#[test]
fn definitions_are_sorted_and_merge_dynamic_tools() {
    let r = registry([
        FnTool::sleeper("write_file", secs(0)).arc(),
        FnTool::sleeper("execute", secs(0)).arc(),
    ]);
    let tools = r
        .turn_tools(turn())
        .with_dynamic_tools([dynamic("open_browser"), dynamic("ask_client")])
        .build();
    let names: Vec<_> = tools.definitions().into_iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        ["ask_client", "execute", "open_browser", "write_file"]
    );
    assert!(tools.is_dynamic("ask_client"));
    assert!(tools.is_active("execute"));
    assert!(!tools.is_active("ask_client"));
}

#[test]
fn a_server_tool_wins_a_name_clash_with_a_dynamic_tool() {
    let r = registry([FnTool::sleeper("execute", secs(0)).arc()]);
    let tools = r
        .turn_tools(turn())
        .with_dynamic_tools([dynamic("execute")])
        .build();
    let defs = tools.definitions();
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0].description, "The execute tool.");
    assert!(tools.is_active("execute"));
    assert!(!tools.is_dynamic("execute"));
}

#[test]
fn the_models_own_tools_rank_below_every_other_tool() {
    let r = registry([FnTool::sleeper("execute", secs(0)).arc()]);
    let tools = r
        .turn_tools(turn())
        .with_tools([FnTool::sleeper("skill", secs(0)).arc()])
        .with_dynamic_tools([dynamic("current_time")])
        .with_model_tools([
            FnTool::sleeper("current_time", secs(0)).arc(),
            FnTool::sleeper("execute", secs(0)).arc(),
            FnTool::sleeper("skill", secs(0)).arc(),
            FnTool::sleeper("add", secs(0)).arc(),
        ])
        .build();
    // The client's tool keeps its name: it stays dynamic, offered with its own description.
    assert!(tools.is_dynamic("current_time"));
    let defs = tools.definitions();
    let current = defs.iter().find(|d| d.name == "current_time").unwrap();
    assert_eq!(current.description, "client tool current_time");
    // A free name is the model's, a server-side tool like any other.
    assert!(tools.is_active("add"));
    let names: Vec<_> = defs.into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["add", "current_time", "execute", "skill"]);
    // Without the model's tools there is no `add`.
    let plain = r.turn_tools(turn()).build();
    assert!(!plain.is_active("add") && !plain.is_dynamic("add"));
}

#[test]
fn dynamic_tools_shadowed_by_registered_ones_are_warned_about() {
    let r = registry([FnTool::sleeper("execute", secs(0)).arc()]);
    let warnings = r.dynamic_tool_warnings(&[dynamic("execute"), dynamic("ask_client")]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("\"execute\""), "{warnings:?}");
    assert!(r.dynamic_tool_warnings(&[dynamic("ask_client")]).is_empty());
    assert!(ToolRegistry::new()
        .dynamic_tool_warnings(&[dynamic("execute")])
        .is_empty());
}

#[test]
fn plan_mode_switches_dynamic_tools_off() {
    let r = registry([FnTool::sleeper("execute", secs(0)).arc()]);
    let tools = r
        .turn_tools(turn().with_plan_mode(true))
        .with_dynamic_tools([dynamic("ask_client")])
        .build();
    let names: Vec<_> = tools.definitions().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["execute"]);
    assert!(tools.is_inactive("ask_client"));
}

#[derive(Debug)]
struct ReadOnlyForSubagents;

impl ToolPolicy for ReadOnlyForSubagents {
    fn allows(&self, tool: &dyn Tool, turn: &TurnContext) -> bool {
        !turn.is_subagent() || !tool.name().starts_with("write")
    }
    fn allows_dynamic_tools(&self, turn: &TurnContext) -> bool {
        !turn.is_subagent()
    }
}

#[test]
fn the_policy_and_each_tool_decide_what_is_active() {
    let mut propose = FnTool::sleeper("propose_plan", secs(0));
    propose.plan_only = true;
    let r = registry([
        FnTool::sleeper("read_file", secs(0)).arc(),
        FnTool::sleeper("write_file", secs(0)).arc(),
        propose.arc(),
    ])
    .with_policy(Arc::new(ReadOnlyForSubagents));
    let names =
        |t: &TurnTools| -> Vec<String> { t.definitions().into_iter().map(|d| d.name).collect() };

    let root = r
        .turn_tools(turn())
        .with_dynamic_tools([dynamic("c")])
        .build();
    assert_eq!(names(&root), ["c", "read_file", "write_file"]);
    assert!(root.is_inactive("propose_plan"));

    let plan = r.turn_tools(turn().with_plan_mode(true)).build();
    assert_eq!(names(&plan), ["propose_plan", "read_file", "write_file"]);

    let sub = r
        .turn_tools(turn().with_parent_chat(Uuid::new_v4()))
        .with_dynamic_tools([dynamic("c")])
        .build();
    assert_eq!(names(&sub), ["read_file"]);
    assert!(sub.is_inactive("write_file"));
    assert!(sub.is_inactive("c"));

    // The default policy restricts nothing.
    let open =
        registry([FnTool::sleeper("write_file", secs(0)).arc()]).with_policy(Arc::new(AllowAll));
    assert!(open
        .turn_tools(turn().with_parent_chat(Uuid::new_v4()))
        .build()
        .is_active("write_file"));
}

#[test]
fn turn_tools_keep_the_earliest_name_and_skip_unusable_ones() {
    let r = registry([FnTool::sleeper("read_file", secs(0)).arc()]);
    let mut shadow = FnTool::sleeper("read_file", secs(0));
    shadow.description = "an MCP server's read_file".into();
    let mut first = FnTool::sleeper("github__search", secs(0));
    first.description = "first".into();
    let mut second = FnTool::sleeper("github__search", secs(0));
    second.description = "second".into();
    let tools = r
        .turn_tools(turn())
        .with_tools([
            shadow.arc(),
            first.arc(),
            second.arc(),
            FnTool::sleeper("bad name", secs(0)).arc(),
        ])
        .with_dynamic_tools([dynamic("github__search")])
        .build();
    let defs = tools.definitions();
    let summary: Vec<_> = defs
        .iter()
        .map(|d| (d.name.as_str(), d.description.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("github__search", "first"),
            ("read_file", "The read_file tool.")
        ]
    );
}

#[test]
fn turn_context_of_a_stored_chat() {
    let (id, owner, parent) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let chat: codersdk::Chat = serde_json::from_value(serde_json::json!({
        "id": id, "organization_id": Uuid::new_v4(), "owner_id": owner,
        "parent_chat_id": parent, "last_model_config_id": Uuid::new_v4(),
        "title": "t", "status": "running", "plan_mode": "plan", "client_type": "api",
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"
    }))
    .unwrap();
    let t = TurnContext::for_chat(&chat);
    assert_eq!(
        (t.chat_id, t.owner_id, t.parent_chat_id),
        (id, owner, Some(parent))
    );
    assert!(t.plan_mode);
    assert!(t.is_subagent());
}

// ------------------------------------------------------------------------------------
// Execution
// ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn calls_run_concurrently_and_results_come_in_call_order() {
    let r = registry([
        FnTool::sleeper("slow", secs(3)).arc(),
        FnTool::sleeper("fast", secs(1)).arc(),
    ]);
    let tools = r.turn_tools(turn()).build();
    let calls = [
        call("c0", "slow", r#"{"n":0}"#),
        call("c1", "fast", r#"{"n":1}"#),
        call("c2", "fast", r#"{"n":2}"#),
    ];
    let start = Instant::now();
    let mut running = tools.execute(&calls, &CancellationToken::new());
    assert_eq!(running.remaining(), 3);

    // The fast calls finish first, but nothing is released before call 0 is done…
    let first = running.next().await.unwrap().clone();
    assert_eq!(start.elapsed(), secs(3));
    assert_eq!(first.index, 0);
    // …and then the finished ones follow at once.
    let second = running.next().await.unwrap().clone();
    assert_eq!((second.index, start.elapsed()), (1, secs(3)));

    let step = running.finish().await;
    // Concurrent: the step takes as long as its slowest call, not the sum.
    assert_eq!(start.elapsed(), secs(3));
    let ids: Vec<_> = step
        .results
        .iter()
        .map(|r| r.part.tool_call_id.as_str())
        .collect();
    assert_eq!(ids, ["c0", "c1", "c2"]);
    assert_eq!(step.results[0], first);
    let part = &step.results[2].part;
    assert_eq!(part.tool_name, "fast");
    assert!(!part.is_error);
    assert_eq!(
        part.result.as_ref().unwrap().to_value(),
        serde_json::json!({"tool": "fast", "args": {"n": 2}})
    );
    assert!(step
        .results
        .iter()
        .all(|r| r.outcome == ToolCallOutcome::Succeeded));
    assert!(!step.stop_turn && !step.requires_action() && !step.interrupted());
}

#[tokio::test(start_paused = true)]
async fn an_early_result_is_released_before_a_slow_later_one() {
    let r = registry([
        FnTool::sleeper("slow", secs(3)).arc(),
        FnTool::sleeper("fast", secs(1)).arc(),
    ]);
    let tools = r.turn_tools(turn()).build();
    let calls = [call("c0", "fast", "{}"), call("c1", "slow", "{}")];
    let start = Instant::now();
    let mut running = tools.execute(&calls, &CancellationToken::new());
    assert_eq!(running.next().await.unwrap().index, 0);
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(running.next().await.unwrap().index, 1);
    assert_eq!(start.elapsed(), secs(3));
    assert!(running.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn unknown_inactive_dynamic_and_provider_calls_are_classified() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let mut plan_only = FnTool::new("propose_plan", move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { ToolOutput::text("ran") })
    });
    plan_only.plan_only = true;
    let r = registry([FnTool::sleeper("execute", secs(0)).arc(), plan_only.arc()]);
    let tools = r
        .turn_tools(turn())
        .with_dynamic_tools([dynamic("pick_color")])
        .build();
    let mut web = call("w", "web_search", "{}");
    web.provider_executed = true;
    let mut cut = call("x", "execute", r#"{"cmd":"ls"#);
    cut.arguments_valid = false;
    let calls = [
        call("a", "nope", "{}"),
        call("b", "propose_plan", "{}"),
        call("c", "pick_color", r#"{"hint":"warm"}"#),
        web,
        cut,
        call("d", "execute", "{}"),
    ];
    let step = tools.execute_calls(&calls, &CancellationToken::new()).await;

    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "an inactive tool must not run"
    );
    let summary: Vec<_> = step
        .results
        .iter()
        .map(|r| (r.index, r.part.tool_call_id.as_str(), r.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "a", ToolCallOutcome::NotFound),
            (1, "b", ToolCallOutcome::NotActive),
            (4, "x", ToolCallOutcome::InvalidArguments),
            (5, "d", ToolCallOutcome::Succeeded),
        ]
    );
    assert_eq!(error_text(&step.results[0].part), TOOL_NOT_FOUND_MESSAGE);
    assert_eq!(step.results[0].part.tool_name, "nope");
    assert_eq!(error_text(&step.results[1].part), TOOL_NOT_ACTIVE_MESSAGE);
    assert_eq!(
        error_text(&step.results[2].part),
        TOOL_ARGUMENTS_INVALID_MESSAGE
    );
    // The engine's errors have the one shape of ChatMessagePart::tool_error.
    assert_eq!(
        step.results[0].part,
        ChatMessagePart::tool_error("a", "nope", TOOL_NOT_FOUND_MESSAGE)
    );

    assert!(step.requires_action());
    assert_eq!(step.pending_dynamic, vec![calls[2].clone()]);
    assert_eq!(step.parts().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_tool_becomes_an_error_result() {
    let boom = FnTool::new("boom", |_, _| {
        Box::pin(async { panic!("index out of range") })
    });
    let r = registry([boom.arc(), FnTool::sleeper("fine", secs(1)).arc()]);
    let tools = r.turn_tools(turn()).build();
    let step = tools
        .execute_calls(
            &[call("a", "boom", "{}"), call("b", "fine", "{}")],
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(step.results[0].outcome, ToolCallOutcome::Panicked);
    // The panic's own text stays in the log.
    assert_eq!(error_text(&step.results[0].part), TOOL_PANICKED_MESSAGE);
    assert_eq!(step.results[1].outcome, ToolCallOutcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_timeout_is_stopped_with_an_error_result() {
    let seen = Arc::new(Mutex::new(None::<CancellationToken>));
    let slot = seen.clone();
    let hang = FnTool::new("hang", move |ctx, _| {
        *slot.lock().unwrap() = Some(ctx.cancel.clone());
        Box::pin(async {
            tokio::time::sleep(secs(3600)).await;
            ToolOutput::text("too late")
        })
    });
    let mut quick = FnTool::sleeper("quick_budget", secs(10));
    quick.timeout = secs(5);
    let r = registry([
        hang.arc(),
        quick.arc(),
        FnTool::sleeper("ok", secs(59)).arc(),
    ]);
    let tools = r.turn_tools(turn()).build();
    let start = Instant::now();
    let step = tools
        .execute_calls(
            &[
                call("a", "hang", "{}"),
                call("b", "quick_budget", "{}"),
                call("c", "ok", "{}"),
            ],
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(start.elapsed(), DEFAULT_TOOL_TIMEOUT);
    assert_eq!(step.results[0].outcome, ToolCallOutcome::TimedOut);
    assert_eq!(
        error_text(&step.results[0].part),
        "Tool execution timed out after 60s"
    );
    assert_eq!(step.results[1].outcome, ToolCallOutcome::TimedOut);
    assert_eq!(
        error_text(&step.results[1].part),
        timed_out_message(secs(5))
    );
    // Just inside the budget is fine.
    assert_eq!(step.results[2].outcome, ToolCallOutcome::Succeeded);
    // Work the tool started on the side is told to stop.
    assert!(seen.lock().unwrap().as_ref().unwrap().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_stops_running_calls_and_keeps_finished_ones() {
    let r = registry([
        FnTool::sleeper("slow", secs(30)).arc(),
        FnTool::sleeper("fast", secs(1)).arc(),
    ]);
    let tools = r.turn_tools(turn()).build();
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(2)).await;
        interrupt.cancel();
    });
    let start = Instant::now();
    let step = tools
        .execute_calls(&[call("a", "fast", "{}"), call("b", "slow", "{}")], &cancel)
        .await;
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(step.results[0].outcome, ToolCallOutcome::Succeeded);
    assert_eq!(step.results[1].outcome, ToolCallOutcome::Interrupted);
    assert_eq!(error_text(&step.results[1].part), TOOL_INTERRUPTED_MESSAGE);
    assert!(step.interrupted());
}

#[tokio::test(start_paused = true)]
async fn calls_of_an_already_interrupted_turn_never_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let tool = FnTool::new("side_effect", move |_, _| {
        let counter = counter.clone();
        Box::pin(async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ToolOutput::text("done")
        })
    });
    let tools = registry([tool.arc()]).turn_tools(turn()).build();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let step = tools
        .execute_calls(&[call("a", "side_effect", "{}")], &cancel)
        .await;
    assert_eq!(step.results[0].outcome, ToolCallOutcome::Interrupted);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_execution_cancels_running_calls() {
    let finished = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None::<CancellationToken>));
    let (done, slot) = (finished.clone(), seen.clone());
    let tool = FnTool::new("long", move |ctx, _| {
        *slot.lock().unwrap() = Some(ctx.cancel.clone());
        let done = done.clone();
        Box::pin(async move {
            tokio::time::sleep(secs(10)).await;
            done.fetch_add(1, Ordering::SeqCst);
            ToolOutput::text("done")
        })
    });
    let tools = registry([tool.arc()]).turn_tools(turn()).build();
    let running = tools.execute(&[call("a", "long", "{}")], &CancellationToken::new());
    tokio::time::sleep(secs(1)).await;
    drop(running);
    tokio::time::sleep(secs(20)).await;
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    assert!(seen.lock().unwrap().as_ref().unwrap().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_successful_stop_after_tool_ends_the_turn() {
    let ask = |fail: bool| {
        let mut t = FnTool::new("ask_user_question", move |_, _| {
            Box::pin(async move {
                if fail {
                    ToolOutput::error("questions must have 2 to 4 options")
                } else {
                    ToolOutput::json(&serde_json::json!({"asked": true}))
                }
            })
        });
        t.stops_turn = true;
        t.arc()
    };
    for (fail, stops) in [(false, true), (true, false)] {
        let r = registry([ask(fail), FnTool::sleeper("read_file", secs(0)).arc()]);
        let tools = r.turn_tools(turn()).build();
        let step = tools
            .execute_calls(
                &[
                    call("a", "read_file", "{}"),
                    call("b", "ask_user_question", "{}"),
                ],
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(step.stop_turn, stops, "fail={fail}");
        assert_eq!(step.results[1].stops_turn, stops);
        assert!(!step.results[0].stops_turn);
        let want = if fail {
            ToolCallOutcome::Failed
        } else {
            ToolCallOutcome::Succeeded
        };
        assert_eq!(step.results[1].outcome, want);
    }
}

#[tokio::test(start_paused = true)]
async fn the_tool_sees_its_chat_owner_and_call() {
    let tool = FnTool::new("whoami", |ctx, _| {
        Box::pin(async move {
            ToolOutput::json(&serde_json::json!({
                "chat": ctx.chat_id(), "owner": ctx.owner_id(), "call": ctx.tool_call_id,
                "plan": ctx.turn.plan_mode,
            }))
        })
    });
    let t = turn().with_plan_mode(true);
    let (chat, owner) = (t.chat_id, t.owner_id);
    let tools = registry([tool.arc()]).turn_tools(t).build();
    let step = tools
        .execute_calls(&[call("call_7", "whoami", "{}")], &CancellationToken::new())
        .await;
    assert_eq!(
        step.results[0].part.result.as_ref().unwrap().to_value(),
        serde_json::json!({"chat": chat, "owner": owner, "call": "call_7", "plan": true})
    );
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[tokio::test(start_paused = true)]
async fn bad_arguments_become_a_failed_result_the_model_can_read() {
    let mut tool = FnTool::new("echo", |_, args| {
        Box::pin(async move {
            match parse_arguments::<EchoArgs>(&args) {
                Ok(a) => ToolOutput::text(a.text),
                Err(invalid) => invalid,
            }
        })
    });
    tool.schema = schema_for::<EchoArgs>();
    let tools = registry([tool.arc()]).turn_tools(turn()).build();
    let step = tools
        .execute_calls(
            &[
                call("a", "echo", r#"{"text":"hi"}"#),
                call("b", "echo", r#"{"txt":"hi"}"#),
            ],
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(
        step.results[0].part.result.as_ref().unwrap().get(),
        r#""hi""#
    );
    assert_eq!(step.results[1].outcome, ToolCallOutcome::Failed);
    let message = error_text(&step.results[1].part);
    assert!(
        message.starts_with("Invalid arguments: missing field `text`"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_output_is_truncated_and_attributed_to_its_mcp_server() {
    let server = Uuid::new_v4();
    let mut tool = FnTool::new("github__dump", |_, _| {
        Box::pin(async { ToolOutput::text("z".repeat(MAX_TOOL_OUTPUT_BYTES * 3)) })
    });
    tool.mcp = Some(server);
    let tools = registry([tool.arc()]).turn_tools(turn()).build();
    let step = tools
        .execute_calls(
            &[call("a", "github__dump", "{}")],
            &CancellationToken::new(),
        )
        .await;
    let part = &step.results[0].part;
    assert_eq!(part.mcp_server_config_id, Some(server));
    let result = part.result.as_ref().unwrap();
    assert!(result.get().len() <= MAX_TOOL_OUTPUT_BYTES);
    let v = result.to_value();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["original_bytes"], MAX_TOOL_OUTPUT_BYTES * 3 + 2);
    assert!(v["output"].as_str().unwrap().starts_with("zzzz"));
    assert!(!part.is_error);
}

#[test]
fn tool_output_constructors() {
    assert_eq!(
        ToolOutput::error("disk full").result,
        ChatMessagePart::tool_error("x", "y", "disk full")
            .result
            .unwrap()
    );
    assert!(ToolOutput::error("disk full").is_error);
    assert_eq!(ToolOutput::text("a\"b").result.get(), r#""a\"b""#);
    let mut bad_keys = std::collections::HashMap::new();
    bad_keys.insert((1, 2), "v");
    let out = ToolOutput::json(&bad_keys);
    assert!(out.is_error, "{out:?}");
}

#[test]
fn interrupted_part_for_a_call_that_never_ran() {
    let part = chatd_core::tools::interrupted_result_part(&call("a", "execute", "{}"));
    assert_eq!(
        part,
        ChatMessagePart::tool_error("a", "execute", TOOL_INTERRUPTED_MESSAGE)
    );
}

#[test]
fn the_engine_can_hold_tool_sets_and_executions_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ToolRegistry>();
    send_sync::<TurnTools>();
    send::<chatd_core::tools::ToolExecution>();
    send::<chatd_core::tools::StepToolResults>();
}
