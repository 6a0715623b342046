// Drives the AI Gateway with the official SDKs. Reads a plan (JSON) from the file named by
// the first argument: { "base": "http://127.0.0.1:port", "calls": [ call, … ] }, runs the
// calls one after another, and prints one JSON array of results to stdout.
//
// A call: { id, sdk: "openai" | "anthropic", api: "chat" | "responses" | "messages" |
// "models", instance, apiKey, authToken?, headers?, stream, tools?, raw?, model? }.
// A result: { id, ok, text, toolCalls: [{id, name, arguments}], model, usage, status,
// retryAfter, shouldRetry, error, rawBody? } — the SDK's own view of the answer.
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));

const weatherToolOpenAI = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const weatherToolResponses = {
  type: "function",
  name: "get_weather",
  description: "Current weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};
const weatherToolAnthropic = {
  name: "get_weather",
  description: "Current weather for a city",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

function openaiClient(call) {
  return new OpenAI({
    apiKey: call.apiKey,
    baseURL: `${plan.base}/api/v2/aibridge/${call.instance}/v1`,
    defaultHeaders: call.headers ?? {},
    maxRetries: 0,
    timeout: 30_000,
  });
}

function anthropicClient(call) {
  const options = {
    baseURL: `${plan.base}/api/v2/aibridge/${call.instance}`,
    defaultHeaders: call.headers ?? {},
    maxRetries: 0,
    timeout: 30_000,
  };
  if (call.authToken) {
    options.authToken = call.authToken;
    options.apiKey = null;
  } else {
    options.apiKey = call.apiKey;
  }
  return new Anthropic(options);
}

async function chat(call) {
  const client = openaiClient(call);
  const body = {
    model: "gpt-4o-2024-08-06",
    messages: [{ role: "user", content: "What is the weather in New York City?" }],
    stream: call.stream,
  };
  if (call.tools) body.tools = [weatherToolOpenAI];
  if (call.raw) {
    const response = await client.chat.completions.create(body).asResponse();
    return { rawBody: await response.text(), status: response.status };
  }
  if (!call.stream) {
    const c = await client.chat.completions.create(body);
    const m = c.choices[0].message;
    return {
      model: c.model,
      text: m.content ?? "",
      toolCalls: (m.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
      usage: c.usage,
    };
  }
  const stream = await client.chat.completions.create(body);
  let text = "";
  let model = null;
  const calls = new Map();
  let usage = null;
  for await (const chunk of stream) {
    model = chunk.model ?? model;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      text += choice.delta?.content ?? "";
      for (const t of choice.delta?.tool_calls ?? []) {
        const cur = calls.get(t.index) ?? { id: "", name: "", arguments: "" };
        if (t.id) cur.id = t.id;
        if (t.function?.name) cur.name = t.function.name;
        cur.arguments += t.function?.arguments ?? "";
        calls.set(t.index, cur);
      }
    }
  }
  return { model, text, toolCalls: [...calls.values()], usage };
}

async function responses(call) {
  const client = openaiClient(call);
  const body = { model: "gpt-5.1", input: "Say hello", stream: call.stream };
  if (call.tools) body.tools = [weatherToolResponses];
  if (!call.stream) {
    const r = await client.responses.create(body);
    return {
      model: r.model,
      text: r.output_text ?? "",
      toolCalls: r.output.filter((o) => o.type === "function_call").map((o) => ({ id: o.call_id, name: o.name, arguments: o.arguments })),
      usage: r.usage,
    };
  }
  const stream = await client.responses.create(body);
  let text = "";
  let final = null;
  for await (const event of stream) {
    if (event.type === "response.output_text.delta") text += event.delta;
    if (event.type === "response.completed") final = event.response;
  }
  return {
    model: final?.model ?? null,
    text,
    toolCalls: (final?.output ?? []).filter((o) => o.type === "function_call").map((o) => ({ id: o.call_id, name: o.name, arguments: o.arguments })),
    usage: final?.usage ?? null,
  };
}

async function messages(call) {
  const client = anthropicClient(call);
  const body = {
    model: call.model ?? "claude-sonnet-4-5",
    max_tokens: 1024,
    messages: [{ role: "user", content: "What is the weather in Paris?" }],
    metadata: { user_id: JSON.stringify({ device_id: "d1", account_uuid: "", session_id: "claude-session-1" }) },
  };
  if (call.tools) body.tools = [weatherToolAnthropic];
  if (!call.stream) {
    const m = await client.messages.create(body);
    return {
      model: m.model,
      text: m.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
      toolCalls: m.content.filter((b) => b.type === "tool_use").map((b) => ({ id: b.id, name: b.name, arguments: JSON.stringify(b.input) })),
      usage: m.usage,
    };
  }
  const stream = client.messages.stream(body);
  const m = await stream.finalMessage();
  return {
    model: m.model,
    text: m.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
    toolCalls: m.content.filter((b) => b.type === "tool_use").map((b) => ({ id: b.id, name: b.name, arguments: JSON.stringify(b.input) })),
    usage: m.usage,
  };
}

async function models(call) {
  if (call.sdk === "anthropic") {
    const page = await anthropicClient(call).models.list();
    return { models: page.data.map((m) => m.id) };
  }
  const page = await openaiClient(call).models.list();
  return { models: page.data.map((m) => m.id) };
}

const apis = { chat, responses, messages, models };

const results = [];
for (const call of plan.calls) {
  const result = { id: call.id, ok: true };
  try {
    Object.assign(result, await apis[call.api](call));
  } catch (e) {
    result.ok = false;
    result.error = String(e?.message ?? e);
    if (e && typeof e.status === "number") result.status = e.status;
    const headers = e?.headers;
    if (headers && typeof headers.get === "function") {
      result.retryAfter = headers.get("retry-after");
      result.shouldRetry = headers.get("x-should-retry");
    }
    if (e?.error !== undefined) result.errorBody = e.error;
  }
  results.push(result);
}
process.stdout.write(JSON.stringify(results));
