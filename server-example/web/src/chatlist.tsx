// The chat list: one GET for the current filter, then the watch WebSocket keeps it current
// (status, titles, new and deleted chats). After a dropped watch the list is fetched again,
// since events sent meanwhile are lost.
import { useEffect, useRef, useState } from "preact/hooks";
import type { Chat } from "../../../bindings/index";
import { ApiError, parseWatchFrame, type Api } from "./api";
import { keepOpen } from "./socket";

/** Pause after the last keystroke in the search box before the list is fetched. */
const SEARCH_DEBOUNCE_MS = 250;

export type ArchivedFilter = "false" | "true" | "any";

/** The `q` sent: the search box, plus `archived:` from the filter unless the box names it. */
export function listQuery(search: string, archived: ArchivedFilter): string {
  if (/(^|\s)archived:/i.test(search)) return search;
  return `${search} archived:${archived}`.trim();
}

/** Pinned first by pin order, then the latest activity, as the server orders them. */
export function sortChats(chats: Chat[]): Chat[] {
  return [...chats].sort((a, b) => {
    const pa = a.pin_order > 0 ? a.pin_order : Number.MAX_SAFE_INTEGER;
    const pb = b.pin_order > 0 ? b.pin_order : Number.MAX_SAFE_INTEGER;
    if (pa !== pb) return pa - pb;
    if (a.updated_at !== b.updated_at) return a.updated_at < b.updated_at ? 1 : -1;
    return a.id < b.id ? 1 : -1;
  });
}

export function ChatList(props: {
  api: Api;
  selected: string | null;
  navigate: (path: string) => void;
  onChat: (c: Chat) => void;
}) {
  const { api } = props;
  const [search, setSearch] = useState("");
  const [archived, setArchived] = useState<ArchivedFilter>("false");
  const [chats, setChats] = useState<Chat[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const query = listQuery(search, archived);
  const archivedRef = useRef(archived);
  archivedRef.current = archived;
  const searchRef = useRef(search);
  searchRef.current = search;
  const onChat = useRef(props.onChat);
  onChat.current = props.onChat;

  const reload = useRef<() => void>(() => undefined);
  reload.current = () => {
    api
      .listChats(query)
      .then((list) => {
        setChats(sortChats(list));
        setError(null);
      })
      .catch((e: unknown) => setError(e instanceof ApiError ? e.describe() : String(e)));
  };

  useEffect(() => {
    const t = window.setTimeout(() => reload.current(), SEARCH_DEBOUNCE_MS);
    return () => window.clearTimeout(t);
  }, [query]);

  useEffect(() => {
    return keepOpen({
      url: () => api.watchUrl(),
      onOpen: () => {
        setLive(true);
        // Events sent before the socket opened (or while it was down) are lost: read the
        // list again.
        reload.current();
      },
      onDown: () => setLive(false),
      onMessage: (data) => {
        const ev = parseWatchFrame(data);
        if (!ev) return;
        onChat.current(ev.chat);
        setChats((list) => {
          const rest = list.filter((c) => c.id !== ev.chat.id);
          if (ev.kind === "deleted") return rest;
          const old = list.find((c) => c.id === ev.chat.id);
          // A watch frame carries the chat after the change (without `files`).
          const merged: Chat = old ? { ...old, ...ev.chat } : ev.chat;
          const filter = archivedRef.current;
          if (filter !== "any" && String(merged.archived) !== filter) return rest;
          if (!old && (ev.kind !== "created" || searchRef.current.trim() !== "")) {
            // A chat the list has not seen (created before the first read finished, or
            // outside the current search), or a new chat while a search is on: the
            // server's filter decides whether it belongs.
            window.setTimeout(() => reload.current(), 0);
            return list;
          }
          return sortChats([merged, ...rest]);
        });
      },
    });
  }, [api]);

  const update = async (chat: Chat, change: { pin_order?: number; archived?: boolean }) => {
    try {
      await api.updateChat(chat.id, change);
      reload.current();
    } catch (e) {
      setError(e instanceof ApiError ? e.describe() : String(e));
    }
  };

  return (
    <aside class="sidebar">
      <button type="button" class="new-chat" onClick={() => props.navigate("/")}>
        + New chat
      </button>
      <input
        class="search"
        type="search"
        aria-label="Search chats"
        placeholder="Search: words, title:, status:, has_unread:true"
        value={search}
        onInput={(e) => setSearch(e.currentTarget.value)}
      />
      <select aria-label="Archived" value={archived} onChange={(e) => setArchived(e.currentTarget.value as ArchivedFilter)}>
        <option value="false">Active chats</option>
        <option value="true">Archived chats</option>
        <option value="any">All chats</option>
      </select>
      <div class={`watch ${live ? "live" : ""}`}>{live ? "live" : "connecting…"}</div>
      {error ? <div class="error" role="alert">{error}</div> : null}
      <ul class="chat-list">
        {chats.map((c) => (
          <li
            key={c.id}
            class={`chat-item ${c.id === props.selected ? "selected" : ""}`}
            data-chat-id={c.id}
            onClick={() => props.navigate(`/chats/${c.id}`)}
          >
            <div class="chat-item-top">
              {/* The open chat is read: its stream moved the read marker. */}
              {c.has_unread && c.id !== props.selected ? <span class="unread" title="Unread reply" /> : null}
              <span class="chat-item-title">{c.title || "Untitled"}</span>
              <span class={`status status-${c.status}`}>{c.status}</span>
            </div>
            <div class="chat-item-meta">
              {Object.entries(c.labels).map(([k, v]) => (
                <span key={k} class="chip">
                  {k}:{v}
                </span>
              ))}
              <span class="grow" />
              <button
                type="button"
                class="link"
                title={c.pin_order > 0 ? "Unpin" : "Pin"}
                onClick={(e) => {
                  e.stopPropagation();
                  void update(c, { pin_order: c.pin_order > 0 ? 0 : 1 });
                }}
              >
                {c.pin_order > 0 ? "★ unpin" : "pin"}
              </button>
              <button
                type="button"
                class="link"
                onClick={(e) => {
                  e.stopPropagation();
                  void update(c, { archived: !c.archived });
                }}
              >
                {c.archived ? "unarchive" : "archive"}
              </button>
            </div>
          </li>
        ))}
      </ul>
    </aside>
  );
}
