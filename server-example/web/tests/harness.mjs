// What the browser tests and the performance measurement share: a real chatd-server on a
// fresh SQLite database with the demo model, and Debian's Chromium driven by playwright-core.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../../..");

/** How long the server may take to print its address. */
const SERVER_START_TIMEOUT_MS = 30_000;

/** The Chromium to drive: CHATD_CHROMIUM when set (and only it), else Debian's. */
export function chromiumPath() {
  const candidates = process.env.CHATD_CHROMIUM
    ? [process.env.CHATD_CHROMIUM]
    : ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
  return candidates.find((p) => fs.existsSync(p)) ?? null;
}

/** The server binary: CHATD_SERVER_BIN, else the cargo target directory's debug build. */
export function serverBinary() {
  if (process.env.CHATD_SERVER_BIN) return process.env.CHATD_SERVER_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(repo, "target");
  return path.join(path.resolve(repo, target), "debug", "chatd-server");
}

/** Starts chatd-server on a free loopback port with a new database; resolves once it listens. */
export async function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chatd-web-"));
  const env = { ...process.env, CHATD_LOG: "info", NO_COLOR: "1" };
  // No provider from the environment: the demo model must answer.
  for (const k of Object.keys(env)) if (/_API_KEY$/.test(k) || k === "CHATD_ADMIN_TOKEN") delete env[k];
  const child = spawn(
    serverBinary(),
    ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${path.join(dir, "chatd.db")}`],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), SERVER_START_TIMEOUT_MS);
    const look = () => {
      const token = /Admin API token[^:]*: (chatd_[0-9a-f]+)/.exec(stdout)?.[1];
      const listen = /listen=(\S+)/.exec(stderr)?.[1];
      if (token && listen) {
        clearTimeout(timer);
        resolve({ token, base: `http://${listen}` });
      }
    };
    child.stdout.on("data", (d) => {
      stdout += d;
      look();
    });
    child.stderr.on("data", (d) => {
      stderr += d;
      look();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}):\n${stderr}`));
    });
  });
  const { token, base } = await ready;
  return {
    base,
    adminToken: token,
    dir,
    log: () => stderr,
    async stop() {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A JSON API call with a token. */
export async function api(server, token, method, p, body) {
  const res = await fetch(`${server.base}${p}`, {
    method,
    headers: { "Coder-Session-Token": token, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A member user and a token of theirs. */
export async function createMember(server, username) {
  await api(server, server.adminToken, "POST", "/api/v2/users", {
    email: `${username}@example.com`,
    username,
    name: username,
  });
  const { key } = await api(server, server.adminToken, "POST", `/api/v2/users/${username}/keys/tokens`, {
    token_name: "web-test",
  });
  return key;
}

/** Launches Chromium headless (without the sandbox when running as root, which it refuses). */
export async function launchBrowser(executablePath) {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  return chromium.launch({ executablePath, headless: true, args: root ? ["--no-sandbox"] : [] });
}
