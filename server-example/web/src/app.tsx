// The shell: sign-in, routing (`/`, `/chats/{id}`, `/admin`; the server answers the page on
// each), the chat list beside the current view.
import { useEffect, useMemo, useState } from "preact/hooks";
import type { Chat, ChatModelsResponse, User } from "../../../bindings/index";
import { Admin, isAdmin } from "./admin";
import { Api, ApiError, TOKEN_KEY } from "./api";
import { ChatList } from "./chatlist";
import { ChatView, NewChat } from "./chatview";

type Route = { page: "new" } | { page: "chat"; id: string } | { page: "admin" };

const CHAT_PATH = /^\/chats\/([0-9a-fA-F-]{36})\/?$/;

export function parseRoute(path: string): Route {
  const chat = CHAT_PATH.exec(path);
  if (chat?.[1]) return { page: "chat", id: chat[1] };
  if (path === "/admin" || path === "/admin/") return { page: "admin" };
  return { page: "new" };
}

function readToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function SignIn({ onToken, error }: { onToken: (t: string) => void; error: string | null }) {
  const [token, setToken] = useState("");
  return (
    <form
      class="signin"
      onSubmit={(e) => {
        e.preventDefault();
        if (token.trim()) onToken(token.trim());
      }}
    >
      <h1>chatd</h1>
      <p>
        Paste an API token. The server prints the administrator's on its first start; an
        administrator creates more with <code>POST /api/v2/users/me/keys/tokens</code>.
      </p>
      <input
        type="password"
        autocomplete="off"
        aria-label="API token"
        placeholder="chatd_…"
        value={token}
        onInput={(e) => setToken(e.currentTarget.value)}
      />
      <button type="submit">Sign in</button>
      {error ? <div class="error" role="alert">{error}</div> : null}
    </form>
  );
}

export function App() {
  const [token, setToken] = useState<string | null>(readToken);
  const [user, setUser] = useState<User | null>(null);
  const [signInError, setSignInError] = useState<string | null>(null);
  const [route, setRoute] = useState<Route>(() => parseRoute(location.pathname));
  const [models, setModels] = useState<ChatModelsResponse | null>(null);
  const [chats, setChats] = useState<Record<string, Chat>>({});
  const api = useMemo(() => (token ? new Api(token) : null), [token]);

  useEffect(() => {
    const onPop = () => setRoute(parseRoute(location.pathname));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  useEffect(() => {
    if (!api) return;
    // A token revoked or expired while the page is open: back to the sign-in form.
    api.onUnauthorized = (e) => {
      localStorage.removeItem(TOKEN_KEY);
      setToken(null);
      setUser(null);
      setSignInError(e.describe());
    };
    api
      .me()
      .then((u) => {
        setUser(u);
        setSignInError(null);
        localStorage.setItem(TOKEN_KEY, api.token);
        api.models().then(setModels, () => setModels(null));
      })
      .catch((e: unknown) => {
        // Only a refused token is forgotten; when the server is unreachable the stored one
        // stays, and a reload tries it again.
        if (e instanceof ApiError && e.status === 401) localStorage.removeItem(TOKEN_KEY);
        setToken(null);
        setUser(null);
        setSignInError(e instanceof ApiError ? e.describe() : `The server could not be reached: ${String(e)}`);
      });
  }, [api]);

  const navigate = (path: string) => {
    if (location.pathname !== path) history.pushState(null, "", path);
    setRoute(parseRoute(path));
  };
  const signOut = () => {
    localStorage.removeItem(TOKEN_KEY);
    setToken(null);
    setUser(null);
    navigate("/");
  };

  if (!api || !user) {
    if (api && !signInError) return <div class="loading">Signing in…</div>;
    return <SignIn onToken={setToken} error={signInError} />;
  }

  const selected = route.page === "chat" ? route.id : null;
  return (
    <div class="app">
      <header class="top">
        <a
          href="/"
          class="brand"
          onClick={(e) => {
            e.preventDefault();
            navigate("/");
          }}
        >
          chatd
        </a>
        <span class="grow" />
        {isAdmin(user) ? (
          <a
            href="/admin"
            onClick={(e) => {
              e.preventDefault();
              navigate("/admin");
            }}
          >
            Admin
          </a>
        ) : null}
        <span class="whoami">{user.username}</span>
        <button type="button" class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <div class="body">
        <ChatList api={api} selected={selected} navigate={navigate} onChat={(c) => setChats((m) => ({ ...m, [c.id]: c }))} />
        <main>
          {route.page === "chat" ? (
            <ChatView key={route.id} api={api} user={user} chatId={route.id} models={models} chat={chats[route.id] ?? null} />
          ) : route.page === "admin" ? (
            <Admin api={api} user={user} />
          ) : (
            <NewChat api={api} user={user} models={models} navigate={navigate} />
          )}
        </main>
      </div>
    </div>
  );
}
