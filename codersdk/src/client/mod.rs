//! A typed client for Coder's chats API (feature `client`): every route of the
//! `/api/experimental` chats API that chatd builds, the minimal `/api/v2` user and token
//! routes, and the stream and watch WebSockets as async streams of typed events.
//!
//! - [`Client::new`] takes the server's base URL (`http://127.0.0.1:3000`) and an API token,
//!   sent as the `Coder-Session-Token` header (as the `coder_session_token` query parameter
//!   on WebSockets, which is what browsers can send too).
//! - Each method maps to one route and returns its `codersdk` body. A non-success status is
//!   an [`Error::Api`] carrying the status and the server's [`crate::Response`]
//!   ([`Error::status`], [`Error::response`], predicates such as [`Error::is_not_found`]).
//! - [`Client::stream`] and [`Client::watch`] open the WebSockets and yield
//!   [`crate::ChatStreamEvent`]s (each frame's array flattened, in order) and
//!   [`crate::ChatWatchEvent`]s.
//!
//! ```no_run
//! use codersdk::client::Client;
//! use codersdk::{ChatInputPart, ChatMessagePartType, ChatStreamEventType, CreateChatRequest};
//! use futures_util::StreamExt;
//!
//! # async fn run() -> Result<(), codersdk::client::Error> {
//! let client = Client::new("http://127.0.0.1:3000", "my-token")?;
//! let chat = client
//!     .create_chat(&CreateChatRequest {
//!         content: vec![ChatInputPart::text("What time is it?")],
//!         ..Default::default()
//!     })
//!     .await?;
//! let mut events = client.stream(chat.id, None).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     if let (ChatStreamEventType::MessagePart, Some(mp)) = (&event.event_type, &event.message_part) {
//!         if mp.part.part_type == ChatMessagePartType::Text {
//!             print!("{}", mp.part.text);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! See docs/client.md for the design decisions.

mod error;
mod stream;
mod users;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

pub use error::{Error, Result, MAX_ERROR_BODY_BYTES, MAX_ERROR_DETAIL_CHARS};
pub use stream::{ChatEventStream, EventStream, WatchEventStream};
pub use users::{CreateUserRequest, GenerateApiKeyResponse, Role, User};

use crate::{
    Chat, ChatMessage, ChatMessagesResponse, ChatModelConfig, ChatModelOverrideContext,
    ChatModelOverrideResponse, ChatModelsResponse, ChatProviderConfig, ChatSystemPromptResponse,
    CreateChatMessageRequest, CreateChatMessageResponse, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest, CreateMCPServerConfigRequest,
    CreateUserChatProviderKeyRequest, EditChatMessageRequest, EditChatMessageResponse,
    MCPServerConfig, ProposeChatTitleResponse, SecretString, SubmitToolResultsRequest,
    UpdateChatModelConfigRequest, UpdateChatModelOverrideRequest, UpdateChatProviderConfigRequest,
    UpdateChatRequest, UpdateChatSystemPromptRequest, UpdateMCPServerConfigRequest,
    UploadChatFileResponse, UserChatCustomPrompt, UserChatProviderConfig, MAX_CHAT_FILE_SIZE_BYTES,
};

/// Header carrying the API token on HTTP requests (Coder's name).
pub const SESSION_TOKEN_HEADER: &str = "Coder-Session-Token";

/// Query parameter carrying the API token on WebSocket upgrades.
pub const SESSION_TOKEN_QUERY: &str = "coder_session_token";

/// Path prefix of the chats API.
const EXPERIMENTAL: [&str; 2] = ["api", "experimental"];

/// Path prefix of Coder's user routes.
const V2: [&str; 2] = ["api", "v2"];

/// A client for one server and one API token. Cheap to clone (the HTTP connection pool is
/// shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: SecretString,
}

impl std::fmt::Debug for Client {
    // The token is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Query of `GET /chats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListChatsOptions {
    /// Search query (`archived:true`, …).
    pub q: Option<String>,
    /// Labels every returned chat must have (`label=key:value`, repeated).
    pub labels: BTreeMap<String, String>,
    /// Keyset cursor: chats that sort after this one.
    pub after_id: Option<Uuid>,
    /// Page size.
    pub limit: Option<u32>,
    /// Numeric offset.
    pub offset: Option<u32>,
}

/// Query of `GET /chats/{chat}/messages`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatMessagesOptions {
    /// Messages with smaller ids (newest first).
    pub before_id: Option<i64>,
    /// Messages with larger ids (oldest first when alone).
    pub after_id: Option<i64>,
    /// Page size (1–200, server default 50).
    pub limit: Option<u32>,
}

/// A downloaded chat file (`GET /chats/files/{file}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFile {
    /// The stored MIME type.
    pub content_type: String,
    /// The `Content-Disposition` header (`inline` or `attachment`, with the file name).
    pub content_disposition: Option<String>,
    /// The bytes (at most [`MAX_CHAT_FILE_SIZE_BYTES`]).
    pub data: Vec<u8>,
}

impl Client {
    /// A client for the server at `base_url` (`http://host:port`, optionally with a path
    /// prefix) using API token `token`. Fails on URLs that are not `http`/`https`.
    pub fn new(base_url: &str, token: impl Into<SecretString>) -> Result<Client> {
        Client::with_http_client(base_url, token, reqwest::Client::new())
    }

    /// [`Client::new`] with a preconfigured `reqwest::Client` (timeouts, proxies, TLS
    /// roots).
    pub fn with_http_client(
        base_url: &str,
        token: impl Into<SecretString>,
        http: reqwest::Client,
    ) -> Result<Client> {
        let base = reqwest::Url::parse(base_url)
            .map_err(|e| Error::InvalidUrl(format!("{base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidUrl(format!(
                "{base_url:?}: the base URL must be an http:// or https:// URL"
            )));
        }
        Ok(Client {
            http,
            base,
            token: token.into(),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    // ----- plumbing

    /// The base URL with `segments` appended, each percent-encoded.
    fn url<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Result<reqwest::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidUrl("the base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn api_url(&self, segments: &[&str]) -> Result<reqwest::Url> {
        self.url(EXPERIMENTAL.iter().chain(segments).copied())
    }

    fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match reqwest::header::HeaderValue::from_str(self.token.expose()) {
            Ok(mut value) => {
                value.set_sensitive(true);
                builder.header(SESSION_TOKEN_HEADER, value)
            }
            // A token that cannot be a header value cannot authenticate either; sending
            // none gets the server's 401, which says what to do.
            Err(_) => builder,
        }
    }

    /// Sends the request; a non-success status becomes [`Error::Api`].
    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = builder.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_capped(response, MAX_ERROR_BODY_BYTES as u64)
            .await
            .unwrap_or_default();
        Err(Error::api(status.as_u16(), body))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<T> {
        let bytes = self.send(builder).await?.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode { what, source })
    }

    async fn get<T: DeserializeOwned>(&self, url: reqwest::Url, what: &'static str) -> Result<T> {
        self.json(self.request(reqwest::Method::GET, url), what)
            .await
    }

    async fn with_body<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: &B,
        what: &'static str,
    ) -> Result<T> {
        self.json(self.request(method, url).json(body), what).await
    }

    /// A request whose success has no body worth reading (204, or a 200 we ignore).
    async fn empty(&self, builder: reqwest::RequestBuilder) -> Result<()> {
        self.send(builder).await.map(drop)
    }

    // ----- health, users and tokens (`/api/v2`)

    /// `GET /healthz`: `Ok` once the server accepts requests.
    pub async fn health(&self) -> Result<()> {
        let url = self.url(["healthz"])?;
        self.empty(self.http.get(url)).await
    }

    /// `GET /api/v2/users/me`: the token's user.
    pub async fn me(&self) -> Result<User> {
        let url = self.url(V2.iter().copied().chain(["users", "me"]))?;
        self.get(url, "a user").await
    }

    /// `POST /api/v2/users` (administrators): a new user in the default organization.
    pub async fn create_user(&self, request: &CreateUserRequest) -> Result<User> {
        let url = self.url(V2.iter().copied().chain(["users"]))?;
        self.with_body(reqwest::Method::POST, url, request, "a user")
            .await
    }

    /// `POST /api/v2/users/{user}/keys`: a new API token for `user` (an id, a username or
    /// `me`; administrators may name anyone).
    pub async fn create_token(&self, user: &str) -> Result<GenerateApiKeyResponse> {
        let url = self.url(V2.iter().copied().chain(["users", user, "keys"]))?;
        self.json(
            self.request(reqwest::Method::POST, url),
            "an API key response",
        )
        .await
    }

    /// `POST /api/v2/users/{user}/keys/tokens`: a named token for `user`, expiring after
    /// `request.lifetime` nanoseconds (never when `0`).
    pub async fn create_named_token(
        &self,
        user: &str,
        request: &crate::CreateTokenRequest,
    ) -> Result<GenerateApiKeyResponse> {
        let url = self.url(V2.iter().copied().chain(["users", user, "keys", "tokens"]))?;
        self.with_body(reqwest::Method::POST, url, request, "an API key response")
            .await
    }

    /// `GET /api/v2/users/{user}/keys/tokens`: `user`'s tokens, never their secrets.
    pub async fn tokens(&self, user: &str) -> Result<Vec<crate::APIKey>> {
        let url = self.url(V2.iter().copied().chain(["users", user, "keys", "tokens"]))?;
        self.get(url, "a token list").await
    }

    /// `GET /api/v2/users/{user}/keys/{id}`.
    pub async fn token(&self, user: &str, id: Uuid) -> Result<crate::APIKey> {
        let id = id.to_string();
        let url = self.url(V2.iter().copied().chain(["users", user, "keys", &id]))?;
        self.get(url, "a token").await
    }

    /// `DELETE /api/v2/users/{user}/keys/{id}` (204): the token stops working at once.
    pub async fn delete_token(&self, user: &str, id: Uuid) -> Result<()> {
        let id = id.to_string();
        let url = self.url(V2.iter().copied().chain(["users", user, "keys", &id]))?;
        self.empty(self.request(reqwest::Method::DELETE, url)).await
    }

    // ----- chats

    /// `GET /chats`: the caller's root chats, newest first.
    pub async fn chats(&self, options: &ListChatsOptions) -> Result<Vec<Chat>> {
        let mut url = self.api_url(&["chats"])?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(v) = &options.q {
                q.append_pair("q", v);
            }
            for (k, v) in &options.labels {
                q.append_pair("label", &format!("{k}:{v}"));
            }
            if let Some(v) = options.after_id {
                q.append_pair("after_id", &v.to_string());
            }
            if let Some(v) = options.limit {
                q.append_pair("limit", &v.to_string());
            }
            if let Some(v) = options.offset {
                q.append_pair("offset", &v.to_string());
            }
        }
        strip_empty_query(&mut url);
        self.get(url, "a chat list").await
    }

    /// `POST /chats`: creates a chat with its first message; the first turn starts.
    pub async fn create_chat(&self, request: &CreateChatRequest) -> Result<Chat> {
        let url = self.api_url(&["chats"])?;
        self.with_body(reqwest::Method::POST, url, request, "a chat")
            .await
    }

    /// `GET /chats/{chat}`.
    pub async fn chat(&self, chat: Uuid) -> Result<Chat> {
        let id = chat.to_string();
        self.get(self.api_url(&["chats", &id])?, "a chat").await
    }

    /// `PATCH /chats/{chat}`: title, archive, pin, labels, plan mode (204).
    pub async fn update_chat(&self, chat: Uuid, request: &UpdateChatRequest) -> Result<()> {
        let id = chat.to_string();
        let url = self.api_url(&["chats", &id])?;
        self.empty(self.request(reqwest::Method::PATCH, url).json(request))
            .await
    }

    /// `GET /chats/{chat}/messages`: one page of messages (the queue with the first page).
    pub async fn chat_messages(
        &self,
        chat: Uuid,
        options: &ChatMessagesOptions,
    ) -> Result<ChatMessagesResponse> {
        let id = chat.to_string();
        let mut url = self.api_url(&["chats", &id, "messages"])?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(v) = options.before_id {
                q.append_pair("before_id", &v.to_string());
            }
            if let Some(v) = options.after_id {
                q.append_pair("after_id", &v.to_string());
            }
            if let Some(v) = options.limit {
                q.append_pair("limit", &v.to_string());
            }
        }
        strip_empty_query(&mut url);
        self.get(url, "a message page").await
    }

    /// `POST /chats/{chat}/messages`: sends (or queues, while the chat is busy) a message.
    pub async fn send_message(
        &self,
        chat: Uuid,
        request: &CreateChatMessageRequest,
    ) -> Result<CreateChatMessageResponse> {
        let id = chat.to_string();
        let url = self.api_url(&["chats", &id, "messages"])?;
        self.with_body(
            reqwest::Method::POST,
            url,
            request,
            "a send-message response",
        )
        .await
    }

    /// `PATCH /chats/{chat}/messages/{message}`: replaces a user message and everything
    /// after it, and restarts the turn.
    pub async fn edit_message(
        &self,
        chat: Uuid,
        message: i64,
        request: &EditChatMessageRequest,
    ) -> Result<EditChatMessageResponse> {
        let (id, message) = (chat.to_string(), message.to_string());
        let url = self.api_url(&["chats", &id, "messages", &message])?;
        self.with_body(
            reqwest::Method::PATCH,
            url,
            request,
            "an edit-message response",
        )
        .await
    }

    /// `POST /chats/{chat}/interrupt`: stops the running turn, keeping its partial output.
    pub async fn interrupt_chat(&self, chat: Uuid) -> Result<Chat> {
        let id = chat.to_string();
        let url = self.api_url(&["chats", &id, "interrupt"])?;
        self.json(self.request(reqwest::Method::POST, url), "a chat")
            .await
    }

    /// `POST /chats/{chat}/tool-results`: answers the pending dynamic tool calls (204).
    pub async fn submit_tool_results(
        &self,
        chat: Uuid,
        request: &SubmitToolResultsRequest,
    ) -> Result<()> {
        let id = chat.to_string();
        let url = self.api_url(&["chats", &id, "tool-results"])?;
        self.empty(self.request(reqwest::Method::POST, url).json(request))
            .await
    }

    /// `DELETE /chats/{chat}/queue/{queued}` (204).
    pub async fn delete_queued_message(&self, chat: Uuid, queued: i64) -> Result<()> {
        let (id, queued) = (chat.to_string(), queued.to_string());
        let url = self.api_url(&["chats", &id, "queue", &queued])?;
        self.empty(self.request(reqwest::Method::DELETE, url)).await
    }

    /// `POST /chats/{chat}/queue/{queued}/promote`: sends a queued message now. While a
    /// turn runs the promotion is deferred and the answer is a zero-valued message.
    pub async fn promote_queued_message(&self, chat: Uuid, queued: i64) -> Result<ChatMessage> {
        let (id, queued) = (chat.to_string(), queued.to_string());
        let url = self.api_url(&["chats", &id, "queue", &queued, "promote"])?;
        self.json(self.request(reqwest::Method::POST, url), "a message")
            .await
    }

    /// `POST /chats/{chat}/title/regenerate`: a model-written title, saved.
    pub async fn regenerate_chat_title(&self, chat: Uuid) -> Result<Chat> {
        let id = chat.to_string();
        let url = self.api_url(&["chats", &id, "title", "regenerate"])?;
        self.json(self.request(reqwest::Method::POST, url), "a chat")
            .await
    }

    /// `POST /chats/{chat}/title/propose`: a model-written title, not saved.
    pub async fn propose_chat_title(&self, chat: Uuid) -> Result<ProposeChatTitleResponse> {
        let id = chat.to_string();
        let url = self.api_url(&["chats", &id, "title", "propose"])?;
        self.json(self.request(reqwest::Method::POST, url), "a title")
            .await
    }

    // ----- files

    /// `POST /chats/files?organization=…`: uploads a file (at most 10 MiB, an allowed
    /// type; the server checks the bytes match `content_type`). `file_name` is sent in
    /// `Content-Disposition`.
    pub async fn upload_chat_file(
        &self,
        organization: Uuid,
        content_type: &str,
        file_name: Option<&str>,
        data: Vec<u8>,
    ) -> Result<UploadChatFileResponse> {
        let mut url = self.api_url(&["chats", "files"])?;
        url.query_pairs_mut()
            .append_pair("organization", &organization.to_string());
        let mut builder = self
            .request(reqwest::Method::POST, url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(data);
        if let Some(name) = file_name {
            builder = builder.header(
                reqwest::header::CONTENT_DISPOSITION,
                content_disposition(name),
            );
        }
        self.json(builder, "an upload response").await
    }

    /// `GET /chats/files/{file}`: the bytes and their type. A body over
    /// [`MAX_CHAT_FILE_SIZE_BYTES`] (more than any server stores) is refused.
    pub async fn chat_file(&self, file: Uuid) -> Result<ChatFile> {
        let id = file.to_string();
        let url = self.api_url(&["chats", "files", &id])?;
        let response = self.send(self.request(reqwest::Method::GET, url)).await?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let content_disposition = header(reqwest::header::CONTENT_DISPOSITION);
        let data = read_capped(response, MAX_CHAT_FILE_SIZE_BYTES + 1).await?;
        if data.len() as u64 > MAX_CHAT_FILE_SIZE_BYTES {
            return Err(Error::TooLarge {
                what: "a chat file",
                limit: MAX_CHAT_FILE_SIZE_BYTES,
            });
        }
        Ok(ChatFile {
            content_type,
            content_disposition,
            data,
        })
    }

    // ----- providers, models, keys

    /// `GET /chats/providers` (administrators): every supported provider with its config.
    pub async fn chat_providers(&self) -> Result<Vec<ChatProviderConfig>> {
        self.get(self.api_url(&["chats", "providers"])?, "a provider list")
            .await
    }

    /// `POST /chats/providers` (administrators).
    pub async fn create_chat_provider(
        &self,
        request: &CreateChatProviderConfigRequest,
    ) -> Result<ChatProviderConfig> {
        let url = self.api_url(&["chats", "providers"])?;
        self.with_body(reqwest::Method::POST, url, request, "a provider config")
            .await
    }

    /// `PATCH /chats/providers/{provider}` (administrators); `api_key: ""` clears the key.
    pub async fn update_chat_provider(
        &self,
        provider: Uuid,
        request: &UpdateChatProviderConfigRequest,
    ) -> Result<ChatProviderConfig> {
        let id = provider.to_string();
        let url = self.api_url(&["chats", "providers", &id])?;
        self.with_body(reqwest::Method::PATCH, url, request, "a provider config")
            .await
    }

    /// `DELETE /chats/providers/{provider}` (administrators, 204).
    pub async fn delete_chat_provider(&self, provider: Uuid) -> Result<()> {
        let id = provider.to_string();
        let url = self.api_url(&["chats", "providers", &id])?;
        self.empty(self.request(reqwest::Method::DELETE, url)).await
    }

    /// `GET /chats/model-configs` (users see enabled ones only).
    pub async fn chat_model_configs(&self) -> Result<Vec<ChatModelConfig>> {
        self.get(self.api_url(&["chats", "model-configs"])?, "a model list")
            .await
    }

    /// `POST /chats/model-configs` (administrators).
    pub async fn create_chat_model_config(
        &self,
        request: &CreateChatModelConfigRequest,
    ) -> Result<ChatModelConfig> {
        let url = self.api_url(&["chats", "model-configs"])?;
        self.with_body(reqwest::Method::POST, url, request, "a model config")
            .await
    }

    /// `PATCH /chats/model-configs/{model}` (administrators).
    pub async fn update_chat_model_config(
        &self,
        model: Uuid,
        request: &UpdateChatModelConfigRequest,
    ) -> Result<ChatModelConfig> {
        let id = model.to_string();
        let url = self.api_url(&["chats", "model-configs", &id])?;
        self.with_body(reqwest::Method::PATCH, url, request, "a model config")
            .await
    }

    /// `DELETE /chats/model-configs/{model}` (administrators, 204).
    pub async fn delete_chat_model_config(&self, model: Uuid) -> Result<()> {
        let id = model.to_string();
        let url = self.api_url(&["chats", "model-configs", &id])?;
        self.empty(self.request(reqwest::Method::DELETE, url)).await
    }

    /// `GET /chats/models`: the models the caller can pick, by provider.
    pub async fn chat_models(&self) -> Result<ChatModelsResponse> {
        self.get(self.api_url(&["chats", "models"])?, "the model catalogue")
            .await
    }

    /// `GET /chats/user-provider-configs`: providers that accept the caller's own key.
    pub async fn user_chat_provider_configs(&self) -> Result<Vec<UserChatProviderConfig>> {
        let url = self.api_url(&["chats", "user-provider-configs"])?;
        self.get(url, "a user provider list").await
    }

    /// `PUT /chats/user-provider-configs/{provider}`: stores the caller's own key.
    pub async fn upsert_user_chat_provider_key(
        &self,
        provider: Uuid,
        request: &CreateUserChatProviderKeyRequest,
    ) -> Result<UserChatProviderConfig> {
        let id = provider.to_string();
        let url = self.api_url(&["chats", "user-provider-configs", &id])?;
        self.with_body(reqwest::Method::PUT, url, request, "a user provider config")
            .await
    }

    /// `DELETE /chats/user-provider-configs/{provider}`: removes the caller's own key (204).
    pub async fn delete_user_chat_provider_key(&self, provider: Uuid) -> Result<()> {
        let id = provider.to_string();
        let url = self.api_url(&["chats", "user-provider-configs", &id])?;
        self.empty(self.request(reqwest::Method::DELETE, url)).await
    }

    /// `GET /chats/config/model-override/{context}` (any signed-in user; an unknown
    /// context is a 400).
    pub async fn chat_model_override(
        &self,
        context: &ChatModelOverrideContext,
    ) -> Result<ChatModelOverrideResponse> {
        let url = self.api_url(&["chats", "config", "model-override", context.as_str()])?;
        self.get(url, "a model override").await
    }

    /// `PUT /chats/config/model-override/{context}` (administrators, 204); `""` clears.
    pub async fn update_chat_model_override(
        &self,
        context: &ChatModelOverrideContext,
        request: &UpdateChatModelOverrideRequest,
    ) -> Result<()> {
        let url = self.api_url(&["chats", "config", "model-override", context.as_str()])?;
        self.empty(self.request(reqwest::Method::PUT, url).json(request))
            .await
    }

    // ----- prompts

    /// `GET /chats/config/system-prompt` (administrators).
    pub async fn chat_system_prompt(&self) -> Result<ChatSystemPromptResponse> {
        let url = self.api_url(&["chats", "config", "system-prompt"])?;
        self.get(url, "the system prompt").await
    }

    /// `PUT /chats/config/system-prompt` (administrators, 204).
    pub async fn update_chat_system_prompt(
        &self,
        request: &UpdateChatSystemPromptRequest,
    ) -> Result<()> {
        let url = self.api_url(&["chats", "config", "system-prompt"])?;
        self.empty(self.request(reqwest::Method::PUT, url).json(request))
            .await
    }

    /// `GET /chats/config/user-prompt`: the caller's personal prompt.
    pub async fn chat_user_prompt(&self) -> Result<UserChatCustomPrompt> {
        let url = self.api_url(&["chats", "config", "user-prompt"])?;
        self.get(url, "the user prompt").await
    }

    /// `PUT /chats/config/user-prompt`: sets the caller's personal prompt.
    pub async fn update_chat_user_prompt(
        &self,
        request: &UserChatCustomPrompt,
    ) -> Result<UserChatCustomPrompt> {
        let url = self.api_url(&["chats", "config", "user-prompt"])?;
        self.with_body(reqwest::Method::PUT, url, request, "the user prompt")
            .await
    }

    // ----- MCP server configs

    /// `GET /mcp/servers` (users see enabled servers, redacted).
    pub async fn mcp_server_configs(&self) -> Result<Vec<MCPServerConfig>> {
        self.get(self.api_url(&["mcp", "servers"])?, "an MCP server list")
            .await
    }

    /// `POST /mcp/servers` (administrators).
    pub async fn create_mcp_server_config(
        &self,
        request: &CreateMCPServerConfigRequest,
    ) -> Result<MCPServerConfig> {
        let url = self.api_url(&["mcp", "servers"])?;
        self.with_body(reqwest::Method::POST, url, request, "an MCP server config")
            .await
    }

    /// `GET /mcp/servers/{server}`.
    pub async fn mcp_server_config(&self, server: Uuid) -> Result<MCPServerConfig> {
        let id = server.to_string();
        self.get(
            self.api_url(&["mcp", "servers", &id])?,
            "an MCP server config",
        )
        .await
    }

    /// `PATCH /mcp/servers/{server}` (administrators).
    pub async fn update_mcp_server_config(
        &self,
        server: Uuid,
        request: &UpdateMCPServerConfigRequest,
    ) -> Result<MCPServerConfig> {
        let id = server.to_string();
        let url = self.api_url(&["mcp", "servers", &id])?;
        self.with_body(reqwest::Method::PATCH, url, request, "an MCP server config")
            .await
    }

    /// `DELETE /mcp/servers/{server}` (administrators, 204).
    pub async fn delete_mcp_server_config(&self, server: Uuid) -> Result<()> {
        let id = server.to_string();
        let url = self.api_url(&["mcp", "servers", &id])?;
        self.empty(self.request(reqwest::Method::DELETE, url)).await
    }

    // ----- WebSockets

    /// `GET /chats/{chat}/stream`: the chat's snapshot (status, buffered parts, messages
    /// after `after_id`, pending tool calls, the queue), then live events.
    pub async fn stream(&self, chat: Uuid, after_id: Option<i64>) -> Result<ChatEventStream> {
        let id = chat.to_string();
        let mut url = self.api_url(&["chats", &id, "stream"])?;
        if let Some(after) = after_id {
            url.query_pairs_mut()
                .append_pair("after_id", &after.to_string());
        }
        stream::open::<stream::ArrayFrames>(self.websocket_url(url)?).await
    }

    /// `GET /chats/watch`: changes to the caller's chats (created, status, title,
    /// archived, action required).
    pub async fn watch(&self) -> Result<WatchEventStream> {
        let url = self.api_url(&["chats", "watch"])?;
        stream::open::<stream::SingleFrames<crate::ChatWatchEvent>>(self.websocket_url(url)?).await
    }

    /// `url` as a `ws://`/`wss://` URL carrying the token in the query.
    fn websocket_url(&self, mut url: reqwest::Url) -> Result<String> {
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| Error::InvalidUrl("cannot make a WebSocket URL".into()))?;
        url.query_pairs_mut()
            .append_pair(SESSION_TOKEN_QUERY, self.token.expose());
        Ok(url.into())
    }
}

/// Reads at most `limit` bytes of a body (the rest is not read).
async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(out.len());
        if chunk.len() >= room {
            out.extend_from_slice(chunk.get(..room).unwrap_or_default());
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `query_pairs_mut` leaves a bare `?` when nothing was appended.
fn strip_empty_query(url: &mut reqwest::Url) {
    if url.query() == Some("") {
        url.set_query(None);
    }
}

/// `attachment; filename="…"`, with an RFC 5987 `filename*` when the name is not plain
/// ASCII (so non-ASCII names survive and quotes cannot break the header).
fn content_disposition(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ');
    if plain {
        return format!("attachment; filename=\"{name}\"");
    }
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, RFC8187_ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The bytes RFC 8187 percent-encodes in an `ext-value` such as `filename*`: everything
/// but its `attr-char`s (ASCII letters, digits and ``!#$&+-.^_`|~``).
const RFC8187_ATTR_CHAR_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_quotes_and_encodes() {
        assert_eq!(
            content_disposition("report 1.pdf"),
            "attachment; filename=\"report 1.pdf\""
        );
        assert_eq!(
            content_disposition("a\"b.txt"),
            "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
        assert_eq!(
            content_disposition("été.txt"),
            "attachment; filename=\"_t_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"
        );
        // Every attr-char stays, everything else is encoded (space, quote, `%`, `*`, `'`); the
        // plain fallback replaces spaces too once the name needs the encoded form.
        assert_eq!(
            content_disposition("é !#$&+-.^_`|~ %*'.txt"),
            "attachment; filename=\"__!#$&+-.^_`|~_%*'.txt\"; \
             filename*=UTF-8''%C3%A9%20!#$&+-.^_`|~%20%25%2A%27.txt"
        );
    }

    #[test]
    fn urls_keep_a_path_prefix_and_encode_segments() {
        let client = Client::new("http://h:1/prefix/", "t").unwrap_or_else(|e| panic!("{e}"));
        let url = client
            .url(V2.iter().copied().chain(["users", "a b/c", "keys"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/api/v2/users/a%20b%2Fc/keys"
        );
        assert!(Client::new("ftp://h", "t").is_err());
        assert!(Client::new("not a url", "t").is_err());
    }
}
