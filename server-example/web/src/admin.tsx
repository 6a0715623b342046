// `/admin`: provider configs and model configs. Keys go to the server and never come back:
// the API answers only `has_api_key`, and the key fields are cleared once saved.
import { useEffect, useState } from "preact/hooks";
import type { ChatModelConfig, ChatProviderConfig, User } from "../../../bindings/index";
import { ApiError, type Api } from "./api";

export function isAdmin(user: User): boolean {
  return user.roles.some((r) => r.name === "admin");
}

function describe(e: unknown): string {
  return e instanceof ApiError ? e.describe() : String(e);
}

export function Admin({ api, user }: { api: Api; user: User }) {
  const [providers, setProviders] = useState<ChatProviderConfig[]>([]);
  const [models, setModels] = useState<ChatModelConfig[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [pForm, setPForm] = useState({ provider: "openai", display_name: "", api_key: "", base_url: "" });
  const [mForm, setMForm] = useState({ provider: "openai", model: "", display_name: "", is_default: false });
  const [keyEdits, setKeyEdits] = useState<Record<string, string>>({});
  const admin = isAdmin(user);

  const load = () => {
    Promise.all([api.providers(), api.modelConfigs()])
      .then(([p, m]) => {
        setProviders(p);
        setModels(m);
      })
      .catch((e) => setError(describe(e)));
  };
  useEffect(() => {
    if (admin) load();
  }, [api, admin]);

  if (!admin) {
    return (
      <div class="admin">
        <h2>Administration</h2>
        <div class="error" role="alert">
          Only administrators can manage providers and models.
        </div>
      </div>
    );
  }

  const act = async (what: string, f: () => Promise<unknown>) => {
    setError(null);
    setNotice(null);
    try {
      await f();
      setNotice(what);
      load();
    } catch (e) {
      setError(describe(e));
    }
  };

  // A provider listed as merely supported (or preset from the environment) has no stored
  // config yet: changing it creates one; a stored config is updated.
  const saveProvider = (p: ChatProviderConfig, change: { enabled?: boolean; api_key?: string }) =>
    p.source === "database"
      ? api.updateProvider(p.id, change)
      : api.createProvider({ provider: p.provider, enabled: true, ...change });

  return (
    <div class="admin">
      <h2>Administration</h2>
      {error ? <div class="error" role="alert">{error}</div> : null}
      {notice ? <div class="notice" role="status">{notice}</div> : null}
      <section>
        <h3>Providers</h3>
        <table class="providers">
          <thead>
            <tr>
              <th>Provider</th>
              <th>Name</th>
              <th>Enabled</th>
              <th>API key</th>
              <th>Base URL</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {providers.map((p) => (
              <tr key={p.id} data-provider={p.provider}>
                <td>{p.provider}</td>
                <td>{p.display_name}</td>
                <td>
                  <input
                    type="checkbox"
                    checked={p.enabled}
                    onChange={(e) => {
                      const enabled = e.currentTarget.checked;
                      void act("Provider updated.", () => saveProvider(p, { enabled }));
                    }}
                  />
                </td>
                <td>
                  <span class="key-state">{p.has_api_key ? "set" : "not set"}</span>{" "}
                  <input
                    type="password"
                    autocomplete="off"
                    aria-label={`New API key for ${p.provider}`}
                    placeholder="replace key"
                    value={keyEdits[p.id] ?? ""}
                    onInput={(e) => setKeyEdits({ ...keyEdits, [p.id]: e.currentTarget.value })}
                  />
                  <button
                    type="button"
                    disabled={!keyEdits[p.id]}
                    onClick={() => {
                      const api_key = keyEdits[p.id] ?? "";
                      setKeyEdits({ ...keyEdits, [p.id]: "" });
                      void act("Key saved.", () => saveProvider(p, { api_key }));
                    }}
                  >
                    Save key
                  </button>
                </td>
                <td>{p.base_url ?? ""}</td>
                <td>
                  {p.source === "database" ? (
                    <button type="button" class="danger" onClick={() => void act("Provider deleted.", () => api.deleteProvider(p.id))}>
                      Delete
                    </button>
                  ) : (
                    <span class="badge">{p.source}</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <form
          class="admin-form"
          onSubmit={(e) => {
            e.preventDefault();
            const f = pForm;
            setPForm({ ...f, api_key: "" });
            void act("Provider added.", () =>
              api.createProvider({
                provider: f.provider,
                ...(f.display_name ? { display_name: f.display_name } : {}),
                ...(f.api_key ? { api_key: f.api_key } : {}),
                ...(f.base_url ? { base_url: f.base_url } : {}),
              }),
            );
          }}
        >
          <input aria-label="Provider" placeholder="provider (openai, anthropic, …)" value={pForm.provider} onInput={(e) => setPForm({ ...pForm, provider: e.currentTarget.value })} />
          <input aria-label="Display name" placeholder="display name" value={pForm.display_name} onInput={(e) => setPForm({ ...pForm, display_name: e.currentTarget.value })} />
          <input aria-label="API key" type="password" autocomplete="off" placeholder="API key" value={pForm.api_key} onInput={(e) => setPForm({ ...pForm, api_key: e.currentTarget.value })} />
          <input aria-label="Base URL" placeholder="base URL (optional)" value={pForm.base_url} onInput={(e) => setPForm({ ...pForm, base_url: e.currentTarget.value })} />
          <button type="submit">Add provider</button>
        </form>
      </section>
      <section>
        <h3>Model configs</h3>
        <table class="models">
          <thead>
            <tr>
              <th>Provider</th>
              <th>Model</th>
              <th>Name</th>
              <th>Enabled</th>
              <th>Default</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.id}>
                <td>{m.provider}</td>
                <td>{m.model}</td>
                <td>{m.display_name}</td>
                <td>
                  <input
                    type="checkbox"
                    checked={m.enabled}
                    onChange={(e) => {
                      const enabled = e.currentTarget.checked;
                      void act("Model updated.", () => api.updateModelConfig(m.id, { enabled }));
                    }}
                  />
                </td>
                <td>
                  <input
                    type="radio"
                    name="default-model"
                    checked={m.is_default}
                    onChange={() => void act("Default model set.", () => api.updateModelConfig(m.id, { is_default: true }))}
                  />
                </td>
                <td>
                  <button type="button" class="danger" onClick={() => void act("Model deleted.", () => api.deleteModelConfig(m.id))}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <form
          class="admin-form"
          onSubmit={(e) => {
            e.preventDefault();
            const f = mForm;
            void act("Model added.", () =>
              api.createModelConfig({
                provider: f.provider,
                model: f.model,
                is_default: f.is_default,
                ...(f.display_name ? { display_name: f.display_name } : {}),
              }),
            );
          }}
        >
          <input aria-label="Model provider" placeholder="provider" value={mForm.provider} onInput={(e) => setMForm({ ...mForm, provider: e.currentTarget.value })} />
          <input aria-label="Model" placeholder="model (gpt-4.1-mini, …)" value={mForm.model} onInput={(e) => setMForm({ ...mForm, model: e.currentTarget.value })} />
          <input aria-label="Model display name" placeholder="display name" value={mForm.display_name} onInput={(e) => setMForm({ ...mForm, display_name: e.currentTarget.value })} />
          <label>
            <input type="checkbox" checked={mForm.is_default} onChange={(e) => setMForm({ ...mForm, is_default: e.currentTarget.checked })} /> default
          </label>
          <button type="submit">Add model</button>
        </form>
      </section>
    </div>
  );
}
