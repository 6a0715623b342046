// The state of one open chat, built from the stream's events: the persisted messages
// (unique by id, in id order), the parts of the step being streamed, status, queue, retry,
// error and pending client tool calls. Pure functions, so a reconnect replays cleanly.
import type {
  ChatError,
  ChatMessage,
  ChatMessagePart,
  ChatQueuedMessage,
  ChatStatus,
  ChatStreamEvent,
  ChatStreamRetry,
  ChatStreamToolCall,
  ChatToolResultPart,
} from "../../../bindings/index";

export interface ChatState {
  /** Persisted messages, ascending ids, no duplicates. */
  messages: ChatMessage[];
  /** The highest message id received: a reconnect resumes after it. */
  lastMessageId: number;
  /** Parts of the step in progress, deltas merged. */
  streaming: ChatMessagePart[];
  status: ChatStatus | null;
  queue: ChatQueuedMessage[];
  retry: ChatStreamRetry | null;
  error: ChatError | null;
  actionRequired: ChatStreamToolCall[];
}

export function emptyChatState(): ChatState {
  return {
    messages: [],
    lastMessageId: 0,
    streaming: [],
    status: null,
    queue: [],
    retry: null,
    error: null,
    actionRequired: [],
  };
}

/**
 * The state to resume from after a dropped socket: the messages stay (the new socket asks
 * only for later ones with `after_id`), and what the snapshot sends again is cleared.
 */
export function resumeState(s: ChatState): ChatState {
  return { ...s, streaming: [], queue: [], retry: null, actionRequired: [] };
}

/** Appends a streamed part to the step's parts, merging deltas into the part they extend. */
export function mergePart(parts: ChatMessagePart[], part: ChatMessagePart): ChatMessagePart[] {
  const last = parts[parts.length - 1];
  switch (part.type) {
    case "text":
    case "reasoning":
      if (last && last.type === part.type) {
        return [...parts.slice(0, -1), { ...last, text: last.text + part.text }];
      }
      return [...parts, { ...part }];
    case "tool-call": {
      const at = parts.findIndex((p) => p.type === "tool-call" && p.tool_call_id === part.tool_call_id);
      const prev = at >= 0 ? parts[at] : undefined;
      if (!prev || prev.type !== "tool-call") return [...parts, { ...part }];
      const merged = {
        ...prev,
        ...part,
        args: part.args !== undefined && part.args !== null ? part.args : prev.args,
        args_delta: (prev.args_delta ?? "") + (part.args_delta ?? ""),
      };
      return parts.map((p, i) => (i === at ? merged : p));
    }
    case "tool-result": {
      const at = parts.findIndex((p) => p.type === "tool-result" && p.tool_call_id === part.tool_call_id);
      const prev = at >= 0 ? parts[at] : undefined;
      if (!prev || prev.type !== "tool-result") return [...parts, { ...part }];
      const base = part.result_reset ? "" : (prev.result_delta ?? "");
      const merged = {
        ...prev,
        ...part,
        result: part.result !== undefined && part.result !== null ? part.result : prev.result,
        result_delta: base + (part.result_delta ?? ""),
      };
      return parts.map((p, i) => (i === at ? merged : p));
    }
    default:
      return [...parts, part];
  }
}

/** Applies one stream event. */
export function applyEvent(s: ChatState, e: ChatStreamEvent): ChatState {
  switch (e.type) {
    case "status": {
      const status = e.status?.status ?? s.status;
      const busy = status === "running" || status === "pending";
      return {
        ...s,
        status,
        streaming: status === "running" ? s.streaming : [],
        retry: status === "running" ? s.retry : null,
        error: busy ? null : s.error,
        actionRequired: status === "requires_action" ? s.actionRequired : [],
      };
    }
    case "message_part":
      if (!e.message_part) return s;
      return { ...s, streaming: mergePart(s.streaming, e.message_part.part), retry: null };
    case "message": {
      const m = e.message;
      // Already have it (a snapshot overlapping what a previous socket delivered).
      if (!m || m.id <= s.lastMessageId) return s;
      // A persisted assistant or tool message replaces the parts that streamed it.
      const streaming = m.role === "user" ? s.streaming : [];
      return { ...s, messages: [...s.messages, m], lastMessageId: m.id, streaming };
    }
    case "error":
      return { ...s, error: e.error ?? null, retry: null };
    case "retry":
      return { ...s, retry: e.retry ?? null };
    case "queue_update":
      return { ...s, queue: e.queued_messages ?? [] };
    case "action_required":
      return { ...s, actionRequired: e.action_required?.tool_calls ?? [] };
    default:
      // An event type from a newer server: nothing to show for it.
      return s;
  }
}

/** Every tool result in the messages, by tool call id: a call renders with its result. */
export function resultsByCall(messages: ChatMessage[]): Map<string, ChatToolResultPart> {
  const out = new Map<string, ChatToolResultPart>();
  for (const m of messages) {
    for (const p of m.content ?? []) {
      if (p.type === "tool-result" && p.tool_call_id) out.set(p.tool_call_id, p);
    }
  }
  return out;
}
