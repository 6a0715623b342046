// Unit tests of the page's pure logic (the stream reducer, the list query and order),
// compiled from the TypeScript sources with esbuild in memory. Run by scripts/test.sh; no
// browser needed.
import assert from "node:assert/strict";
import * as esbuild from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

async function load(entry) {
  const out = await esbuild.build({
    absWorkingDir: path.join(here, ".."),
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    jsx: "automatic",
    jsxImportSource: "preact",
    logLevel: "error",
  });
  const code = out.outputFiles[0].text;
  return import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
}

const { applyEvent, emptyChatState, mergePart, resumeState, resultsByCall } = await load("src/chatstate.ts");

const chat = "00000000-0000-4000-8000-000000000001";
const msg = (id, role, content) => ({ id, chat_id: chat, created_at: "2026-01-01T00:00:00Z", role, content });
const ev = (type, payload) => ({ type, chat_id: chat, ...payload });
const text = (t) => ({ type: "text", text: t });
const run = (events, s = emptyChatState()) => events.reduce(applyEvent, s);

const tests = {
  "text deltas merge into one part, and the stored message replaces them"() {
    let s = run([
      ev("status", { status: { status: "running" } }),
      ev("message_part", { message_part: { role: "assistant", part: text("Hel") } }),
      ev("message_part", { message_part: { role: "assistant", part: text("lo") } }),
    ]);
    assert.deepEqual(s.streaming, [text("Hello")]);
    s = applyEvent(s, ev("message", { message: msg(2, "assistant", [text("Hello")]) }));
    assert.deepEqual(s.streaming, []);
    assert.equal(s.lastMessageId, 2);
  },
  "a message already received is not added twice (a resumed snapshot)"() {
    const m = msg(5, "user", [text("hi")]);
    let s = run([ev("message", { message: m })]);
    s = resumeState(s);
    s = run([ev("status", { status: { status: "waiting" } }), ev("message", { message: m })], s);
    assert.equal(s.messages.length, 1);
    s = applyEvent(s, ev("message", { message: msg(3, "assistant", []) }));
    assert.equal(s.messages.length, 1, "an older id is a duplicate too");
  },
  "tool call arguments and results accumulate by call id"() {
    let parts = mergePart([], { type: "tool-call", tool_call_id: "c1", tool_name: "add", args_delta: '{"a":' });
    parts = mergePart(parts, { type: "tool-call", tool_call_id: "c1", tool_name: "add", args_delta: "1}" });
    parts = mergePart(parts, { type: "tool-result", tool_call_id: "c1", result_delta: "4" });
    parts = mergePart(parts, { type: "tool-result", tool_call_id: "c1", result_delta: "2" });
    assert.equal(parts.length, 2);
    assert.equal(parts[0].args_delta, '{"a":1}');
    assert.equal(parts[1].result_delta, "42");
    parts = mergePart(parts, { type: "tool-result", tool_call_id: "c1", result_reset: true, result_delta: "x" });
    assert.equal(parts[1].result_delta, "x");
  },
  "retry shows until the next part; an error ends the step; a new turn clears the error"() {
    const retry = { attempt: 1, delay_ms: 2000, error: "The provider is overloaded.", kind: "overloaded", retrying_at: "2026-01-01T00:00:02Z" };
    let s = run([ev("status", { status: { status: "running" } }), ev("retry", { retry })]);
    assert.deepEqual(s.retry, retry);
    s = applyEvent(s, ev("message_part", { message_part: { part: text("a") } }));
    assert.equal(s.retry, null);
    const error = { message: "The model rejected the request.", kind: "invalid_request", retryable: false };
    s = run([ev("error", { error }), ev("status", { status: { status: "error" } })], s);
    assert.deepEqual(s.error, error);
    assert.deepEqual(s.streaming, []);
    s = applyEvent(s, ev("status", { status: { status: "pending" } }));
    assert.equal(s.error, null);
  },
  "queue updates replace the queue; action_required lasts while the chat waits for the client"() {
    const q = [{ id: 1, chat_id: chat, content: [text("later")], created_at: "2026-01-01T00:00:00Z" }];
    let s = run([ev("queue_update", { queued_messages: q })]);
    assert.equal(s.queue.length, 1);
    s = applyEvent(s, ev("queue_update", { queued_messages: [] }));
    assert.equal(s.queue.length, 0);
    const calls = [{ tool_call_id: "c", tool_name: "lookup", args: "{}" }];
    s = run([ev("status", { status: { status: "requires_action" } }), ev("action_required", { action_required: { tool_calls: calls } })], s);
    assert.deepEqual(s.actionRequired, calls);
    s = applyEvent(s, ev("status", { status: { status: "running" } }));
    assert.deepEqual(s.actionRequired, []);
  },
  "an event type from a newer server changes nothing"() {
    const s = emptyChatState();
    assert.equal(applyEvent(s, ev("something_new", {})), s);
  },
  "results are found by call id across messages"() {
    const r = { type: "tool-result", tool_call_id: "c9", result: 1 };
    const map = resultsByCall([msg(1, "assistant", [{ type: "tool-call", tool_call_id: "c9" }]), msg(2, "tool", [r])]);
    assert.equal(map.get("c9"), r);
  },
};

const { listQuery, sortChats } = await load("src/chatlist.tsx");
{
  tests["the list query adds the archived filter unless the search names one"] = () => {
    assert.equal(listQuery("", "false"), "archived:false");
    assert.equal(listQuery("title:x", "any"), "title:x archived:any");
    assert.equal(listQuery("archived:true title:x", "false"), "archived:true title:x");
  };
  tests["pinned chats first by pin order, then newest activity"] = () => {
    const c = (id, pin_order, updated_at) => ({ id, pin_order, updated_at });
    const sorted = sortChats([c("a", 0, "2026-01-02"), c("b", 2, "2026-01-01"), c("c", 1, "2025-01-01"), c("d", 0, "2026-01-03")]);
    assert.deepEqual(sorted.map((x) => x.id), ["c", "b", "d", "a"]);
  };
}

let failed = 0;
for (const [name, t] of Object.entries(tests)) {
  try {
    await t();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n${e.stack}`);
  }
}
console.log(`unit tests: ${failed ? `${failed} FAILED` : "all passed"} (${Object.keys(tests).length})`);
process.exit(failed ? 1 : 0);
