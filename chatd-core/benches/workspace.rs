//! Workspace tool-call overhead: `read_file` of a 1 MB file and `execute` of `true`
//! through the tools, next to baselines measured in the same run — `std::fs::read` of the
//! same file, and `std::process::Command` running `true` directly and through `bash -c`.
//!
//! Run: `cargo bench -p chatd-core --bench workspace`. docs/workspaces.md records the
//! numbers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::tools::{Tool, ToolContext, TurnContext};
use chatd_core::workspace::tools::WorkspaceTools;
use chatd_core::workspace::{
    LocalWorkspaceConfig, LocalWorkspaceProvider, WorkspaceChat, WorkspaceProvider,
};
use codersdk::{RawJson, Uuid};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio_util::sync::CancellationToken;

/// Size of the file `read_file` reads.
const FILE_BYTES: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = std::env::temp_dir().join(format!("chatd-bench-ws-{}", Uuid::new_v4()));
    let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&root)).unwrap();
    let ws = rt
        .block_on(provider.workspace(&WorkspaceChat::new(Uuid::new_v4(), Uuid::new_v4())))
        .unwrap();
    let dir = PathBuf::from(ws.working_directory());
    // 1 MB of 100-byte lines: what a large source or log file looks like.
    let line = format!("{}\n", "x".repeat(99));
    let content = line.repeat(FILE_BYTES / line.len());
    std::fs::write(dir.join("big.txt"), &content).unwrap();
    let tools = WorkspaceTools::new(Arc::clone(&ws)).tools();
    let tool =
        |name: &str| Arc::clone(tools.iter().find(|t| t.name() == name).unwrap()) as Arc<dyn Tool>;
    let read_file = tool("read_file");
    let execute = tool("execute");
    let turn = Arc::new(TurnContext::new(Uuid::new_v4(), Uuid::new_v4()));
    let run = |tool: &Arc<dyn Tool>, args: serde_json::Value| {
        let ctx = ToolContext::new(Arc::clone(&turn), "bench", CancellationToken::new());
        let out = rt.block_on(tool.run(ctx, RawJson::from_value(&args).unwrap()));
        assert!(!out.is_error, "{}", out.result.get());
        out
    };

    let mut group = c.benchmark_group("workspace");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));
    let path = dir.join("big.txt");
    group.bench_function("baseline: std::fs::read 1 MB", |b| {
        b.iter(|| std::fs::read(&path).unwrap())
    });
    group.bench_function("read_file tool, 1 MB file", |b| {
        b.iter(|| run(&read_file, serde_json::json!({"path": "big.txt"})))
    });
    group.bench_function("baseline: Command `true`", |b| {
        b.iter(|| {
            assert!(std::process::Command::new("true")
                .status()
                .unwrap()
                .success())
        })
    });
    group.bench_function("baseline: Command `bash -c true`", |b| {
        b.iter(|| {
            assert!(std::process::Command::new("bash")
                .args(["-c", "true"])
                .status()
                .unwrap()
                .success())
        })
    });
    group.bench_function("execute tool, `true`", |b| {
        b.iter(|| run(&execute, serde_json::json!({"command": "true"})))
    });
    group.finish();
    drop(tools);
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, bench);
criterion_main!(benches);
