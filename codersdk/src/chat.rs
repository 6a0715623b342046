//! The [`Chat`] object and what hangs off it: status, diff status, files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::null_as_default;
use crate::{ChatError, ChatMessagePart, Timestamp};

string_enum! {
    /// Lifecycle state of a chat.
    pub enum ChatStatus {
        /// Idle, waiting for user input.
        Waiting = "waiting",
        /// Queued for a worker.
        Pending = "pending",
        /// A worker is generating.
        Running = "running",
        /// Legacy value: read from older servers, never written.
        Paused = "paused",
        /// Legacy value: read from older servers, never written.
        Completed = "completed",
        /// The last turn failed; `last_error` says why.
        Error = "error",
        /// Waiting for the client to submit results of dynamic tools.
        RequiresAction = "requires_action",
    }
}

impl ChatStatus {
    /// Whether a worker holds or is about to hold the chat (new messages are queued).
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            ChatStatus::Pending | ChatStatus::Running | ChatStatus::RequiresAction
        )
    }
}

string_enum! {
    /// Plan mode of a chat. In requests, `""` leaves plan mode.
    pub enum ChatPlanMode {
        /// The chat is planning: only plan-mode MCP servers and instructions apply.
        Plan = "plan",
    }
}

string_enum! {
    /// The kind of client that created a chat.
    pub enum ChatClientType {
        /// Coder's web UI.
        Ui = "ui",
        /// Any other client (the default).
        Api = "api",
    }
}

/// A chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Chat {
    /// Chat id.
    pub id: Uuid,
    /// Owning organization.
    pub organization_id: Uuid,
    /// The user who owns the chat.
    pub owner_id: Uuid,
    /// Workspace the agent operates in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub workspace_id: Option<Uuid>,
    /// Workspace build the chat is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub build_id: Option<Uuid>,
    /// Workspace agent the chat is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub agent_id: Option<Uuid>,
    /// Parent of a sub-agent chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub parent_chat_id: Option<Uuid>,
    /// Root of the chat tree; the server always fills it (its own id for a root chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub root_chat_id: Option<Uuid>,
    /// Model config of the last (or next) turn.
    pub last_model_config_id: Uuid,
    /// Title.
    pub title: String,
    /// Status.
    pub status: ChatStatus,
    /// `plan` when in plan mode; omitted otherwise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::serde_util::empty_as_none"
    )]
    #[ts(optional)]
    pub plan_mode: Option<ChatPlanMode>,
    /// Error of the last failed turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_error: Option<ChatError>,
    /// Short summary of the last completed turn. Always present; `null` when none.
    #[serde(default)]
    pub last_turn_summary: Option<String>,
    /// Git / PR status of the chat's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub diff_status: Option<ChatDiffStatus>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last activity; the list ordering key.
    pub updated_at: Timestamp,
    /// Hidden from the default list.
    #[serde(default)]
    pub archived: bool,
    /// 0 = not pinned; 1..N = position among pinned chats.
    #[serde(default)]
    pub pin_order: i32,
    /// MCP servers enabled for the chat. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mcp_server_ids: Vec<Uuid>,
    /// User labels. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Linked files; only filled by create and single-chat reads.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub files: Vec<ChatFileMetadata>,
    /// There is an assistant message newer than the owner's read marker.
    #[serde(default)]
    pub has_unread: bool,
    /// Context parts most recently injected into the prompt.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub last_injected_context: Vec<ChatMessagePart>,
    /// Non-fatal problems (e.g. file-linking warnings on create).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub warnings: Vec<String>,
    /// `ui` or `api`.
    pub client_type: ChatClientType,
    /// Sub-agent chats (in list responses). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub children: Vec<Chat>,
}

/// Git and pull-request status of a chat's work.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct ChatDiffStatus {
    /// The chat.
    pub chat_id: Uuid,
    /// Pull request or branch URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub url: String,
    /// `open`, `closed`, `merged`, …
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub pull_request_state: String,
    /// Pull request title.
    #[serde(default)]
    pub pull_request_title: String,
    /// Draft pull request.
    #[serde(default)]
    pub pull_request_draft: bool,
    /// A reviewer requested changes.
    #[serde(default)]
    pub changes_requested: bool,
    /// Added lines.
    #[serde(default)]
    pub additions: i32,
    /// Deleted lines.
    #[serde(default)]
    pub deletions: i32,
    /// Changed files.
    #[serde(default)]
    pub changed_files: i32,
    /// Author login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub author_login: Option<String>,
    /// Author avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub author_avatar_url: Option<String>,
    /// Base branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub base_branch: Option<String>,
    /// Head branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub head_branch: Option<String>,
    /// Pull request number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub pr_number: Option<i32>,
    /// Commit count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub commits: Option<i32>,
    /// Approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub approved: Option<bool>,
    /// Reviewer count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reviewer_count: Option<i32>,
    /// When it was refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub refreshed_at: Option<Timestamp>,
    /// When it becomes stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub stale_at: Option<Timestamp>,
}

/// Response of `GET /chats/{chat}/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct ChatDiffContents {
    /// The chat.
    pub chat_id: Uuid,
    /// Git provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Remote origin URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_origin: Option<String>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Pull request URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    /// Unified diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// An uploaded chat file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatFileMetadata {
    /// File id.
    pub id: Uuid,
    /// Uploader.
    pub owner_id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Original name (from `Content-Disposition`).
    #[serde(default)]
    pub name: String,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes (a later Coder addition; omitted when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub size_bytes: Option<i64>,
    /// Upload time.
    pub created_at: Timestamp,
}

/// Response of `POST /chats/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UploadChatFileResponse {
    /// The new file's id.
    pub id: Uuid,
}

/// Largest accepted upload, in bytes (10 MiB).
pub const MAX_CHAT_FILE_SIZE_BYTES: u64 = 10 * 1024 * 1024;

/// Most files linked to one chat.
pub const MAX_CHAT_FILE_LINKS: usize = 20;

/// MIME types accepted for chat attachments.
pub const CHAT_ATTACHMENT_MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/pdf",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/markdown",
    "text/plain",
];
