// Hand-written type check of the generated bindings: builds values of the main types the
// way a frontend or bot would, and narrows the discriminated unions. `npx tsc --noEmit`
// must accept this file; several lines are marked @ts-expect-error to prove the types
// reject what the server never sends.

import type {
  Chat,
  ChatError,
  ChatMessage,
  ChatMessagePart,
  ChatStreamEvent,
  ChatWatchEvent,
  CreateChatRequest,
  CreateChatMessageResponse,
  SubmitToolResultsRequest,
  ChatStatus,
  ChatErrorKind,
  Response,
  ModelCostConfig,
  ChatModelCallConfig,
  ChatUsageLimitExceededResponse,
  DynamicToolCall,
  UpdateChatRetentionDaysRequest,
} from "./index";

const chat: Chat = {
  id: "8b5f2c1e-0000-4000-8000-000000000001",
  organization_id: "8b5f2c1e-0000-4000-8000-000000000002",
  owner_id: "8b5f2c1e-0000-4000-8000-000000000003",
  root_chat_id: "8b5f2c1e-0000-4000-8000-000000000001",
  last_model_config_id: "8b5f2c1e-0000-4000-8000-000000000004",
  title: "Fix the flaky test",
  status: "running",
  last_turn_summary: null,
  created_at: "2026-03-01T12:00:00Z",
  updated_at: "2026-03-01T12:00:05.5Z",
  archived: false,
  pin_order: 0,
  mcp_server_ids: [],
  labels: { team: "infra" },
  has_unread: false,
  client_type: "api",
  children: [],
};

// Required fields are required.
// @ts-expect-error labels is always present on a Chat
const missingLabels: Chat = { ...chat, labels: undefined };

// Every status the server writes is a ChatStatus.
const statuses: ChatStatus[] = ["pending", "running", "waiting", "requires_action", "error"];
// @ts-expect-error not a status
const badStatus: ChatStatus = "sleeping";

function describePart(part: ChatMessagePart): string {
  switch (part.type) {
    case "text":
    case "reasoning":
      return part.text;
    case "tool-call":
      return `${part.tool_name ?? "?"}(${JSON.stringify(part.args ?? {})})`;
    case "tool-result":
      return part.is_error ? "error" : JSON.stringify(part.result);
    case "source":
      return part.url;
    case "file":
      return part.media_type;
    case "file-reference":
      return `${part.file_name}:${part.start_line}-${part.end_line}`;
    case "context-file":
      return part.context_file_path;
    case "skill":
      return part.skill_name;
  }
}

const message: ChatMessage = {
  id: 42,
  chat_id: chat.id,
  created_at: "2026-03-01T12:00:01Z",
  role: "assistant",
  content: [
    { type: "text", text: "Looking at the test." },
    { type: "tool-call", tool_call_id: "call_1", tool_name: "read_file", args: { path: "a.go" } },
  ],
  usage: { input_tokens: 1200, output_tokens: 80, cache_read_tokens: 1000 },
};
const rendered: string[] = (message.content ?? []).map(describePart);

function onStreamFrame(frame: ChatStreamEvent[]): ChatStatus | undefined {
  let last: ChatStatus | undefined;
  for (const event of frame) {
    switch (event.type) {
      case "status":
        last = event.status?.status;
        break;
      case "message_part":
        if (event.message_part) describePart(event.message_part.part);
        break;
      case "retry":
        if (event.retry) {
          const when: string = event.retry.retrying_at;
          const attempt: number = event.retry.attempt;
          void when;
          void attempt;
        }
        break;
      case "action_required":
        for (const call of event.action_required?.tool_calls ?? []) {
          const args: unknown = JSON.parse(call.args);
          void args;
        }
        break;
      case "error": {
        const err: ChatError | undefined = event.error;
        if (err && err.retryable) last = "error";
        break;
      }
      default:
        break;
    }
  }
  return last;
}

const watch: ChatWatchEvent = { kind: "action_required", chat, tool_calls: [{ tool_call_id: "c1", tool_name: "deploy", args: "{}" }] };

const create: CreateChatRequest = {
  organization_id: chat.organization_id,
  content: [{ type: "text", text: "Deploy to staging" }],
  labels: { source: "slack" },
  unsafe_dynamic_tools: [
    { name: "deploy", description: "Deploy a service", input_schema: { type: "object", properties: { env: { type: "string" } } } },
  ],
  client_type: "api",
};

const results: SubmitToolResultsRequest = {
  results: [
    { tool_call_id: "c1", output: { ok: true }, is_error: false },
    { tool_call_id: "c2", output: "{\"ok\":true}", is_error: false },
  ],
};

function handleSend(res: CreateChatMessageResponse): number | undefined {
  return res.queued ? res.queued_message?.id : res.message?.id;
}

const kind: ChatErrorKind = "startup_timeout";
const failure: Response = { message: "Invalid request.", validations: [{ field: "labels", detail: "too many" }] };
const limit: ChatUsageLimitExceededResponse = {
  message: "Chat usage limit exceeded.",
  spent_micros: 5_000_000,
  limit_micros: 5_000_000,
  resets_at: "2026-04-01T00:00:00Z",
};

// Prices travel as exact decimal strings.
const price: ModelCostConfig = { input_price_per_million_tokens: "3", output_price_per_million_tokens: "15" };
// @ts-expect-error prices are strings, never floats
const floatPrice: ModelCostConfig = { input_price_per_million_tokens: 3 };
const callConfig: ChatModelCallConfig = { max_output_tokens: 4096, cost: price, provider_options: { anthropic: { thinking: { budget_tokens: 2048 } } } };

// Request names that are Rust type aliases are exported under Coder's names too.
const retention: UpdateChatRetentionDaysRequest = { retention_days: 30 };
// @ts-expect-error the alias has the target's fields, nothing else
const badRetention: UpdateChatRetentionDaysRequest = { days: 30 };
const call: DynamicToolCall = { tool_call_id: "c1", tool_name: "lookup_order", args: "{}" };

export const used = [
  missingLabels, statuses, badStatus, rendered, onStreamFrame, watch, create, results, handleSend, kind, failure,
  limit, floatPrice, callConfig, retention, badRetention, call,
];
