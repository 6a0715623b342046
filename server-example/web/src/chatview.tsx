// One chat: history and live step from the stream WebSocket, status banners, queue, and the
// composer. Also the new-chat composer at `/`.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type {
  Chat,
  ChatCostChatBreakdown,
  ChatInputPart,
  ChatMessage,
  ChatModelsResponse,
  User,
} from "../../../bindings/index";
import { ApiError, parseStreamFrame, type Api } from "./api";
import { applyEvent, emptyChatState, resultsByCall, resumeState, type ChatState } from "./chatstate";
import { dollars, MessageView, Part } from "./parts";
import { keepOpen } from "./socket";

/** How often a retry countdown refreshes. */
const TICK_MS = 250;

/** Within this many pixels of the end the view follows new output. */
const STICK_PX = 80;

function errorText(e: unknown): string {
  return e instanceof ApiError ? e.describe() : String(e);
}

function ModelPicker({
  models,
  value,
  onChange,
}: {
  models: ChatModelsResponse | null;
  value: string;
  onChange: (v: string) => void;
}) {
  return (
    <select class="model" aria-label="Model" value={value} onChange={(e) => onChange(e.currentTarget.value)}>
      <option value="">Default model</option>
      {(models?.providers ?? []).flatMap((p) =>
        p.models.map((m) => (
          <option key={m.id} value={m.id} disabled={!p.available}>
            {m.display_name || m.model}
            {p.available ? "" : ` (${p.unavailable_reason ?? "unavailable"})`}
          </option>
        )),
      )}
    </select>
  );
}

interface ComposerProps {
  api: Api;
  user: User;
  models: ChatModelsResponse | null;
  busy: boolean;
  planDefault: boolean;
  onSubmit: (content: ChatInputPart[], model: string, plan: boolean) => Promise<void>;
  onInterrupt: (() => Promise<void>) | null;
}

/** Text, attachments, model, plan mode; Send queues while the chat is busy. */
function Composer({ api, user, models, busy, planDefault, onSubmit, onInterrupt }: ComposerProps) {
  const [text, setText] = useState("");
  const [files, setFiles] = useState<{ id: string; name: string }[]>([]);
  const [model, setModel] = useState("");
  const [plan, setPlan] = useState(planDefault);
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  useEffect(() => setPlan(planDefault), [planDefault]);

  const attach = async (input: HTMLInputElement) => {
    const chosen = Array.from(input.files ?? []);
    input.value = "";
    const org = user.organization_ids[0];
    if (!org) {
      setError("You are in no organization, so files cannot be uploaded.");
      return;
    }
    for (const f of chosen) {
      try {
        const up = await api.upload(org, f);
        setFiles((prev) => [...prev, { id: up.id, name: f.name }]);
      } catch (e) {
        setError(`${f.name}: ${errorText(e)}`);
      }
    }
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const content: ChatInputPart[] = [];
    if (text.trim()) content.push({ type: "text", text });
    for (const f of files) content.push({ type: "file", file_id: f.id });
    if (content.length === 0) return;
    setSending(true);
    setError(null);
    try {
      await onSubmit(content, model, plan);
      setText("");
      setFiles([]);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setSending(false);
    }
  };

  return (
    <form class="composer" onSubmit={submit}>
      <textarea
        aria-label="Message"
        placeholder={busy ? "The chat is busy: your message will be queued" : "Message"}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            (e.currentTarget.form as HTMLFormElement).requestSubmit();
          }
        }}
      />
      {files.length ? (
        <div class="attachments">
          {files.map((f) => (
            <span key={f.id} class="chip file-name">
              📎 {f.name}
              <button type="button" class="link" onClick={() => setFiles(files.filter((x) => x.id !== f.id))}>
                ×
              </button>
            </span>
          ))}
        </div>
      ) : null}
      <div class="composer-row">
        <label class="button-like">
          Attach
          <input type="file" hidden onChange={(e) => void attach(e.currentTarget)} />
        </label>
        <ModelPicker models={models} value={model} onChange={setModel} />
        <label class="plan">
          <input type="checkbox" checked={plan} onChange={(e) => setPlan(e.currentTarget.checked)} /> Plan mode
        </label>
        <span class="grow" />
        {onInterrupt && busy ? (
          <button type="button" class="danger" onClick={() => void onInterrupt().catch((e) => setError(errorText(e)))}>
            Interrupt
          </button>
        ) : null}
        <button type="submit" disabled={sending}>
          {busy ? "Queue" : "Send"}
        </button>
      </div>
      {error ? <div class="error" role="alert">{error}</div> : null}
    </form>
  );
}

/** `/`: the first message creates a chat. */
export function NewChat(props: {
  api: Api;
  user: User;
  models: ChatModelsResponse | null;
  navigate: (path: string) => void;
}) {
  return (
    <div class="chat">
      <div class="empty">
        <h2>New chat</h2>
        <p>Write the first message. With no provider configured, the server's offline demo model answers.</p>
      </div>
      <Composer
        api={props.api}
        user={props.user}
        models={props.models}
        busy={false}
        planDefault={false}
        onInterrupt={null}
        onSubmit={async (content, model, plan) => {
          const chat = await props.api.createChat({
            content,
            client_type: "ui",
            ...(model ? { model_config_id: model } : {}),
            ...(plan ? { plan_mode: "plan" as const } : {}),
          });
          props.navigate(`/chats/${chat.id}`);
        }}
      />
    </div>
  );
}

function Countdown({ until }: { until: string }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), TICK_MS);
    return () => window.clearInterval(t);
  }, []);
  const left = Math.max(0, Math.ceil((Date.parse(until) - now) / 1000));
  return <span class="countdown">{left}s</span>;
}

/** `/chats/{id}`. */
export function ChatView(props: {
  api: Api;
  user: User;
  chatId: string;
  models: ChatModelsResponse | null;
  chat: Chat | null;
}) {
  const { api, chatId } = props;
  const [state, setState] = useState<ChatState>(emptyChatState);
  const [chat, setChat] = useState<Chat | null>(props.chat);
  const [connected, setConnected] = useState(false);
  const [generation, setGeneration] = useState(0);
  const [editing, setEditing] = useState<ChatMessage | null>(null);
  const [editText, setEditText] = useState("");
  const [cost, setCost] = useState<ChatCostChatBreakdown | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const stateRef = useRef(state);
  stateRef.current = state;
  const bottom = useRef<HTMLDivElement>(null);

  useEffect(() => setChat(props.chat ?? chat), [props.chat]);

  // The stream: snapshot then live; after a drop, resume after the last message received.
  useEffect(() => {
    setState(emptyChatState());
    stateRef.current = emptyChatState();
    let first = true;
    const stop = keepOpen({
      url: () => api.streamUrl(chatId, first ? null : stateRef.current.lastMessageId),
      onOpen: () => {
        first = false;
        setConnected(true);
        setState((s) => resumeState(s));
      },
      onMessage: (data) => {
        const events = parseStreamFrame(data);
        if (events.length) setState((s) => events.reduce(applyEvent, s));
      },
      onDown: () => setConnected(false),
    });
    api
      .getChat(chatId)
      .then((c) => setChat(c))
      .catch((e) => {
        setLoadError(errorText(e));
        // No such chat (or not the caller's): there is nothing to reconnect to.
        if (e instanceof ApiError && (e.status === 404 || e.status === 403 || e.status === 400)) stop();
      });
    return stop;
  }, [api, chatId, generation]);

  // The chat's spend: its root's entry in the caller's cost summary since the chat began.
  useEffect(() => {
    if (!chat || state.status === "running") return;
    const start = new Date(chat.created_at);
    start.setSeconds(start.getSeconds() - 1);
    api
      .costSummary(start, new Date(Date.now() + 60_000))
      .then((s) => setCost(s.by_chat.find((b) => b.root_chat_id === (chat.root_chat_id ?? chat.id)) ?? null))
      .catch(() => setCost(null));
  }, [api, chat?.id, state.lastMessageId, state.status]);

  // Follow the conversation while the reader is at its end; leave them be when they
  // scrolled up to read.
  const stick = useRef(true);
  useEffect(() => {
    if (stick.current) bottom.current?.scrollIntoView({ block: "end" });
  }, [state.messages.length, state.streaming]);

  const results = useMemo(() => resultsByCall(state.messages), [state.messages]);
  const streamResults = useMemo(() => {
    const m = new Map(results);
    for (const p of state.streaming) if (p.type === "tool-result" && p.tool_call_id) m.set(p.tool_call_id, p);
    return m;
  }, [results, state.streaming]);

  const busy = state.status === "running" || state.status === "pending";
  const totals = useMemo(() => {
    let input = 0;
    let output = 0;
    for (const m of state.messages) {
      input += m.usage?.input_tokens ?? 0;
      output += m.usage?.output_tokens ?? 0;
    }
    return { input, output };
  }, [state.messages]);

  const startEdit = (m: ChatMessage) => {
    setEditing(m);
    setEditText((m.content ?? []).map((p) => (p.type === "text" ? p.text : "")).join(""));
  };
  const saveEdit = async () => {
    if (!editing) return;
    // The new text, and the message's attachments kept as they were.
    const content: ChatInputPart[] = [{ type: "text", text: editText }];
    for (const p of editing.content ?? []) {
      if (p.type === "file" && p.file_id) content.push({ type: "file", file_id: p.file_id });
    }
    try {
      await api.edit(chatId, editing.id, { content });
      setEditing(null);
      // The later history is gone: start over from a fresh snapshot.
      setGeneration((g) => g + 1);
    } catch (e) {
      setLoadError(errorText(e));
    }
  };

  return (
    <div class="chat">
      <div class="chat-head">
        <h2 class="chat-title">{chat?.title || "Chat"}</h2>
        <span class={`status status-${state.status ?? "unknown"}`} data-status={state.status ?? ""}>
          {state.status ?? "connecting"}
        </span>
        {chat?.plan_mode === "plan" ? <span class="badge">plan mode</span> : null}
        {!connected ? <span class="badge warn">reconnecting…</span> : null}
        <span class="grow" />
        <span class="chat-cost" title="Tokens of the messages shown; cost from the cost report">
          {totals.input} in · {totals.output} out tokens
          {cost ? ` · ${dollars(cost.total_cost_micros)}` : ""}
        </span>
      </div>
      {loadError ? <div class="error" role="alert">{loadError}</div> : null}
      <div
        class="messages"
        data-count={state.messages.length}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
        }}
      >
        {state.messages.map((m) =>
          editing && editing.id === m.id ? (
            <div key={m.id} class="msg msg-user editing">
              <textarea aria-label="Edit message" value={editText} onInput={(e) => setEditText(e.currentTarget.value)} />
              <div class="composer-row">
                <button type="button" onClick={() => void saveEdit()}>
                  Save and resend
                </button>
                <button type="button" class="link" onClick={() => setEditing(null)}>
                  Cancel
                </button>
              </div>
            </div>
          ) : (
            <MessageView key={m.id} message={m} results={results} onEdit={busy ? null : startEdit} />
          ),
        )}
        {state.streaming.length ? (
          <div class="msg msg-assistant streaming">
            <div class="msg-role">assistant</div>
            {state.streaming.map((p, i) => (
              <Part key={i} part={p} role="assistant" results={streamResults} streaming={true} />
            ))}
          </div>
        ) : null}
        {state.retry ? (
          <div class="banner retry" role="status">
            Attempt {state.retry.attempt} failed: {state.retry.error} Retrying in{" "}
            <Countdown until={state.retry.retrying_at} />.
          </div>
        ) : null}
        {state.error || (state.status === "error" && chat?.last_error) ? (
          <div class="banner error" role="alert">
            <strong>{(state.error ?? chat?.last_error)?.kind ?? "error"}:</strong>{" "}
            {(state.error ?? chat?.last_error)?.message}
          </div>
        ) : null}
        {state.status === "requires_action" ? (
          <div class="banner action" role="status">
            Waiting for the client to answer{" "}
            {state.actionRequired.map((c) => c.tool_name).join(", ") || "its tool calls"}.
          </div>
        ) : null}
        <div ref={bottom} />
      </div>
      {state.queue.length ? (
        <div class="queue">
          <div class="queue-title">Queued ({state.queue.length})</div>
          {state.queue.map((q) => (
            <div key={q.id} class="queued">
              <span class="plain">{q.content.map((p) => (p.type === "text" ? p.text : `[${p.type}]`)).join(" ")}</span>
              <button type="button" class="link" onClick={() => void api.deleteQueued(chatId, q.id).catch((e) => setLoadError(errorText(e)))}>
                Remove
              </button>
            </div>
          ))}
        </div>
      ) : null}
      <Composer
        api={api}
        user={props.user}
        models={props.models}
        busy={busy}
        planDefault={chat?.plan_mode === "plan"}
        onInterrupt={async () => {
          await api.interrupt(chatId);
        }}
        onSubmit={async (content, model, plan) => {
          await api.send(chatId, {
            content,
            busy_behavior: "queue",
            plan_mode: plan ? "plan" : "",
            ...(model ? { model_config_id: model } : {}),
          });
        }}
      />
    </div>
  );
}
