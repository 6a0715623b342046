//! The durable chat engine of chatd: the part of the backend that owns chats, runs their
//! turns against a model, and tells clients what happened.
//!
//! An [`Engine`] runs on SQLite (the embedded default) or PostgreSQL. Its methods mirror
//! the chats API (create, send with queue or interrupt, edit, promote, interrupt, archive,
//! client tool results, list, subscribe, watch) and return `codersdk` types; each change is
//! one transaction that locks the chat row and re-checks its preconditions, and events are
//! published only after commit. Workers claim `pending` chats through a lease (worker id +
//! epoch) that fences every write they make, so an edited, interrupted or recovered chat is
//! never overwritten by a stale worker; a crashed process's chats are recovered by stale
//! recovery in any other engine on the same database. A turn streams the model under the
//! retry policy of `chaterror`, runs the model's tool calls concurrently ([`tools`]), waits
//! for the client's results for client-executed tools, and records usage and exact cost.
//!
//! Beside the engine, the administration handle [`Admin`] serves everything else a server
//! needs — providers, model configs, users' own keys, prompts, model overrides, MCP
//! configs, users and API tokens — taking the [`Actor`] asking, validating, authorizing
//! ([`Role`]) and holding the [`Keyring`]. A server talks to these two only.
//!
//! The building blocks are public too:
//!
//! - **The store** ([`store::Store`]): one implementation over `sqlx`'s `Any` driver with
//!   embedded per-backend migrations; administrator configuration (providers, models,
//!   users' own keys, prompts) with keys sealed by a [`Keyring`]. It is the low-level seam
//!   under the engine and the handle and checks no caller's rights; sqlx's own types stay
//!   inside the crate (a database [`Error`] keeps the driver's error as its source).
//! - **Secrets at rest** ([`Keyring`], [`SecretKey`]): AES-256-GCM with a random nonce per
//!   value, associated data binding each ciphertext to its row, and a ring of named keys so
//!   keys can be rotated without downtime. See docs/secrets.md.
//! - **Stream fan-out** ([`StreamHub`]): the in-process hub between a chat's worker and its
//!   subscribers: the part buffer for late joiners, the retry state, and lag-disconnect
//!   back-pressure so a slow subscriber never blocks a worker. See docs/stream-hub.md.
//! - **Several replicas on PostgreSQL** ([`cluster`]): every replica relays what it
//!   publishes to the others through `LISTEN`/`NOTIFY`, holds a liveness lock so the others
//!   take over its chats within a second when it dies, and drains on request
//!   ([`Engine::drain`]). See docs/replicas.md.
//! - **Tools, prompts, titles** ([`tools`], [`prompt`], [`title`]); after each completed
//!   turn a short status label in `last_turn_summary` ([`EngineConfig::turn_summaries`]).
//! - **Long chats**: context compaction — when a step's context usage reaches the
//!   threshold (70 % of the window unless the model config or the user says otherwise),
//!   the model summarizes the conversation and later prompts start from the summary, also
//!   on a provider's context-length refusal and on request ([`Engine::compact_chat`]); see
//!   docs/compaction.md. OpenAI Responses models with `store` continue from the previous
//!   response (`previous_response_id`) instead of resending the history. Model calls
//!   outside the history (titles, summaries) are recorded as hidden usage rows, so spend
//!   stays exact.
//! - **Per-user MCP authentication** ([`mcp::oauth`]): OAuth2 discovery, client registration,
//!   the PKCE authorization-code flow bound to the user who started it, and the token
//!   refresh the MCP client calls before connecting. See docs/mcp-auth.md.
//!
//! `examples/embedded.rs` runs a whole chat on SQLite with a scripted model and a built-in
//! tool and prints its event stream: `cargo run -p chatd-core --example embedded`.
//!
//! Every limit is a named constant or an [`EngineSettings`] / [`HubConfig`] setting. Errors are one type,
//! [`Error`], classified by [`Error::kind`]; their messages never contain secrets.
//!
//! # Example
//!
//! ```
//! use chatd_core::{Keyring, SecretKey, StreamHub};
//! use codersdk::{ChatMessagePart, ChatStreamEvent, Uuid};
//!
//! // Secrets: seal an API key for one provider-config row, open it again.
//! let keyring = Keyring::new("2025-06", SecretKey::generate()?)?;
//! let row = Uuid::new_v4();
//! let aad = format!("provider_configs.api_key:{row}");
//! let sealed = keyring.encrypt(b"sk-live-123", aad.as_bytes())?;
//! assert!(sealed.starts_with("v1:2025-06:"));
//! assert_eq!(keyring.decrypt_secret(&sealed, aad.as_bytes())?.expose(), "sk-live-123");
//!
//! // Streams: a client joining mid-turn sees the buffered parts, then live events.
//! let hub = StreamHub::default();
//! let chat = Uuid::new_v4();
//! hub.begin_turn(chat);
//! hub.publish(ChatStreamEvent::message_part(chat, None, ChatMessagePart::text("Hel")));
//! let mut sub = hub.subscribe(chat)?;
//! assert_eq!(sub.snapshot().parts.len(), 1);
//! hub.publish(ChatStreamEvent::message_part(chat, None, ChatMessagePart::text("lo")));
//! assert!(sub.try_recv().is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None.

mod admin;
pub mod aibridge;
pub mod clock;
pub mod cluster;
pub mod configcache;
mod engine;
mod error;
mod hub;
pub mod mcp;
pub mod plan;
pub mod prompt;
mod role;
mod secrets;
pub mod store;
pub mod subagents;
pub mod title;
pub mod tools;
pub mod usage_limits;
pub mod workspace;

pub use admin::{
    is_unpriced_model, AccountPage, Admin, Bootstrap, Bootstrapped, ConfigAnnouncer, IssuedToken,
    McpOAuth2Callback, McpOAuth2Completed, McpRedirectUri, UserRef, DEBUG_LOGGING_FORCED_MESSAGE,
    DEBUG_LOGGING_NOT_ALLOWED_MESSAGE, USER_NOT_FOUND_MESSAGE,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::{
    ConfigChange, EngineObserver, NoObserver, RecoveryCause, DEFAULT_LIVENESS_INTERVAL,
};
pub use engine::{
    auto_archive_cutoff, retention_cutoff, validate_ai_gateway_retention_days, RetentionSweep,
    DEFAULT_AI_GATEWAY_RETENTION_DAYS, DEFAULT_RETENTION_INTERVAL, MAX_AI_GATEWAY_RETENTION_DAYS,
    MIN_AI_GATEWAY_RETENTION_DAYS, RETENTION_BATCH_SIZE, RETENTION_MIDNIGHT_SLACK,
};
pub use engine::{
    context_tokens, COMPACTION_DISABLED_THRESHOLD, COMPACTION_FAILED_MESSAGE,
    COMPACTION_SUMMARY_PREFIX, COMPACTION_SUMMARY_PROMPT, COMPACTION_TIMEOUT, COMPACTION_TOOL_NAME,
    CONTEXT_STILL_TOO_LONG_MESSAGE, FALLBACK_CONTEXT_LIMIT, MAX_COMPACTION_REENTRIES,
};
pub use engine::{
    Actor, ChatStream, Engine, EngineConfig, EngineSettings, FileUpload, ModelResolver,
    ModelSelection, ResolvedModel, StoreModelResolver, TurnModelRequest, ADMIN_ONLY_MESSAGE,
    CONFIG_CHANGE_CAPACITY, CONTENDED_CLAIM_RETRY, CONVERSATION_TITLE_SYSTEM_PROMPT,
    DEFAULT_ACQUIRE_INTERVAL, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_ACTIVE_TURNS, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_RUNNING_ROOT_CHATS,
    DEFAULT_MAX_RUNNING_SUBAGENTS, DEFAULT_MAX_STEPS, DEFAULT_RECOVERY_INTERVAL,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STALE_AFTER, DEFAULT_TURN_SUMMARY_DELAY,
    FILE_NOT_FOUND_MESSAGE, FINISH_ATTEMPTS, FINISH_RETRY_DELAY, MAX_CACHED_HISTORY_MESSAGES,
    MAX_TURN_SUMMARY_WORDS, MODEL_KEY_MISSING_MESSAGE, MODEL_NOT_SUPPORTED_MESSAGE,
    NOT_A_MEMBER_MESSAGE, TITLE_CONTEXT_MESSAGES, TITLE_CONVERSATION_MAX_RUNES, TITLE_RECENT_TURNS,
    TURN_SUMMARY_CONTEXT_MESSAGES, TURN_SUMMARY_REPLY_MAX_RUNES, TURN_SUMMARY_SYSTEM_PROMPT,
    TURN_SUMMARY_TIMEOUT, TURN_SUMMARY_USER_MAX_RUNES, UNUSABLE_MCP_SERVER_DETAIL,
};
#[doc(hidden)]
pub use engine::{HookPoint, TestHook};
pub use error::{Error, ErrorKind, Result};
pub use hub::{
    ChatSnapshot, ChatStats, ChatSubscription, HubConfig, HubEvent, HubReceiver, RecvError,
    StreamHub, SweepStats, TryRecvError, TurnPhase, WatchSubscription, DEFAULT_DROP_WARN_INTERVAL,
    DEFAULT_JANITOR_INTERVAL, DEFAULT_MAX_SUBSCRIBERS_PER_CHAT, DEFAULT_MAX_WATCHERS_PER_OWNER,
    DEFAULT_PART_BUFFER_CAPACITY, DEFAULT_RETAIN_GRACE, DEFAULT_SUBSCRIBER_CAPACITY,
    MAX_SUBSCRIBER_CAPACITY, MIN_JANITOR_INTERVAL,
};
pub use role::Role;
pub use secrets::{
    sealed_key_id, Keyring, SecretKey, KEY_LEN, MAX_KEY_ID_LEN, MAX_PLAINTEXT_LEN, MAX_SEALED_LEN,
    NONCE_LEN, SEALED_VERSION, TAG_LEN,
};
/// Store types that the engine's and the [`Admin`] handle's methods take or return.
pub use store::{
    Account, ApiToken, ChatListQuery, DeletedModelConfig, DeletedProviderConfig, SqliteSynchronous,
    StoreOptions, StoredFile, TokenCheck, User, DEFAULT_DEBUG_RETENTION_DAYS,
    LAST_ADMIN_TOKEN_MESSAGE, LAST_USED_RESOLUTION, MAX_DEBUG_DOCUMENT_BYTES,
    MAX_DEBUG_PURGE_BATCH, MAX_DEBUG_RETENTION_DAYS, MAX_DEBUG_RUNS_LISTED,
    MAX_DEBUG_STEPS_PER_RUN, MAX_FILE_BYTES, PRIVATE_FILE_MODE, TOKEN_NOT_FOUND_MESSAGE,
    UNLINKED_FILE_GRACE,
};
/// Re-exported because [`Keyring::decrypt`] returns plaintext in a [`Zeroizing`] buffer,
/// which wipes it when dropped.
pub use zeroize::Zeroizing;
