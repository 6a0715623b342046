// Rendering of message parts. Model text goes through renderMarkdown (sanitized) and is the
// only HTML set on the page; everything else (user text, tool arguments and results, file
// names) is rendered as text nodes, which can never become markup.
import { Component } from "preact";
import type {
  ChatMessage,
  ChatMessagePart,
  ChatMessageUsage,
  ChatToolCallPart,
  ChatToolResultPart,
} from "../../../bindings/index";
import { renderMarkdown } from "./markdown";

/** Rendered markdown of persisted parts: each part object is rendered once. */
const rendered = new WeakMap<object, string>();

function Markdown({ part, text }: { part: object | null; text: string }) {
  let html = part ? rendered.get(part) : undefined;
  if (html === undefined) {
    html = renderMarkdown(text);
    if (part) rendered.set(part, html);
  }
  return <div class="md" dangerouslySetInnerHTML={{ __html: html }} />;
}

/** JSON of a tool's arguments or result, pretty-printed, as text. */
export function pretty(value: unknown, fallback: string | undefined): string {
  if (value === undefined || value === null) return fallback ?? "";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function ToolCall({ call, result }: { call: ChatToolCallPart; result: ChatToolResultPart | undefined }) {
  const state = !result ? "running" : result.is_error ? "failed" : "done";
  return (
    <div class={`tool tool-${state}`} data-tool={call.tool_name ?? ""}>
      <div class="tool-head">
        <span class="tool-name">{call.tool_name ?? "tool"}</span>
        {call.mcp_server_config_id ? <span class="badge">MCP</span> : null}
        {call.provider_executed ? <span class="badge">provider</span> : null}
        <span class={`badge badge-${state}`}>{state}</span>
      </div>
      <div class="tool-label">arguments</div>
      <pre class="tool-args">{pretty(call.args, call.args_delta)}</pre>
      {result ? (
        <>
          <div class="tool-label">{result.is_error ? "error" : "result"}</div>
          <pre class="tool-result">{pretty(result.result, result.result_delta)}</pre>
        </>
      ) : null}
    </div>
  );
}

/** One part; tool results render under their call, so they are skipped where `results` has them. */
export function Part({
  part,
  role,
  results,
  streaming,
}: {
  part: ChatMessagePart;
  role: string;
  results: Map<string, ChatToolResultPart>;
  streaming: boolean;
}) {
  switch (part.type) {
    case "text":
      if (role === "user") return <div class="plain">{part.text}</div>;
      return <Markdown part={streaming ? null : part} text={part.text} />;
    case "reasoning":
      return (
        <details class="reasoning">
          <summary>Reasoning</summary>
          <div class="plain">{part.text}</div>
        </details>
      );
    case "tool-call":
      return <ToolCall call={part} result={part.tool_call_id ? results.get(part.tool_call_id) : undefined} />;
    case "tool-result":
      // Shown with its call; a result without a call in view renders on its own.
      if (part.tool_call_id && results.has(part.tool_call_id) && !streaming) return null;
      return (
        <div class="tool">
          <div class="tool-head">
            <span class="tool-name">{part.tool_name ?? "tool"}</span>
            <span class="badge">{part.is_error ? "error" : "result"}</span>
          </div>
          <pre class="tool-result">{pretty(part.result, part.result_delta)}</pre>
        </div>
      );
    case "file":
      return (
        <div class="file">
          📎 <span class="file-name">{part.name || part.file_id || "file"}</span> ({part.media_type})
        </div>
      );
    case "file-reference":
      return (
        <div class="file">
          <span class="file-name">{part.file_name}</span> lines {part.start_line}–{part.end_line}
          <pre>{part.content}</pre>
        </div>
      );
    case "source":
      return <div class="source">source: {part.title || part.url}</div>;
    case "context-file":
      return <div class="source">context: {part.context_file_path}</div>;
    case "skill":
      return <div class="source">skill: {part.skill_name}</div>;
    default:
      return null;
  }
}

/** Microdollars as dollars (six decimals below a cent, so a cheap reply is not "$0.00"). */
export function dollars(micros: number): string {
  return `$${(micros / 1_000_000).toFixed(micros !== 0 && Math.abs(micros) < 10_000 ? 6 : 2)}`;
}

/** "12 in · 34 out" from a usage, or null when it says nothing. */
export function usageText(u: ChatMessageUsage | undefined): string | null {
  if (!u) return null;
  const bits: string[] = [];
  if (u.input_tokens !== undefined) bits.push(`${u.input_tokens} in`);
  if (u.output_tokens !== undefined) bits.push(`${u.output_tokens} out`);
  if (u.cache_read_tokens) bits.push(`${u.cache_read_tokens} cached`);
  if (u.reasoning_tokens) bits.push(`${u.reasoning_tokens} reasoning`);
  return bits.length ? `${bits.join(" · ")} tokens` : null;
}

export interface MessageProps {
  message: ChatMessage;
  results: Map<string, ChatToolResultPart>;
  onEdit: ((m: ChatMessage) => void) | null;
}

/**
 * A persisted message. A class with shouldComponentUpdate: a message never changes once
 * stored, so a 1 000-message chat re-renders only what is new while a reply streams.
 */
export class MessageView extends Component<MessageProps> {
  override shouldComponentUpdate(next: MessageProps): boolean {
    const prev = this.props;
    if (next.message !== prev.message || (next.onEdit === null) !== (prev.onEdit === null)) return true;
    if (next.results === prev.results) return false;
    // A new results map (a message arrived): only a message whose calls got a result, or
    // whose results found their call, changes.
    return (next.message.content ?? []).some(
      (p) =>
        (p.type === "tool-call" || p.type === "tool-result") &&
        p.tool_call_id !== undefined &&
        next.results.get(p.tool_call_id) !== prev.results.get(p.tool_call_id),
    );
  }
  override render() {
    const { message, results, onEdit } = this.props;
    const parts = message.content ?? [];
    // A tool message whose results all render under their calls shows nothing.
    const visible = parts.filter((p) => !(p.type === "tool-result" && p.tool_call_id && results.has(p.tool_call_id)));
    if (message.role === "tool" && visible.length === 0) return null;
    const tokens = message.role === "assistant" ? usageText(message.usage) : null;
    // The exact cost of the model call that wrote the message, when the server knows it.
    const cost = message.total_cost_micros !== undefined ? dollars(message.total_cost_micros) : null;
    const usage = [tokens, cost].filter((t) => t !== null).join(" · ");
    return (
      <div class={`msg msg-${message.role}`} data-message-id={message.id}>
        <div class="msg-role">
          {message.role}
          {onEdit && message.role === "user" ? (
            <button class="link edit" type="button" onClick={() => onEdit(message)}>
              Edit
            </button>
          ) : null}
        </div>
        {parts.map((p, i) => (
          <Part key={i} part={p} role={message.role} results={results} streaming={false} />
        ))}
        {usage ? <div class="usage">{usage}</div> : null}
      </div>
    );
  }
}
