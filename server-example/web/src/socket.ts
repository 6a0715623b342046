// A WebSocket that reconnects after it drops, with a capped back-off. The URL is asked for
// anew before each attempt, so a chat stream resumes with the latest `after_id`.

/** First pause before reconnecting; doubled per failed attempt. */
export const RECONNECT_MIN_MS = 250;
/** Longest pause between reconnect attempts. */
export const RECONNECT_MAX_MS = 5000;

export interface SocketHandlers {
  url: () => string;
  onOpen?: () => void;
  onMessage: (data: unknown) => void;
  onDown?: () => void;
}

/** Starts the socket; the returned function closes it for good. */
export function keepOpen(h: SocketHandlers): () => void {
  let ws: WebSocket | null = null;
  let stopped = false;
  let delay = RECONNECT_MIN_MS;
  let timer: number | undefined;
  const connect = () => {
    if (stopped) return;
    const socket = new WebSocket(h.url());
    ws = socket;
    socket.onopen = () => {
      delay = RECONNECT_MIN_MS;
      h.onOpen?.();
    };
    socket.onmessage = (ev: MessageEvent) => h.onMessage(ev.data);
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      h.onDown?.();
      if (stopped) return;
      timer = window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    };
  };
  connect();
  return () => {
    stopped = true;
    if (timer !== undefined) window.clearTimeout(timer);
    ws?.close();
    ws = null;
  };
}
