//! What reusing MCP sessions saves: one turn's `McpConnector::turn_tools` for a chat with
//! one server, with sessions reused (the default) and with reuse off (`session_ttl` zero:
//! transport, `initialize` and `tools/list` every turn) — against the in-process scripted
//! server (the protocol cost alone) and against the real `server-everything` in Node.js.
//! The baseline in the same run is the store read every turn does anyway (listing the MCP
//! server configs).
//!
//! Run: `cargo bench -p chatd-core --bench mcp` (needs `npm ci` in
//! `chatd-test-support/mcp-everything`). docs/mcp.md records the numbers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::Duration;

use chatd_core::mcp::{McpConnector, McpSettings};
use chatd_core::store::McpServerFilter;
use chatd_core::tools::TurnContext;
use chatd_core::{Keyring, SecretKey};
use chatd_test_support::db::{fixture, new_chat, Backend, TestDatabase};
use chatd_test_support::mcp::{tool_json, Everything, EverythingTransport, Script, ScriptedMcp};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keyring = Arc::new(Keyring::new("k", SecretKey::from_bytes([1; 32])).unwrap());
    let db = rt.block_on(TestDatabase::create(Backend::Sqlite));
    let store = rt
        .block_on(chatd_core::store::Store::connect_with(db.store_options()))
        .unwrap();
    let f = rt.block_on(fixture(&store));
    let everything = Everything::start(EverythingTransport::StreamableHttp);
    let scripted = rt.block_on(ScriptedMcp::start(Script::Tools {
        tools: (0..20).map(|i| tool_json(&format!("tool{i}"))).collect(),
        result: json!({"content": []}),
    }));
    let mut group = c.benchmark_group("mcp_turn_tools");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("baseline_list_configs", |b| {
        b.iter(|| {
            rt.block_on(store.list_mcp_server_configs(McpServerFilter::Enabled))
                .unwrap()
        })
    });
    for (label, url) in [
        ("scripted", scripted.url()),
        ("everything", everything.url()),
    ] {
        let request: codersdk::CreateMCPServerConfigRequest = serde_json::from_value(json!({
            "display_name": label, "slug": label, "transport": "streamable_http",
            "url": url, "auth_type": "none", "availability": "default_off", "enabled": true,
        }))
        .unwrap();
        let id = rt
            .block_on(store.create_mcp_server_config(&request, &keyring))
            .unwrap()
            .id;
        let mut new = new_chat(&f, "bench");
        new.mcp_server_ids = vec![id];
        let (chat, _) = rt.block_on(store.create_chat(new)).unwrap();
        let turn = TurnContext::for_chat(&chat);
        let reused = McpConnector::new(Arc::clone(&keyring));
        let mut off = McpSettings::default();
        off.session_ttl = Duration::ZERO;
        let fresh = McpConnector::new(Arc::clone(&keyring)).with_settings(off);
        for (mode, connector) in [("reused", &reused), ("fresh", &fresh)] {
            group.bench_function(format!("{label}_{mode}"), |b| {
                b.iter(|| {
                    let mcp = rt
                        .block_on(connector.turn_tools(&store, &chat, &turn))
                        .unwrap();
                    assert!(!mcp.tools.is_empty());
                    mcp
                })
            });
        }
        // The next server's chat must not see this one.
        rt.block_on(store.delete_mcp_server_config(id)).unwrap();
    }
    group.finish();
    rt.block_on(store.close());
    rt.block_on(db.remove());
}

criterion_group!(benches, bench);
criterion_main!(benches);
