//! The workspace tools on real temporary directories: each tool, each refusal of the
//! issue's "bad input" list, atomic multi-edit, background process lifecycle through the
//! tools, attach_file on both database backends, and availability per mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::tools::{Tool, ToolContext, ToolRegistry, TurnContext, MAX_TOOL_OUTPUT_BYTES};
use chatd_core::workspace::tools::{
    plan_file_path, Attachments, WorkspaceTools, MAX_EDIT_FILES, MAX_READ_FILE_BYTES,
    MAX_READ_RESULT_BYTES, MAX_WRITE_FILE_BYTES,
};
use chatd_core::workspace::{
    LocalLimits, LocalWorkspaceConfig, LocalWorkspaceProvider, Workspace, WorkspaceChat,
    WorkspaceProvider,
};
use codersdk::{RawJson, Uuid};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chatd-wst-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    _tmp: TempDir,
    provider: LocalWorkspaceProvider,
    ws: Arc<dyn Workspace>,
    tools: Vec<Arc<dyn Tool>>,
    turn: Arc<TurnContext>,
}

impl Fixture {
    async fn new() -> Self {
        Fixture::with_limits(LocalLimits::default()).await
    }

    async fn with_limits(limits: LocalLimits) -> Self {
        let tmp = TempDir::new();
        let provider =
            LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0).with_limits(limits))
                .unwrap();
        let chat = Uuid::new_v4();
        let ws = provider
            .workspace(&WorkspaceChat::new(chat, Uuid::new_v4()))
            .await
            .unwrap();
        let tools = WorkspaceTools::new(Arc::clone(&ws)).tools();
        Fixture {
            _tmp: tmp,
            provider,
            turn: Arc::new(TurnContext::new(chat, Uuid::new_v4()).with_workspace(ws.id())),
            ws,
            tools,
        }
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from(self.ws.working_directory())
    }

    /// Calls tool `name`: its result as JSON and whether it is an error.
    async fn call(&self, name: &str, args: Value) -> (Value, bool) {
        self.call_in(&self.turn, name, args).await
    }

    async fn call_in(&self, turn: &Arc<TurnContext>, name: &str, args: Value) -> (Value, bool) {
        let tool = self
            .tools
            .iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("no tool {name}"));
        let ctx = ToolContext::new(Arc::clone(turn), "call_1", CancellationToken::new());
        let out = tool.run(ctx, RawJson::from_value(&args).unwrap()).await;
        assert!(
            out.result.get().len() <= MAX_TOOL_OUTPUT_BYTES,
            "{name} result of {} bytes would be cut by the engine",
            out.result.get().len()
        );
        let value = out.result.to_value();
        assert!(
            value.is_object(),
            "{name}: results are JSON objects: {value}"
        );
        if out.is_error {
            assert!(value["error"].is_string(), "{name}: {value}");
        }
        (value, out.is_error)
    }

    async fn error(&self, name: &str, args: Value) -> String {
        let (value, is_error) = self.call(name, args).await;
        assert!(is_error, "{name} should fail: {value}");
        value["error"].as_str().unwrap().to_owned()
    }

    async fn ok(&self, name: &str, args: Value) -> Value {
        let (value, is_error) = self.call(name, args).await;
        assert!(!is_error, "{name} failed: {value}");
        value
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_file_numbers_lines_and_pages() {
    let f = Fixture::new().await;
    let text: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    std::fs::write(f.dir().join("ten.txt"), &text).unwrap();
    let all = f.ok("read_file", json!({"path": "ten.txt"})).await;
    assert_eq!(all["total_lines"], 10);
    assert_eq!(all["more"], false);
    assert!(all["content"]
        .as_str()
        .unwrap()
        .starts_with("     1\tline 1\n     2\tline 2\n"));
    let page = f
        .ok(
            "read_file",
            json!({"path": "ten.txt", "offset": 4, "limit": 3}),
        )
        .await;
    assert_eq!(
        page["content"],
        "     4\tline 4\n     5\tline 5\n     6\tline 6\n"
    );
    assert_eq!(page["start_line"], 4);
    assert_eq!(page["end_line"], 6);
    assert_eq!(page["more"], true);
    assert_eq!(page["next_offset"], 7);
    let err = f
        .error("read_file", json!({"path": "ten.txt", "offset": 11}))
        .await;
    assert!(err.contains("past the end"), "{err}");
    // An empty file reads as nothing.
    std::fs::write(f.dir().join("empty.txt"), "").unwrap();
    let empty = f.ok("read_file", json!({"path": "empty.txt"})).await;
    assert_eq!(empty["content"], "");
    // Many long lines: paged by the result budget, never cut by the engine.
    let wide: String = (0..5000)
        .map(|i| format!("{i:05} {}\n", "x".repeat(90)))
        .collect();
    std::fs::write(f.dir().join("wide.txt"), &wide).unwrap();
    let first = f.ok("read_file", json!({"path": "wide.txt"})).await;
    assert_eq!(first["more"], true);
    assert!(first["content"].as_str().unwrap().len() <= MAX_READ_RESULT_BYTES);
    assert!(first["note"].is_string());
    let next = first["next_offset"].as_u64().unwrap();
    let second = f
        .ok("read_file", json!({"path": "wide.txt", "offset": next}))
        .await;
    assert!(second["content"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{next:>6}\t")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_file_refuses_binary_huge_and_non_files() {
    let f = Fixture::new().await;
    std::fs::write(f.dir().join("bin"), [0x7f, b'E', b'L', b'F', 0, 0, 1]).unwrap();
    assert!(f
        .error("read_file", json!({"path": "bin"}))
        .await
        .contains("binary"));
    std::fs::write(f.dir().join("latin1"), [b'c', b'a', 0xe9]).unwrap();
    assert!(f
        .error("read_file", json!({"path": "latin1"}))
        .await
        .contains("not UTF-8"));
    // The size cap at its edge: exactly the cap reads, one byte more does not.
    let at_cap = usize::try_from(MAX_READ_FILE_BYTES).unwrap();
    std::fs::write(f.dir().join("at-cap.txt"), "a\n".repeat(at_cap / 2)).unwrap();
    f.ok("read_file", json!({"path": "at-cap.txt", "limit": 1}))
        .await;
    std::fs::write(f.dir().join("over-cap.txt"), "a".repeat(at_cap + 1)).unwrap();
    let err = f.error("read_file", json!({"path": "over-cap.txt"})).await;
    assert!(err.contains("larger than"), "{err}");
    std::fs::create_dir(f.dir().join("sub")).unwrap();
    assert!(f
        .error("read_file", json!({"path": "sub"}))
        .await
        .contains("directory"));
    assert!(f
        .error("read_file", json!({"path": "missing.txt"}))
        .await
        .contains("no such file"));
    // Unknown or missing arguments are a correctable error, not a failed turn.
    assert!(f
        .error("read_file", json!({"file": "x"}))
        .await
        .starts_with("Invalid arguments"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_workspace_are_refused_by_every_file_tool() {
    let f = Fixture::new().await;
    let outside = f._tmp.0.join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, f.dir().join("link")).unwrap();
    let bad = [
        "../outside.txt".to_owned(),
        outside.display().to_string(),
        "link".to_owned(),
        "/etc/hostname".to_owned(),
    ];
    for path in &bad {
        for (tool, args) in [
            ("read_file", json!({"path": path})),
            ("write_file", json!({"path": path, "content": "x"})),
            (
                "edit_files",
                json!({"files": [{"path": path, "edits": [{"search": "secret", "replace": "x"}]}]}),
            ),
        ] {
            let err = f.error(tool, args).await;
            assert!(
                err.contains("outside the workspace"),
                "{tool} {path}: {err}"
            );
        }
    }
    let err = f.error("read_file", json!({"path": "a\u{0}b"})).await;
    assert!(err.contains("NUL"), "{err}");
    let err = f
        .error("write_file", json!({"path": "a\u{0}b", "content": ""}))
        .await;
    assert!(err.contains("NUL"), "{err}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_file_creates_parents_and_refuses_oversized_content() {
    let f = Fixture::new().await;
    let done = f
        .ok(
            "write_file",
            json!({"path": "deep/er/new.txt", "content": "hi\n"}),
        )
        .await;
    assert_eq!(done["created"], true);
    assert_eq!(done["bytes_written"], 3);
    assert_eq!(
        std::fs::read_to_string(f.dir().join("deep/er/new.txt")).unwrap(),
        "hi\n"
    );
    let again = f
        .ok(
            "write_file",
            json!({"path": "deep/er/new.txt", "content": ""}),
        )
        .await;
    assert_eq!(again["created"], false);
    // At the edge: exactly the cap is written, one byte more is refused; 10 MB too.
    f.ok(
        "write_file",
        json!({"path": "at-cap", "content": "a".repeat(MAX_WRITE_FILE_BYTES)}),
    )
    .await;
    let err = f
        .error(
            "write_file",
            json!({"path": "over-cap", "content": "a".repeat(MAX_WRITE_FILE_BYTES + 1)}),
        )
        .await;
    assert!(err.contains("at most"), "{err}");
    let err = f
        .error(
            "write_file",
            json!({"path": "ten-mb", "content": "a".repeat(10 * 1024 * 1024)}),
        )
        .await;
    assert!(err.contains("at most"), "{err}");
    assert!(!f.dir().join("over-cap").exists());
    assert!(!f.dir().join("ten-mb").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_files_applies_all_edits_or_none() {
    let f = Fixture::new().await;
    std::fs::write(f.dir().join("a.txt"), "alpha beta\n").unwrap();
    std::fs::write(f.dir().join("b.txt"), "gamma gamma\n").unwrap();
    let done = f
        .ok(
            "edit_files",
            json!({"files": [
                {"path": "a.txt", "edits": [
                    {"search": "alpha", "replace": "ALPHA"},
                    {"search": "ALPHA beta", "replace": "one two"}
                ]},
                {"path": "b.txt", "edits": [
                    {"search": "gamma", "replace": "g", "replace_all": true}
                ]}
            ]}),
        )
        .await;
    assert_eq!(done["files"][0]["replacements"], 2);
    assert_eq!(done["files"][1]["replacements"], 2);
    assert_eq!(
        std::fs::read_to_string(f.dir().join("a.txt")).unwrap(),
        "one two\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.dir().join("b.txt")).unwrap(),
        "g g\n"
    );

    // The second file's edit fails: the first file is not changed either.
    for (edit, expect) in [
        (json!({"search": "absent", "replace": "x"}), "not found"),
        (json!({"search": "g", "replace": "x"}), "occurs 2 times"),
        (json!({"search": "", "replace": "x"}), "search is empty"),
    ] {
        let err = f
            .error(
                "edit_files",
                json!({"files": [
                    {"path": "a.txt", "edits": [{"search": "one", "replace": "uno"}]},
                    {"path": "b.txt", "edits": [edit]}
                ]}),
            )
            .await;
        assert!(err.contains(expect), "{err}");
        assert!(err.contains("files[1].edits[0] (b.txt)"), "{err}");
        assert!(err.contains("No file was changed"), "{err}");
        assert_eq!(
            std::fs::read_to_string(f.dir().join("a.txt")).unwrap(),
            "one two\n"
        );
    }
    // A missing file, a file listed twice, no files.
    let err = f
        .error(
            "edit_files",
            json!({"files": [
                {"path": "a.txt", "edits": [{"search": "one", "replace": "uno"}]},
                {"path": "nope.txt", "edits": [{"search": "x", "replace": "y"}]}
            ]}),
        )
        .await;
    assert!(err.contains("no such file"), "{err}");
    assert_eq!(
        std::fs::read_to_string(f.dir().join("a.txt")).unwrap(),
        "one two\n"
    );
    let err = f
        .error(
            "edit_files",
            json!({"files": [
                {"path": "a.txt", "edits": []},
                {"path": "./a.txt", "edits": []}
            ]}),
        )
        .await;
    assert!(err.contains("listed twice"), "{err}");
    assert!(f
        .error("edit_files", json!({"files": []}))
        .await
        .contains("empty"));
    // The file-count limit at its edge.
    let files: Vec<Value> = (0..=MAX_EDIT_FILES)
        .map(|i| {
            std::fs::write(f.dir().join(format!("f{i}")), "x").unwrap();
            json!({"path": format!("f{i}"), "edits": [{"search": "x", "replace": "y"}]})
        })
        .collect();
    let err = f
        .error("edit_files", json!({ "files": files.clone() }))
        .await;
    assert!(err.contains(&format!("at most {MAX_EDIT_FILES}")), "{err}");
    f.ok(
        "edit_files",
        json!({ "files": files[..MAX_EDIT_FILES].to_vec() }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_reports_exit_code_and_output() {
    let f = Fixture::new().await;
    std::fs::write(f.dir().join("in.txt"), "from a file\n").unwrap();
    let out = f
        .ok(
            "execute",
            json!({"command": "cat in.txt; echo oops >&2; exit 2"}),
        )
        .await;
    assert_eq!(out["exit_code"], 2);
    assert_eq!(out["stdout"], "from a file\n");
    assert_eq!(out["stderr"], "oops\n");
    assert!(f
        .error("execute", json!({"command": "  "}))
        .await
        .contains("empty"));
    // Binary output is replaced, not dumped.
    let out = f
        .ok(
            "execute",
            json!({"command": "head -c 3000 /dev/urandom; printf '\\0'"}),
        )
        .await;
    assert!(out["stdout"]
        .as_str()
        .unwrap()
        .starts_with("[binary output"));
    // 100 MB of output: the result stays small and says what was left out.
    let out = f
        .ok(
            "execute",
            json!({"command": "yes 0123456789 | head -c 100000000; echo done"}),
        )
        .await;
    let stdout = out["stdout"].as_str().unwrap();
    assert!(
        stdout.contains("bytes of output omitted"),
        "{}",
        &stdout[..200]
    );
    assert!(stdout.ends_with("done\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_kills_commands_at_their_timeout_and_fork_bombs_at_the_process_limit() {
    let mut limits = LocalLimits::default();
    limits.max_processes_per_command = 10;
    let f = Fixture::with_limits(limits).await;
    let started = std::time::Instant::now();
    let (out, is_error) = f
        .call(
            "execute",
            json!({"command": "echo before; sleep 30", "timeout_seconds": 1}),
        )
        .await;
    assert!(is_error);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out["error"]
        .as_str()
        .unwrap()
        .contains("timed out after 1s"));
    assert_eq!(out["stdout"], "before\n");
    let (out, is_error) = f
        .call(
            "execute",
            json!({"command": "for i in $(seq 50); do sleep 20 & done; wait"}),
        )
        .await;
    assert!(is_error);
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("too many processes"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_process_lifecycle_through_the_tools() {
    let f = Fixture::new().await;
    let started = f
        .ok(
            "execute",
            json!({"command": "echo up; exec sleep 60", "run_in_background": true}),
        )
        .await;
    let id = started["process_id"].as_str().unwrap().to_owned();
    assert_eq!(started["status"], "running");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = f.ok("process_output", json!({"process_id": id})).await;
        if out["stdout"] == "up\n" {
            assert_eq!(out["status"], "running");
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = f.ok("process_list", json!({})).await;
    assert_eq!(list["processes"][0]["process_id"], id);
    assert_eq!(list["processes"][0]["status"], "running");
    let stopped = f
        .ok(
            "process_signal",
            json!({"process_id": id, "signal": "terminate"}),
        )
        .await;
    assert_eq!(stopped["status"], "exited");
    assert_eq!(stopped["reason"], "signalled");
    assert_eq!(stopped["signal"], 15);
    let err = f
        .error(
            "process_signal",
            json!({"process_id": id, "signal": "kill"}),
        )
        .await;
    assert!(err.contains("already exited"), "{err}");
    let err = f
        .error("process_signal", json!({"process_id": id, "signal": "hup"}))
        .await;
    assert!(err.starts_with("Invalid arguments"), "{err}");
    let err = f
        .error("process_output", json!({"process_id": "proc-77"}))
        .await;
    assert!(err.contains("No process"), "{err}");
    // Interrupting the chat stops its background processes.
    let started = f
        .ok(
            "execute",
            json!({"command": "sleep 60", "run_in_background": true}),
        )
        .await;
    let id = started["process_id"].as_str().unwrap().to_owned();
    f.provider
        .release(
            f.turn.chat_id,
            chatd_core::workspace::ChatRelease::Interrupted,
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = f.ok("process_output", json!({"process_id": id})).await;
        if out["status"] == "exited" {
            assert_eq!(out["reason"], "interrupted");
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_turns_write_only_the_plan_file() {
    let f = Fixture::new().await;
    let plan_turn = Arc::new((*f.turn).clone().with_plan_mode(true));
    let plan = plan_file_path(&*f.ws, f.turn.chat_id);
    let (out, is_error) = f
        .call_in(
            &plan_turn,
            "write_file",
            json!({"path": "src/main.rs", "content": "x"}),
        )
        .await;
    assert!(is_error);
    assert_eq!(
        out["error"],
        format!("during plan turns, write_file is restricted to {plan}")
    );
    let relative = plan
        .strip_prefix(&format!("{}/", f.ws.working_directory()))
        .unwrap()
        .to_owned();
    let (_, is_error) = f
        .call_in(
            &plan_turn,
            "write_file",
            json!({"path": relative, "content": "# Plan\n"}),
        )
        .await;
    assert!(!is_error);
    let (out, is_error) = f
        .call_in(
            &plan_turn,
            "edit_files",
            json!({"files": [{"path": relative, "edits": [{"search": "Plan", "replace": "The plan"}]}]}),
        )
        .await;
    assert!(!is_error, "{out}");
    assert_eq!(std::fs::read_to_string(&plan).unwrap(), "# The plan\n");
}

/// On plan turns `edit_files` is held to the plan file like `write_file`, and neither
/// writes through a symbolic link at the plan path (or at `.coder` / `.coder/plans`): the
/// plan path must resolve to itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_turn_writes_refuse_other_files_and_links_at_the_plan_path() {
    let f = Fixture::new().await;
    let plan_turn = Arc::new((*f.turn).clone().with_plan_mode(true));
    let plan = plan_file_path(&*f.ws, f.turn.chat_id);
    std::fs::write(f.dir().join("main.rs"), "fn main() {}\n").unwrap();
    let (out, is_error) = f
        .call_in(
            &plan_turn,
            "edit_files",
            json!({"files": [{"path": "main.rs", "edits": [{"search": "main", "replace": "x"}]}]}),
        )
        .await;
    assert!(is_error);
    assert_eq!(
        out["error"],
        format!("during plan turns, edit_files is restricted to {plan}")
    );
    assert_eq!(
        std::fs::read_to_string(f.dir().join("main.rs")).unwrap(),
        "fn main() {}\n"
    );
    // A link at the plan path pointing at another file of the workspace.
    std::fs::create_dir_all(PathBuf::from(&plan).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(f.dir().join("main.rs"), &plan).unwrap();
    for (tool, args) in [
        ("write_file", json!({"path": plan, "content": "# Plan\n"})),
        (
            "edit_files",
            json!({"files": [{"path": plan, "edits": [{"search": "main", "replace": "x"}]}]}),
        ),
    ] {
        let (out, is_error) = f.call_in(&plan_turn, tool, args).await;
        assert!(is_error, "{tool}: {out}");
        let error = out["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!(
                "during plan turns, {tool} is restricted to {plan}"
            )),
            "{error}"
        );
        assert!(error.contains("is a symbolic link"), "{error}");
    }
    assert_eq!(
        std::fs::read_to_string(f.dir().join("main.rs")).unwrap(),
        "fn main() {}\n"
    );
    // A linked directory on the way is refused too.
    std::fs::remove_dir_all(f.dir().join(".coder")).unwrap();
    std::fs::create_dir_all(f.dir().join("src/plans")).unwrap();
    std::os::unix::fs::symlink(f.dir().join("src"), f.dir().join(".coder")).unwrap();
    let (out, is_error) = f
        .call_in(
            &plan_turn,
            "write_file",
            json!({"path": plan, "content": "# Plan\n"}),
        )
        .await;
    assert!(is_error);
    assert!(
        out["error"].as_str().unwrap().contains(&format!(
            "{}/.coder is a symbolic link",
            f.ws.working_directory()
        )),
        "{out}"
    );
    assert!(std::fs::read_dir(f.dir().join("src/plans"))
        .unwrap()
        .next()
        .is_none());
    // Once the link is gone the plan file is written as usual.
    std::fs::remove_file(f.dir().join(".coder")).unwrap();
    let (out, is_error) = f
        .call_in(
            &plan_turn,
            "write_file",
            json!({"path": plan, "content": "# Plan\n"}),
        )
        .await;
    assert!(!is_error, "{out}");
    // Outside plan mode the policy does not look at links.
    let (out, is_error) = f
        .call("write_file", json!({"path": "other.md", "content": "x"}))
        .await;
    assert!(!is_error, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_the_mode_table() {
    let tmp = TempDir::new();
    let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
    let ws = provider
        .workspace(&WorkspaceChat::new(Uuid::new_v4(), Uuid::new_v4()))
        .await
        .unwrap();
    let registry = ToolRegistry::new();
    let active = |turn: TurnContext| {
        let tools = WorkspaceTools::new(Arc::clone(&ws)).tools();
        let set = registry.turn_tools(turn).with_tools(tools).build();
        let mut names: Vec<String> = set.definitions().into_iter().map(|d| d.name).collect();
        names.sort();
        names
    };
    let root = TurnContext::new(Uuid::new_v4(), Uuid::new_v4());
    let all = [
        "edit_files",
        "execute",
        "process_list",
        "process_output",
        "process_signal",
        "read_file",
        "write_file",
    ];
    assert_eq!(active(root.clone()), all);
    let sub = root.clone().with_parent_chat(Uuid::new_v4());
    assert_eq!(active(sub.clone()), all);
    assert_eq!(
        active(root.clone().with_plan_mode(true)),
        [
            "edit_files",
            "execute",
            "process_output",
            "read_file",
            "write_file"
        ]
    );
    let read_only = ["execute", "process_output", "read_file"];
    assert_eq!(active(sub.clone().with_plan_mode(true)), read_only);
    assert_eq!(active(sub.with_explore(true)), read_only);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_file_stores_a_linked_chat_file_with_the_upload_limits() {
    chatd_test_support::db::on_each_backend(|store| async move {
        let fx = chatd_test_support::db::fixture(&store).await;
        let (chat, _) = store
            .create_chat(chatd_test_support::db::new_chat(&fx, "hi"))
            .await
            .unwrap();
        let tmp = TempDir::new();
        let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        let ws = provider
            .workspace(&WorkspaceChat::new(chat.id, fx.user))
            .await
            .unwrap();
        let tools = WorkspaceTools::new(Arc::clone(&ws))
            .with_attachments(Attachments {
                store: store.clone(),
                organization_id: fx.org,
            })
            .tools();
        let attach = tools.iter().find(|t| t.name() == "attach_file").unwrap();
        let turn = Arc::new(TurnContext::new(chat.id, fx.user));
        let call = |path: &str| {
            let ctx = ToolContext::new(Arc::clone(&turn), "c", CancellationToken::new());
            let args = RawJson::from_value(&json!({ "path": path })).unwrap();
            let attach = Arc::clone(attach);
            async move {
                let out = attach.run(ctx, args).await;
                (out.result.to_value(), out.is_error)
            }
        };
        let dir = PathBuf::from(ws.working_directory());
        std::fs::write(dir.join("report.md"), "# Report\n").unwrap();
        let (out, is_error) = call("report.md").await;
        assert!(!is_error, "{out}");
        assert_eq!(out["name"], "report.md");
        assert_eq!(out["media_type"], "text/plain");
        let id: Uuid = out["file_id"].as_str().unwrap().parse().unwrap();
        let stored = store.get_file(id).await.unwrap().unwrap();
        assert_eq!(stored.data, b"# Report\n");
        assert_eq!(stored.metadata.owner_id, fx.user);
        let linked = store.linked_files(chat.id).await.unwrap();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].id, id);
        // Not an allowed type, too large, outside.
        std::fs::write(dir.join("prog"), [0x7f, b'E', b'L', b'F', 0, 1]).unwrap();
        let (out, is_error) = call("prog").await;
        assert!(is_error);
        assert!(
            out["error"]
                .as_str()
                .unwrap()
                .contains("cannot be attached"),
            "{out}"
        );
        let big = vec![b'a'; 10 * 1024 * 1024 + 1];
        std::fs::write(dir.join("big.txt"), big).unwrap();
        let (out, is_error) = call("big.txt").await;
        assert!(is_error);
        assert!(out["error"].as_str().unwrap().contains("at most"), "{out}");
        let (out, is_error) = call("../x").await;
        assert!(is_error);
        assert!(out["error"].as_str().unwrap().contains("outside"), "{out}");
        // The per-chat file limit at its edge.
        for i in 1..codersdk::MAX_CHAT_FILE_LINKS {
            std::fs::write(dir.join(format!("n{i}.txt")), "n").unwrap();
            let (out, is_error) = call(&format!("n{i}.txt")).await;
            assert!(!is_error, "{i}: {out}");
        }
        let (out, is_error) = call("report.md").await;
        assert!(is_error);
        assert!(
            out["error"]
                .as_str()
                .unwrap()
                .contains("most a chat may have"),
            "{out}"
        );
    })
    .await;
}
