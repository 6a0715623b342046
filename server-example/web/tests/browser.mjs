// Browser tests of the chat page: real headless Chromium (Debian's package, driven by
// playwright-core; no browser download) against a real chatd-server on SQLite with the
// offline demo model. Run by scripts/test.sh; `node tests/browser.mjs` runs them alone
// (build the server first: `cargo build -p server-example --bin chatd-server`).
//
// Without Chromium the tests skip with a message and exit 0, unless CHATD_REQUIRE_BROWSER=1
// (.ci/run sets it), which makes a missing browser a failure.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { api, chromiumPath, createMember, launchBrowser, repo, serverBinary, startServer } from "./harness.mjs";

/** Longest wait for anything on the page (a whole demo turn takes about 2 s). */
const WAIT_MS = 15_000;

const executable = chromiumPath();
if (!executable) {
  const msg = "Chromium not found (/usr/bin/chromium; install Debian's `chromium` package or set CHATD_CHROMIUM)";
  if (process.env.CHATD_REQUIRE_BROWSER === "1") {
    console.error(`browser tests: FAILED: ${msg}, and CHATD_REQUIRE_BROWSER=1`);
    process.exit(1);
  }
  console.log(`browser tests: SKIPPED: ${msg}`);
  process.exit(0);
}
if (!fs.existsSync(serverBinary())) {
  console.error(`browser tests: the server binary ${serverBinary()} is missing; build it with cargo build -p server-example`);
  process.exit(1);
}

const artifacts = path.resolve(
  process.env.CHATD_WEB_ARTIFACTS ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, "target"), "web-test-artifacts"),
);
fs.mkdirSync(artifacts, { recursive: true });

const started = Date.now();
const server = await startServer();
const browser = await launchBrowser(executable);
const failures = [];
/** Uncaught page errors and Content-Security-Policy violations (there must be none). */
const pageErrors = [];
/** Every HTTP request URL of the pages that carried the token (there must be none). */
const tokenUrls = [];
/** Every WebSocket URL the pages opened (each must carry it: the API reads it there). */
const socketUrls = [];

function track(page) {
  page.on("websocket", (ws) => socketUrls.push(ws.url()));
}

async function newPage(token = server.adminToken, { signIn = true } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  const errors = pageErrors;
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  context.on("request", (r) => {
    if (r.url().includes("chatd_")) tokenUrls.push({ url: r.url(), type: r.resourceType() });
  });
  context.on("page", track);
  track(page);
  page.setDefaultTimeout(WAIT_MS);
  if (signIn) {
    await page.goto(server.base);
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(".whoami").waitFor();
  }
  return { context, page, dialogs, errors };
}

async function send(page, text) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
}

async function newChat(page, text) {
  await page.locator(".new-chat").click();
  await send(page, text);
  await page.waitForURL(/\/chats\/[0-9a-f-]{36}$/);
  return page.url().split("/").pop();
}

const status = (page) => page.locator(".chat-head .status").getAttribute("data-status");
async function waitStatus(page, want) {
  await page.locator(`.chat-head .status[data-status="${want}"]`).waitFor();
}
const lastAssistant = (page) => page.locator(".messages .msg-assistant:not(.streaming)").last();

const tests = {
  async "sign in, and sign out"() {
    const { context, page } = await newPage(server.adminToken, { signIn: false });
    await page.goto(server.base);
    await page.screenshot({ path: path.join(artifacts, "signin.png") });
    await page.getByLabel("API token").fill("chatd_" + "0".repeat(64));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "logged in" }).waitFor();
    await page.getByLabel("API token").fill(server.adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    assert.equal(await page.locator(".whoami").textContent(), "admin");
    assert.equal(await page.evaluate(() => localStorage.getItem("chatd.token")), server.adminToken);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem("chatd.token")), null);
    await context.close();
  },

  async "a reply streams in word by word"() {
    const { context, page } = await newPage();
    await newChat(page, "Hello there, page");
    const streaming = page.locator(".msg.streaming .md");
    await streaming.waitFor();
    // Sample the growing reply: it must be seen at several lengths before it is stored.
    const lengths = new Set();
    while ((await page.locator(".msg.streaming").count()) > 0 && lengths.size < 50) {
      const t = await streaming.textContent().catch(() => null);
      if (t) lengths.add(t.length);
      await page.waitForTimeout(20);
    }
    assert.ok(lengths.size >= 3, `the reply grew in steps (${[...lengths].join(", ")})`);
    await waitStatus(page, "waiting");
    const reply = await lastAssistant(page).textContent();
    assert.match(reply, /demo model of chatd/);
    assert.match(reply, /Hello there, page/);
    assert.match(await lastAssistant(page).locator(".usage").textContent(), /\d+ in · \d+ out tokens/);
    await context.close();
  },

  async "a tool call and its result render"() {
    const { context, page } = await newPage();
    await newChat(page, "Please add 2 and 40");
    const tool = page.locator('.tool[data-tool="add"]').first();
    await tool.locator(".badge-done").waitFor();
    assert.match(await tool.locator(".tool-args").textContent(), /"a": 2[\s\S]*"b": 40/);
    assert.match(await tool.locator(".tool-result").textContent(), /42/);
    await waitStatus(page, "waiting");
    assert.match(await lastAssistant(page).textContent(), /42/);
    await page.screenshot({ path: path.join(artifacts, "chat-tool-call.png") });
    await context.close();
  },

  async "a message sent while busy is queued, shown, then promoted"() {
    const { context, page } = await newPage();
    await newChat(page, "first message of the queue test");
    await page.locator(".msg.streaming").waitFor();
    assert.equal(await page.getByRole("button", { name: "Queue" }).count(), 1);
    await send(page, "second message, queued");
    await page.locator(".queue .queued").filter({ hasText: "second message, queued" }).waitFor();
    assert.match(await page.locator(".queue-title").textContent(), /Queued \(1\)/);
    await page.screenshot({ path: path.join(artifacts, "chat-queue.png") });
    // Promoted when the first turn ends: it becomes a user message and gets its own reply.
    await page.locator(".msg-user").filter({ hasText: "second message, queued" }).waitFor();
    await page.locator(".queue").waitFor({ state: "detached" });
    await waitStatus(page, "waiting");
    await page.locator(".msg-assistant").filter({ hasText: "second message, queued" }).waitFor();
    assert.equal(await page.locator(".msg-user").count(), 2);
    await context.close();
  },

  async "interrupt stops the reply"() {
    const { context, page } = await newPage();
    await newChat(page, "a reply to interrupt");
    await page.locator(".msg.streaming").waitFor();
    await page.getByRole("button", { name: "Interrupt" }).click();
    await waitStatus(page, "waiting");
    // The canned reply ends with this sentence; an interrupted one never gets there.
    const text = await page.locator(".messages").textContent();
    assert.doesNotMatch(text, /chat with a real model\./);
    assert.equal(await page.getByRole("button", { name: "Send" }).count(), 1);
    await context.close();
  },

  async "editing a message replaces the later history"() {
    const { context, page } = await newPage();
    await newChat(page, "original first question");
    await waitStatus(page, "waiting");
    await lastAssistant(page).filter({ hasText: "original first question" }).waitFor();
    await send(page, "a later message");
    await page.locator(".msg-assistant").filter({ hasText: "a later message" }).waitFor();
    await waitStatus(page, "waiting");
    await page.locator(".msg-user").first().getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Edit message").fill("edited first question");
    await page.getByRole("button", { name: "Save and resend" }).click();
    await page.locator(".msg-assistant").filter({ hasText: "edited first question" }).waitFor();
    await waitStatus(page, "waiting");
    const text = await page.locator(".messages").textContent();
    assert.doesNotMatch(text, /a later message/);
    assert.doesNotMatch(text, /original first question/);
    assert.equal(await page.locator(".msg-user").count(), 1);
    await context.close();
  },

  async "a file attachment, plan mode and the model picker go with the message"() {
    const { context, page } = await newPage();
    await page.locator(".new-chat").click();
    // The demo model is the one the catalogue offers while nothing is configured.
    const options = await page.getByLabel("Model").locator("option").allTextContents();
    assert.ok(options.some((o) => /demo/.test(o)), `models: ${options}`);
    await page.getByLabel("Model").selectOption({ label: options.find((o) => /demo/.test(o)) });
    await page.locator('input[type="file"]').setInputFiles({
      name: "<i>notes<i> &amp; more.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("some notes\n"),
    });
    await page.locator(".attachments .file-name").filter({ hasText: "<i>notes<i> &amp; more.txt" }).waitFor();
    await page.getByLabel("Plan mode").check();
    await send(page, "here is a file");
    await page.waitForURL(/\/chats\//);
    await page.locator(".msg-user .file-name").filter({ hasText: "<i>notes<i> &amp; more.txt" }).waitFor();
    await page.locator(".chat-head .badge").filter({ hasText: "plan mode" }).waitFor();
    assert.equal(await page.locator(".msg-user i").count(), 0, "the file name is text");
    await waitStatus(page, "waiting");
    await context.close();
  },

  async "a chat waiting for client tool results says so"() {
    // A client-executed (dynamic) tool that the message names: the demo model calls it and
    // the chat waits in requires_action for the client's answer.
    const chat = await api(server, server.adminToken, "POST", "/api/experimental/chats", {
      content: [{ type: "text", text: "please run lookup_order" }],
      unsafe_dynamic_tools: [{ name: "lookup_order", description: "Looks an order up.", input_schema: { type: "object" } }],
    });
    const { context, page } = await newPage();
    await page.goto(`${server.base}/chats/${chat.id}`);
    await page.locator(".banner.action").filter({ hasText: "lookup_order" }).waitFor();
    await waitStatus(page, "requires_action");
    await page.locator('.tool[data-tool="lookup_order"] .badge-running').waitFor();
    await context.close();
  },

  async "the list: search with q, pins first, archive and the archived filter"() {
    const { context, page } = await newPage();
    const zebra = await newChat(page, "zebra crossing");
    // The tab that created it lists it (even when it was created before the watch opened).
    await page.locator(`.chat-item[data-chat-id="${zebra}"]`).waitFor();
    await waitStatus(page, "waiting");
    const other = await newChat(page, "another topic");
    await waitStatus(page, "waiting");
    await page.locator(`.chat-item[data-chat-id="${other}"]`).waitFor();
    // Pinned first, whatever the activity.
    await page.locator(`.chat-item[data-chat-id="${zebra}"]`).getByRole("button", { name: "pin" }).click();
    await page.locator(`.chat-item[data-chat-id="${zebra}"] button[title="Unpin"]`).waitFor();
    assert.equal(await page.locator(".chat-item").first().getAttribute("data-chat-id"), zebra);
    // Search: `q` syntax.
    await page.getByLabel("Search chats").fill("title:zebra");
    await page.locator(`.chat-item[data-chat-id="${other}"]`).waitFor({ state: "detached" });
    assert.equal(await page.locator(".chat-item").count(), 1);
    await page.getByLabel("Search chats").fill("");
    await page.locator(`.chat-item[data-chat-id="${other}"]`).waitFor();
    // Archive: gone from the active chats, listed under the archived ones.
    await page.locator(`.chat-item[data-chat-id="${other}"]`).getByRole("button", { name: "archive" }).click();
    await page.locator(`.chat-item[data-chat-id="${other}"]`).waitFor({ state: "detached" });
    await page.getByLabel("Archived").selectOption("true");
    await page.locator(`.chat-item[data-chat-id="${other}"]`).waitFor();
    assert.equal(await page.locator(`.chat-item[data-chat-id="${zebra}"]`).count(), 0);
    await context.close();
  },

  async "a second tab sees the new chat through the watch, and a reload keeps it"() {
    const { context, page } = await newPage();
    const second = await context.newPage();
    await second.goto(server.base);
    await second.locator(".watch.live").waitFor();
    const id = await newChat(page, "visible in the other tab");
    // No reload in the second tab: the chat arrives over the watch socket.
    await second.locator(`.chat-item[data-chat-id="${id}"]`).waitFor();
    await second.screenshot({ path: path.join(artifacts, "chat-list.png") });
    await waitStatus(page, "waiting");
    await page.reload();
    await page.locator(".msg-user").filter({ hasText: "visible in the other tab" }).waitFor();
    await lastAssistant(page).filter({ hasText: "visible in the other tab" }).waitFor();
    assert.equal(page.url(), `${server.base}/chats/${id}`);
    await context.close();
  },

  async "a dropped stream resumes after the last message without duplicates"() {
    const { context, page } = await newPage();
    const sockets = [];
    const urls = [];
    await page.routeWebSocket(/\/stream\?/, (ws) => {
      urls.push(ws.url());
      ws.connectToServer();
      sockets.push(ws);
    });
    await newChat(page, "before the drop");
    await waitStatus(page, "waiting");
    await lastAssistant(page).filter({ hasText: "before the drop" }).waitFor();
    const before = await page.locator(".messages .msg").count();
    // The connection drops (the page's side is closed, as a lost network would): the page
    // reconnects with after_id.
    await sockets.at(-1).close({ code: 1001, reason: "test drop" });
    const deadline = Date.now() + WAIT_MS;
    while (urls.length < 2 && Date.now() < deadline) await page.waitForTimeout(50);
    assert.ok(urls.length >= 2, "the page reconnected");
    assert.match(urls.at(-1), /after_id=\d+/);
    await page.locator(".badge.warn").waitFor({ state: "detached" });
    assert.equal(await page.locator(".messages .msg").count(), before, "no message twice");
    await send(page, "after the drop");
    await lastAssistant(page).filter({ hasText: "after the drop" }).waitFor();
    const ids = await page.locator(".messages .msg[data-message-id]").evaluateAll((els) => els.map((e) => e.getAttribute("data-message-id")));
    assert.equal(new Set(ids).size, ids.length, `unique ids: ${ids}`);
    await context.close();
  },

  async "model output cannot run script"() {
    const { context, page, dialogs } = await newPage();
    await newChat(page, "<img src=x onerror=alert(1)> and [click me](javascript:alert(2)) and <script>alert(3)</script>");
    await waitStatus(page, "waiting");
    const reply = lastAssistant(page);
    await reply.filter({ hasText: "click me" }).waitFor();
    assert.equal(await reply.locator("img, script, iframe").count(), 0);
    // No element of the page carries an event handler attribute.
    const handlers = await page.locator("body *").evaluateAll((els) =>
      els.flatMap((e) => [...e.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${e.tagName} ${a.name}`)),
    );
    assert.deepEqual(handlers, []);
    // The markup reads as text.
    assert.match(await reply.textContent(), /<img src=x onerror=alert\(1\)>/);
    const link = reply.locator("a", { hasText: "click me" });
    if ((await link.count()) > 0) {
      const href = await link.getAttribute("href");
      assert.ok(!href || !/^\s*javascript:/i.test(href), `inert link: ${href}`);
      await link.click({ modifiers: [] }).catch(() => undefined);
    }
    // The user's own message is shown as text, markup and all.
    assert.match(await page.locator(".msg-user .plain").first().textContent(), /<img src=x onerror=alert\(1\)>/);
    await page.waitForTimeout(300);
    assert.deepEqual(dialogs, [], "no dialog fired");
    await context.close();
  },

  async "a member cannot open the admin page"() {
    const memberToken = await createMember(server, "webmember");
    const { context, page } = await newPage(memberToken);
    assert.equal(await page.locator(".whoami").textContent(), "webmember");
    assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0);
    await page.goto(`${server.base}/admin`);
    await page.getByRole("alert").filter({ hasText: "Only administrators" }).waitFor();
    assert.equal(await page.locator("table.providers").count(), 0);
    // The API refuses them too, whatever the page shows.
    const res = await fetch(`${server.base}/api/experimental/chats/providers`, { headers: { "Coder-Session-Token": memberToken } });
    assert.equal(res.status, 403);
    await context.close();
  },

  async "a missing chat says so; a token revoked meanwhile returns to the sign-in form"() {
    const token = await createMember(server, "revokeme");
    const { context, page } = await newPage(token);
    await page.goto(`${server.base}/chats/${crypto.randomUUID()}`);
    await page.getByRole("alert").filter({ hasText: /not found/i }).waitFor();
    const [key] = await api(server, server.adminToken, "GET", "/api/v2/users/revokeme/keys/tokens");
    await api(server, server.adminToken, "DELETE", `/api/v2/users/revokeme/keys/${key.id}`);
    await page.locator(".new-chat").click();
    await send(page, "after the revocation");
    await page.getByRole("alert").filter({ hasText: "revoked" }).waitFor();
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem("chatd.token")), null);
    await context.close();
  },

  async "the admin page manages providers without showing keys"() {
    const { context, page } = await newPage();
    await page.getByRole("link", { name: "Admin" }).click();
    await page.locator("table.providers").waitFor();
    const secret = "sk-test-" + "k".repeat(24);
    await page.getByLabel("Provider", { exact: true }).fill("openai");
    await page.getByLabel("API key", { exact: true }).fill(secret);
    await page.getByRole("button", { name: "Add provider" }).click();
    await page.locator('tr[data-provider="openai"] .key-state').filter({ hasText: "set" }).waitFor();
    assert.equal(await page.getByLabel("API key", { exact: true }).inputValue(), "");
    const html = await page.content();
    assert.ok(!html.includes(secret), "the key is nowhere on the page");
    await page.screenshot({ path: path.join(artifacts, "admin.png") });
    // Back to the demo model for the other tests: delete the provider again.
    await page.locator('tr[data-provider="openai"]').getByRole("button", { name: "Delete" }).click();
    await page.locator('tr[data-provider="openai"] button.danger').waitFor({ state: "detached" });
    await context.close();
  },

  async "headers: CSP on the page, immutable hashed assets, JSON 404 for unknown assets"() {
    const res = await fetch(`${server.base}/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+;/);
    assert.equal(res.headers.get("cache-control"), "no-cache");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    const html = await res.text();
    const asset = /\/assets\/(app-[A-Z0-9]+\.js)/.exec(html)?.[1];
    assert.ok(asset, html);
    const a = await fetch(`${server.base}/assets/${asset}`);
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.match(a.headers.get("content-type") ?? "", /^text\/javascript/);
    const missing = await fetch(`${server.base}/assets/app-NOPE.js`);
    assert.equal(missing.status, 404);
    assert.ok((await missing.json()).message);
    for (const p of ["/admin", `/chats/${crypto.randomUUID()}`]) {
      assert.equal((await fetch(`${server.base}${p}`)).status, 200, p);
    }
    // Asked for no coding, the files come as they are, and still say they vary with it.
    const plain = await fetch(`${server.base}/assets/${asset}`, { headers: { "accept-encoding": "identity" } });
    assert.equal(plain.headers.get("content-encoding"), null);
    assert.equal(plain.headers.get("vary"), "accept-encoding");
  },

  async "the page arrives compressed, and runs"() {
    const { context, page } = await newPage(server.adminToken, { signIn: false });
    const responses = [];
    page.on("response", (r) => {
      if (r.url().startsWith(server.base)) responses.push(r);
    });
    await page.goto(server.base);
    await page.getByLabel("API token").waitFor();
    const kinds = new Map();
    for (const r of responses) kinds.set(r.request().resourceType(), r);
    for (const kind of ["document", "script", "stylesheet"]) {
      const r = kinds.get(kind);
      assert.ok(r, `no ${kind} loaded`);
      const accepted = (await r.request().allHeaders())["accept-encoding"] ?? "";
      const headers = await r.allHeaders();
      // Brotli when Chromium offers it (it may not over plain HTTP), else gzip.
      const want = /\bbr\b/.test(accepted) ? "br" : "gzip";
      assert.equal(headers["content-encoding"], want, `${kind}; Chromium sent Accept-Encoding: ${accepted}`);
      assert.equal(headers["vary"], "accept-encoding", kind);
      assert.ok((await r.body()).length > 0, kind);
    }
    await context.close();
  },
};

const only = process.env.CHATD_WEB_TEST;
for (const [name, test] of Object.entries(tests)) {
  if (only && !name.includes(only)) continue;
  const t0 = Date.now();
  try {
    await test();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n${e?.stack ?? e}`);
  }
}

if (pageErrors.length) {
  failures.push("page errors");
  console.log(`FAIL uncaught errors or CSP violations on the pages:\n  ${pageErrors.join("\n  ")}`);
} else {
  console.log("ok   no uncaught page error and no Content-Security-Policy violation");
}

// The token travelled in the query of WebSocket upgrades only.
const scrub = (u) => u.replace(/chatd_[0-9a-f]+/g, "chatd_…");
if (tokenUrls.length) {
  failures.push("token in an HTTP URL");
  console.log(`FAIL the token appeared in HTTP URLs: ${tokenUrls.map((u) => `${u.type} ${scrub(u.url)}`).join(", ")}`);
} else if (!socketUrls.length || socketUrls.some((u) => !/[?&]coder_session_token=chatd_/.test(u))) {
  failures.push("WebSocket URLs");
  console.log(`FAIL WebSocket URLs without the token parameter: ${socketUrls.map(scrub).join(", ")}`);
} else {
  console.log(`ok   the token was in no URL but the ${socketUrls.length} WebSocket upgrades`);
}

await browser.close();
await server.stop();
console.log(`browser tests: ${failures.length ? `${failures.length} FAILED` : "all passed"} in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${artifacts}`);
process.exit(failures.length ? 1 : 0);
