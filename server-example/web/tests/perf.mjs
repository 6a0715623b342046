// Performance of the chat page (docs/web.md, "Performance"): first-load transfer size (and
// the content coding each file came in) and time to interactive on loopback, and the time to render a 1 000-message chat. A manual
// tool, not part of the test command. Needs the sqlite3 command-line shell to seed the
// messages straight into the store (a thousand demo turns through the API would take
// half an hour), and the same server binary and Chromium as tests/browser.mjs.
//
//   cargo build -p server-example --bin chatd-server && node tests/perf.mjs
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { api, chromiumPath, launchBrowser, startServer } from "./harness.mjs";

/** Messages in the measured chat. */
const MESSAGES = 1000;
/** Runs of each measurement; the median is reported. */
const RUNS = 5;
/** Runs of the first load, each both compressed and not (cheap, and noisier than the rest). */
const FIRST_LOAD_RUNS = 11;
/**
 * A modest link the first load is also measured on (Chromium's network emulation): loopback
 * hides what the bytes cost. Throughputs in bytes per second, latency in ms.
 */
const SLOW_NETWORK = {
  name: "10 Mbit/s, 40 ms",
  latency: 40,
  downloadThroughput: 10e6 / 8,
  uploadThroughput: 5e6 / 8,
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer();
const executable = chromiumPath();
if (!executable) throw new Error("Chromium not found");
const browser = await launchBrowser(executable);
try {
  // One real demo turn, then its two rows copied until the chat holds MESSAGES messages.
  const chat = await api(server, server.adminToken, "POST", "/api/experimental/chats", {
    content: [{ type: "text", text: "A message to measure the page with: **bold**, `code`, and a list:\n\n- one\n- two" }],
  });
  for (let i = 0; i < 200; i++) {
    const c = await api(server, server.adminToken, "GET", `/api/experimental/chats/${chat.id}`);
    if (c.status === "waiting") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const db = path.join(server.dir, "chatd.db");
  const copies = MESSAGES / 2 - 1;
  execFileSync("sqlite3", [
    db,
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${copies})
     INSERT INTO chat_messages (chat_id, created_by, model_config_id, role, content, content_version,
       visibility, compressed, deleted, input_tokens, output_tokens, total_tokens, reasoning_tokens,
       cache_creation_tokens, cache_read_tokens, context_limit, total_cost_micros, runtime_ms,
       provider_response_id, created_at)
     SELECT m.chat_id, m.created_by, m.model_config_id, m.role, m.content, m.content_version,
       m.visibility, m.compressed, m.deleted, m.input_tokens, m.output_tokens, m.total_tokens,
       m.reasoning_tokens, m.cache_creation_tokens, m.cache_read_tokens, m.context_limit,
       m.total_cost_micros, m.runtime_ms, m.provider_response_id, m.created_at
     FROM n, (SELECT * FROM chat_messages WHERE chat_id = '${chat.id}' AND deleted = 0
              AND visibility IN ('user', 'both') ORDER BY id) m ORDER BY n.i, m.id;`,
  ]);
  const { messages } = await api(server, server.adminToken, "GET", `/api/experimental/chats/${chat.id}/messages?limit=1`);
  console.log(`seeded chat ${chat.id}; newest message id ${messages[0]?.id}`);

  // First load: a fresh context each run (empty cache), the sign-in page. Each run loads it
  // twice, as Chromium asks for it (compressed) and with `Accept-Encoding: identity` (the
  // files as they are, as the server sent them before it compressed), so both are measured
  // under the same machine load.
  async function firstLoad(extraHTTPHeaders, network) {
    const context = await browser.newContext({ extraHTTPHeaders });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    if (network) await cdp.send("Network.emulateNetworkConditions", { offline: false, ...network });
    let bytes = 0;
    cdp.on("Network.loadingFinished", (e) => (bytes += e.encodedDataLength));
    // The Content-Encoding each file came in (the server picks it from Accept-Encoding).
    const codings = [];
    cdp.on("Network.responseReceived", (e) => {
      const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
      codings.push(`${e.type.toLowerCase()} ${h["content-encoding"] ?? "identity"}`);
    });
    await page.goto(server.base, { waitUntil: "load" });
    await page.getByLabel("API token").waitFor();
    const nav = await page.evaluate(() => {
      const n = performance.getEntriesByType("navigation")[0];
      return { dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd };
    });
    await context.close();
    return { bytes, codings, ...nav };
  }
  const IDENTITY = { "Accept-Encoding": "identity" };
  const firstLoads = [
    ["first load", {}, null],
    ["first load, Accept-Encoding: identity", IDENTITY, null],
    [`first load, ${SLOW_NETWORK.name}`, {}, SLOW_NETWORK],
    [`first load, ${SLOW_NETWORK.name}, Accept-Encoding: identity`, IDENTITY, SLOW_NETWORK],
  ].map(([what, headers, network]) => ({ what, headers, network, runs: [] }));
  for (let i = 0; i < FIRST_LOAD_RUNS; i++) {
    for (const f of firstLoads) f.runs.push(await firstLoad(f.headers, f.network));
  }

  // A chat opened: navigation start → every message in the DOM (the stream's snapshot
  // received, parsed and rendered, markdown included). The baseline, in the same run, is a
  // two-message chat: page load, sign-in check and socket set-up without the history.
  const small = await api(server, server.adminToken, "POST", "/api/experimental/chats", {
    content: [{ type: "text", text: "the baseline chat" }],
  });
  for (let i = 0; i < 200; i++) {
    const c = await api(server, server.adminToken, "GET", `/api/experimental/chats/${small.id}`);
    if (c.status === "waiting") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  async function openChat(id, count) {
    const context = await browser.newContext();
    await context.addInitScript((t) => localStorage.setItem("chatd.token", t), server.adminToken);
    const page = await context.newPage();
    await page.goto(`${server.base}/chats/${id}`);
    await page.waitForFunction((n) => document.querySelectorAll(".messages .msg").length >= n, count, {
      polling: "raf",
      timeout: 60_000,
    });
    const t = await page.evaluate(() => performance.now());
    await context.close();
    return t;
  }
  const renders = [];
  const baseline = [];
  for (let i = 0; i < RUNS; i++) {
    baseline.push(await openChat(small.id, 2));
    renders.push(await openChat(chat.id, MESSAGES));
  }

  const fmt = (x) => x.toFixed(0);
  for (const { what, runs } of firstLoads) {
    console.log(`${what}: ${median(runs.map((l) => l.bytes))} bytes transferred (all requests, headers included), received as ${runs[0]?.codings.join(", ")}`);
    console.log(`${what}: DOMContentLoaded (page rendered, interactive) median ${fmt(median(runs.map((l) => l.dcl)))} ms, load ${fmt(median(runs.map((l) => l.load)))} ms; runs ${runs.map((l) => fmt(l.dcl)).join(", ")}`);
  }
  console.log(`${MESSAGES}-message chat rendered: median ${fmt(median(renders))} ms after navigation start; runs ${renders.map(fmt).join(", ")}`);
  console.log(`baseline, 2-message chat: median ${fmt(median(baseline))} ms; runs ${baseline.map(fmt).join(", ")}`);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
} finally {
  await browser.close();
  await server.stop();
}
