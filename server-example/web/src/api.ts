// The HTTP and WebSocket calls of the page. Every body and answer is typed by the generated
// bindings (bindings/, from codersdk); nothing here restates a wire type.
import type {
  Chat,
  ChatCostSummary,
  ChatMessagesResponse,
  ChatModelConfig,
  ChatModelsResponse,
  ChatProviderConfig,
  ChatStreamEvent,
  ChatWatchEvent,
  CreateChatMessageRequest,
  CreateChatMessageResponse,
  CreateChatModelConfigRequest,
  CreateChatProviderConfigRequest,
  CreateChatRequest,
  EditChatMessageRequest,
  EditChatMessageResponse,
  Response as ApiResponse,
  UpdateChatModelConfigRequest,
  UpdateChatProviderConfigRequest,
  UpdateChatRequest,
  UploadChatFileResponse,
  User,
} from "../../../bindings/index";

export const EXPERIMENTAL = "/api/experimental";
export const V2 = "/api/v2";

/** Where the token is kept, so a reload keeps the user signed in. */
export const TOKEN_KEY = "chatd.token";

/** The query parameter the WebSocket routes read the token from (docs/api-tokens.md). */
const TOKEN_QUERY = "coder_session_token";

/** A failed request: the status and the server's `Response` body when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: ApiResponse | null;
  constructor(status: number, body: ApiResponse | null) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
  /** The message with the server's detail, for display. */
  describe(): string {
    const detail = this.body?.detail ? ` ${this.body.detail}` : "";
    const fields = (this.body?.validations ?? []).map((v) => `${v.field}: ${v.detail}`).join("; ");
    return `${this.message}${detail}${fields ? ` (${fields})` : ""}`;
  }
}

/** Reads a `Response` error body, or null when the answer is not one. */
async function errorBody(res: globalThis.Response): Promise<ApiResponse | null> {
  try {
    const body: unknown = await res.json();
    if (body && typeof body === "object" && "message" in body && typeof body.message === "string") {
      return body as ApiResponse;
    }
  } catch {
    // Not JSON: the status alone says what happened.
  }
  return null;
}

/** The API for one token. */
export class Api {
  readonly token: string;
  /** Called when the server refuses the token (revoked or expired while the page is open). */
  onUnauthorized: ((e: ApiError) => void) | null = null;
  constructor(token: string) {
    this.token = token;
  }

  private refused(res: globalThis.Response, body: ApiResponse | null): ApiError {
    const e = new ApiError(res.status, body);
    if (res.status === 401) this.onUnauthorized?.(e);
    return e;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "Coder-Session-Token": this.token };
    let payload: string | undefined;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await fetch(path, { method, headers, body: payload ?? null, cache: "no-store" });
    if (!res.ok) throw this.refused(res, await errorBody(res));
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  me(): Promise<User> {
    return this.call<User>("GET", `${V2}/users/me`);
  }
  listChats(q: string): Promise<Chat[]> {
    const params = new URLSearchParams({ limit: "200" });
    if (q.trim()) params.set("q", q.trim());
    return this.call<Chat[]>("GET", `${EXPERIMENTAL}/chats?${params}`);
  }
  getChat(id: string): Promise<Chat> {
    return this.call<Chat>("GET", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}`);
  }
  createChat(req: CreateChatRequest): Promise<Chat> {
    return this.call<Chat>("POST", `${EXPERIMENTAL}/chats`, req);
  }
  updateChat(id: string, req: UpdateChatRequest): Promise<Chat> {
    return this.call<Chat>("PATCH", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}`, req);
  }
  messages(id: string, beforeId?: number): Promise<ChatMessagesResponse> {
    const params = new URLSearchParams({ limit: "200" });
    if (beforeId !== undefined) params.set("before_id", String(beforeId));
    return this.call("GET", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}/messages?${params}`);
  }
  send(id: string, req: CreateChatMessageRequest): Promise<CreateChatMessageResponse> {
    return this.call("POST", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}/messages`, req);
  }
  edit(id: string, messageId: number, req: EditChatMessageRequest): Promise<EditChatMessageResponse> {
    return this.call("PATCH", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}/messages/${messageId}`, req);
  }
  interrupt(id: string): Promise<unknown> {
    return this.call("POST", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}/interrupt`);
  }
  deleteQueued(id: string, queuedId: number): Promise<unknown> {
    return this.call("DELETE", `${EXPERIMENTAL}/chats/${encodeURIComponent(id)}/queue/${queuedId}`);
  }
  models(): Promise<ChatModelsResponse> {
    return this.call("GET", `${EXPERIMENTAL}/chats/models`);
  }
  /** The caller's spend in the window, per root chat among the rest. */
  costSummary(start: Date, end: Date): Promise<ChatCostSummary> {
    const params = new URLSearchParams({ start_date: start.toISOString(), end_date: end.toISOString() });
    return this.call("GET", `${EXPERIMENTAL}/chats/cost/me/summary?${params}`);
  }
  /** Uploads a file into the organization; the answer is its id. */
  async upload(organization: string, file: File): Promise<UploadChatFileResponse> {
    const params = new URLSearchParams({ organization });
    const res = await fetch(`${EXPERIMENTAL}/chats/files?${params}`, {
      method: "POST",
      headers: {
        "Coder-Session-Token": this.token,
        "Content-Type": file.type || "application/octet-stream",
        // RFC 5987 form: any file name survives, and the server prefers it.
        "Content-Disposition": `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`,
      },
      body: file,
    });
    if (!res.ok) throw this.refused(res, await errorBody(res));
    return (await res.json()) as UploadChatFileResponse;
  }
  providers(): Promise<ChatProviderConfig[]> {
    return this.call("GET", `${EXPERIMENTAL}/chats/providers`);
  }
  createProvider(req: CreateChatProviderConfigRequest): Promise<ChatProviderConfig> {
    return this.call("POST", `${EXPERIMENTAL}/chats/providers`, req);
  }
  updateProvider(id: string, req: UpdateChatProviderConfigRequest): Promise<ChatProviderConfig> {
    return this.call("PATCH", `${EXPERIMENTAL}/chats/providers/${encodeURIComponent(id)}`, req);
  }
  deleteProvider(id: string): Promise<unknown> {
    return this.call("DELETE", `${EXPERIMENTAL}/chats/providers/${encodeURIComponent(id)}`);
  }
  modelConfigs(): Promise<ChatModelConfig[]> {
    return this.call("GET", `${EXPERIMENTAL}/chats/model-configs`);
  }
  createModelConfig(req: CreateChatModelConfigRequest): Promise<ChatModelConfig> {
    return this.call("POST", `${EXPERIMENTAL}/chats/model-configs`, req);
  }
  updateModelConfig(id: string, req: UpdateChatModelConfigRequest): Promise<ChatModelConfig> {
    return this.call("PATCH", `${EXPERIMENTAL}/chats/model-configs/${encodeURIComponent(id)}`, req);
  }
  deleteModelConfig(id: string): Promise<unknown> {
    return this.call("DELETE", `${EXPERIMENTAL}/chats/model-configs/${encodeURIComponent(id)}`);
  }

  /** A WebSocket URL on this origin with the token in the one query parameter the API reads. */
  private socketUrl(path: string, params: URLSearchParams): string {
    params.set(TOKEN_QUERY, this.token);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${path}?${params}`;
  }
  /** The chat-list watch: one `ChatWatchEvent` per frame. */
  watchUrl(): string {
    return this.socketUrl(`${EXPERIMENTAL}/chats/watch`, new URLSearchParams());
  }
  /** The per-chat stream: frames are arrays of `ChatStreamEvent`s, after `afterId` when given. */
  streamUrl(id: string, afterId: number | null): string {
    const params = new URLSearchParams();
    if (afterId !== null && afterId > 0) params.set("after_id", String(afterId));
    return this.socketUrl(`${EXPERIMENTAL}/chats/${encodeURIComponent(id)}/stream`, params);
  }
}

/** Parses one watch frame; null when it is not an object with a chat. */
export function parseWatchFrame(data: unknown): ChatWatchEvent | null {
  if (typeof data !== "string") return null;
  try {
    const value: unknown = JSON.parse(data);
    if (value && typeof value === "object" && "chat" in value && "kind" in value) {
      return value as ChatWatchEvent;
    }
  } catch {
    // A frame that is not JSON is skipped.
  }
  return null;
}

/** Parses one stream frame (an array of events); unreadable frames give no events. */
export function parseStreamFrame(data: unknown): ChatStreamEvent[] {
  if (typeof data !== "string") return [];
  try {
    const value: unknown = JSON.parse(data);
    if (Array.isArray(value)) return value as ChatStreamEvent[];
  } catch {
    // Skipped, as above.
  }
  return [];
}
