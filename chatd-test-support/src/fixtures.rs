//! The recorded fixtures in `testdata/` at the repository root (copied unchanged from
//! their source; `testdata/README.md` says where each came from and how to replay it).
//!
//! Paths are relative to `testdata/`, e.g. `streams/openai-chat--text--usage.sse` or
//! `errors/manifest.json`.

use std::path::PathBuf;

/// `testdata/` at the repository root.
pub fn testdata_dir() -> PathBuf {
    // This crate sits at the repository root beside the others, so `..` from its manifest
    // is the root, whichever crate's test asks.
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata"))
}

/// The path of `rel` inside `testdata/`.
pub fn testdata_path(rel: &str) -> PathBuf {
    testdata_dir().join(rel)
}

/// The bytes of `testdata/<rel>`; panics naming the file when it cannot be read.
pub fn read_testdata(rel: &str) -> Vec<u8> {
    let path = testdata_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The text of `testdata/<rel>`; panics naming the file when it cannot be read as UTF-8.
pub fn read_testdata_string(rel: &str) -> String {
    let path = testdata_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `testdata/<rel>` parsed as JSON; panics naming the file when it is not JSON.
pub fn read_testdata_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read_testdata(rel))
        .unwrap_or_else(|e| panic!("testdata/{rel} is not JSON: {e}"))
}

/// The names of the files in the directory `testdata/<dir>`, sorted.
pub fn testdata_file_names(dir: &str) -> Vec<String> {
    let path = testdata_path(dir);
    let entries =
        std::fs::read_dir(&path).unwrap_or_else(|e| panic!("list {}: {e}", path.display()));
    let mut names: Vec<String> = entries
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("list {}: {e}", path.display()));
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The recorded stream `testdata/streams/<name>` exactly as stored.
pub fn stream_fixture(name: &str) -> Vec<u8> {
    read_testdata(&format!("streams/{name}"))
}

/// A stream fixture as the SSE body the provider sent. `.sse` files are returned as they
/// are; `.jsonl` recordings are replayed as `testdata/README.md` says: `data: <line>` and a
/// blank line per line, with an `event: <type>` line first for Anthropic and OpenAI
/// Responses, and a final `data: [DONE]` for Chat Completions.
pub fn stream_body(name: &str) -> Vec<u8> {
    let raw = stream_fixture(name);
    if name.ends_with(".sse") {
        return raw;
    }
    let text = String::from_utf8(raw)
        .unwrap_or_else(|e| panic!("testdata/streams/{name} is not UTF-8: {e}"));
    let with_event = name.starts_with("anthropic-") || name.starts_with("openai-responses-");
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if with_event {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a line of testdata/streams/{name} is not JSON: {e}"));
            if let Some(kind) = value.get("type").and_then(|t| t.as_str()) {
                out.push_str(&format!("event: {kind}\n"));
            }
        }
        out.push_str(&format!("data: {line}\n\n"));
    }
    if !with_event {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}
