//! Workspaces: where the model's file and process tools act. chatd does not build Coder's
//! workspace platform; embedders implement the seam for their own machines or containers.
//!
//! - A [`Workspace`] is one place to work: files (stat, ranged reads, writes, listings) and
//!   processes (foreground with a timeout, background with bounded output, listing,
//!   signals), plus its working and home directories. Every path the model gives is
//!   resolved *by the workspace*, beneath it: an implementation refuses what leads outside.
//! - A [`WorkspaceProvider`] gives the engine the workspace of a chat: a root chat and its
//!   sub-agents share one ([`WorkspaceChat::workspace_id`]), created on first use. It is
//!   told when a chat is interrupted or deleted so it can stop what the chat started
//!   ([`WorkspaceProvider::release`]).
//! - [`LocalWorkspaceProvider`] is the implementation this crate ships: a directory per
//!   root chat under a configured root, confined file access through `cap-std`, commands
//!   in their own process group with a scrubbed environment, optionally inside bubblewrap
//!   ([`Sandbox::Bubblewrap`]).
//! - [`tools`] are the model's built-in tools over a workspace (`read_file`, `write_file`,
//!   `edit_files`, `execute`, `process_output`, `process_list`, `process_signal`,
//!   `attach_file`, `read_skill`, `read_skill_file`); [`context`] finds the instruction
//!   files (`AGENTS.md`) and skills of a workspace and turns them into prompt blocks.
//!
//! Embedders implement the two traits for containers or remote machines; docs/workspaces.md
//! says how, and what the local implementation does and does not protect.

pub mod context;
mod local;
mod output;
mod process;
mod sandbox;
pub mod tools;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use codersdk::{Timestamp, Uuid};
use tokio_util::sync::CancellationToken;

pub use local::{
    LocalLimits, LocalWorkspaceConfig, LocalWorkspaceProvider, DEFAULT_BACKGROUND_LIFETIME,
    DEFAULT_MAX_FINISHED_PROCESSES, DEFAULT_MAX_PROCESSES_PER_COMMAND,
    DEFAULT_MAX_RUNNING_PROCESSES, DEFAULT_OUTPUT_HEAD_BYTES, DEFAULT_OUTPUT_TAIL_BYTES,
    DEFAULT_PATH, DEFAULT_PROCESS_WATCH_INTERVAL, OUTPUT_DRAIN_TIMEOUT,
};
pub use output::CapturedOutput;
pub use sandbox::{find_bwrap, Sandbox, BWRAP_CANDIDATES};

/// Entries the default [`Workspace::entry_kind`] lists from a directory at most.
pub const ENTRY_KIND_LISTING_LIMIT: usize = 10_000;

/// The result of a workspace operation.
pub type WorkspaceResult<T> = std::result::Result<T, WorkspaceError>;

/// What went wrong in a workspace operation. The message is written for the model (it
/// becomes the `error` of a tool result) and names the path or process concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceError {
    kind: WorkspaceErrorKind,
    message: String,
}

/// The classes of [`WorkspaceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkspaceErrorKind {
    /// The path is unusable as given (empty, a NUL byte).
    InvalidPath,
    /// The path leads outside the workspace (`..`, an absolute path elsewhere, a symbolic
    /// link pointing out).
    OutsideWorkspace,
    /// No such file, directory or process.
    NotFound,
    /// A directory where a file was needed.
    IsDirectory,
    /// Something that is not a directory where one was needed.
    NotADirectory,
    /// Over a size limit.
    TooLarge,
    /// A count or time limit was reached (processes, running commands).
    LimitReached,
    /// The operation is not possible in the current state (signalling an exited process).
    InvalidState,
    /// The workspace cannot be reached or created.
    Unavailable,
    /// Any other I/O failure.
    Io,
    /// The workspace does not offer this operation (an implementation without
    /// [`Workspace::spawn_stdio`], say).
    Unsupported,
}

impl WorkspaceError {
    /// An error of `kind` with a message for the model.
    pub fn new(kind: WorkspaceErrorKind, message: impl Into<String>) -> Self {
        WorkspaceError {
            kind,
            message: message.into(),
        }
    }

    /// The class of error.
    pub fn kind(&self) -> WorkspaceErrorKind {
        self.kind
    }

    /// The message for the model.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for WorkspaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WorkspaceError {}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (only reported by listings, which do not follow links).
    Symlink,
    /// Anything else (device, FIFO, socket).
    Other,
}

/// [`Workspace::stat`]: what a path names (symbolic links followed, inside the workspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// File, directory, …
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, when the file system records it.
    pub modified: Option<Timestamp>,
}

/// [`Workspace::read_file`]: a byte range of a file and the file's whole size.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRead {
    /// The bytes from the requested offset, at most the requested limit.
    pub data: Vec<u8>,
    /// The size of the whole file.
    pub size: u64,
}

impl fmt::Debug for FileRead {
    // File contents are user data and can be large: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRead")
            .field("data_len", &self.data.len())
            .field("size", &self.size)
            .finish()
    }
}

/// One entry of [`Workspace::list_directory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (lossy UTF-8).
    pub name: String,
    /// What it is; symbolic links are not followed.
    pub kind: FileKind,
}

/// [`Workspace::list_directory`]: entries sorted by name, at most the requested number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirListing {
    /// The entries, sorted by name.
    pub entries: Vec<DirEntry>,
    /// More entries exist than were returned.
    pub truncated: bool,
}

/// A shell command to run in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// The command line, run by the workspace's shell (`bash -c` locally).
    pub command: String,
    /// Foreground: how long it may run before it is killed. Background: how long it may
    /// live at most (the implementation may cap it further).
    pub timeout: Duration,
    /// The chat that starts it: interrupting or deleting that chat stops it.
    pub chat_id: Uuid,
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// It exited (or died of a signal) on its own.
    Exited,
    /// It ran past its time limit and was killed.
    TimedOut,
    /// It started more processes than allowed and was killed.
    ProcessLimit,
    /// `process_signal` (or [`Workspace::signal_process`]) stopped it.
    Signalled,
    /// Its chat was interrupted.
    Interrupted,
    /// Its chat was deleted (archived).
    Deleted,
    /// The server shut down.
    Shutdown,
}

impl ExitReason {
    /// A short word for results: `exited`, `timed_out`, `process_limit`, `signalled`,
    /// `interrupted`, `deleted`, `shutdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Exited => "exited",
            ExitReason::TimedOut => "timed_out",
            ExitReason::ProcessLimit => "process_limit",
            ExitReason::Signalled => "signalled",
            ExitReason::Interrupted => "interrupted",
            ExitReason::Deleted => "deleted",
            ExitReason::Shutdown => "shutdown",
        }
    }
}

/// Whether a process runs, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Still running.
    Running,
    /// Finished.
    Exited {
        /// The exit code, when it exited normally.
        code: Option<i32>,
        /// The signal that ended it, when one did.
        signal: Option<i32>,
        /// Why it ended.
        reason: ExitReason,
    },
}

/// A process as [`Workspace::list_processes`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The workspace's id of the process (what the model passes to `process_output`).
    pub id: String,
    /// The command line.
    pub command: String,
    /// The chat that started it.
    pub chat_id: Uuid,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Running or how it ended.
    pub state: ProcessState,
}

/// [`Workspace::run`] and [`Workspace::process_output`]: a process with what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// The process.
    pub info: ProcessInfo,
    /// Its standard output (bounded: the first and the last bytes).
    pub stdout: CapturedOutput,
    /// Its standard error (bounded likewise).
    pub stderr: CapturedOutput,
}

/// The signals `process_signal` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessSignal {
    /// SIGTERM: ask the process group to stop.
    Terminate,
    /// SIGKILL: stop the process group now.
    Kill,
}

/// What happened to a chat, for [`WorkspaceProvider::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatRelease {
    /// The user interrupted the chat: stop the processes it started.
    Interrupted,
    /// The chat was deleted (archived): stop the processes it started.
    Deleted,
}

/// A workspace: files and processes on some machine, with every path resolved beneath it.
///
/// Paths are strings as the model wrote them: relative to
/// [`working_directory`](Self::working_directory), or absolute inside it. An
/// implementation must refuse, with [`WorkspaceErrorKind::OutsideWorkspace`], any path
/// that leads outside (`..`, an absolute path elsewhere, a symbolic link pointing out) and
/// must not touch anything outside while doing so.
#[async_trait::async_trait]
pub trait Workspace: Send + Sync + fmt::Debug {
    /// The workspace's id (the chat's `workspace_id`).
    fn id(&self) -> Uuid;

    /// The directory commands start in and relative paths resolve against, as the model
    /// should write it.
    fn working_directory(&self) -> &str;

    /// The user's home directory, when the workspace has one of its own besides the
    /// working directory: its `AGENTS.md` is read too.
    fn home_directory(&self) -> Option<&str> {
        None
    }

    /// What `path` names.
    async fn stat(&self, path: &str) -> WorkspaceResult<FileStat>;

    /// Up to `limit` bytes of the file at `path` from byte `offset`, and its size.
    async fn read_file(&self, path: &str, offset: u64, limit: u64) -> WorkspaceResult<FileRead>;

    /// Writes `content` as the whole file at `path`, creating missing parent directories.
    async fn write_file(&self, path: &str, content: &[u8]) -> WorkspaceResult<()>;

    /// The entries of the directory at `path` (sorted by name), at most `limit`.
    async fn list_directory(&self, path: &str, limit: usize) -> WorkspaceResult<DirListing>;

    /// What `path` itself names, without following a symbolic link at its last component
    /// ([`FileKind::Symlink`] for a link); [`WorkspaceErrorKind::NotFound`] when nothing is
    /// there. Plan turns use it to check that the plan path resolves to itself.
    ///
    /// The default looks the name up in a listing of the parent directory (at most
    /// [`ENTRY_KIND_LISTING_LIMIT`] entries; a parent with more that does not list the
    /// name is an error rather than "not found", so a check built on it fails closed).
    /// Implementations with a direct `lstat` should override it.
    async fn entry_kind(&self, path: &str) -> WorkspaceResult<FileKind> {
        let trimmed = path.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((parent, name)) => (parent, name),
            None => (".", trimmed),
        };
        let listing = self
            .list_directory(parent, ENTRY_KIND_LISTING_LIMIT)
            .await?;
        if let Some(entry) = listing.entries.iter().find(|e| e.name == name) {
            return Ok(entry.kind);
        }
        if listing.truncated {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::LimitReached,
                format!("{path}: its directory has too many entries to check it."),
            ));
        }
        Err(WorkspaceError::new(
            WorkspaceErrorKind::NotFound,
            format!("{path}: no such file or directory"),
        ))
    }

    /// Runs a command in the foreground and waits for it: killed (with everything it
    /// started) when `request.timeout` passes or `cancel` fires.
    async fn run(
        &self,
        request: CommandRequest,
        cancel: CancellationToken,
    ) -> WorkspaceResult<ProcessOutput>;

    /// Starts a command in the background and returns at once.
    async fn start(&self, request: CommandRequest) -> WorkspaceResult<ProcessInfo>;

    /// A background process with its output so far.
    async fn process_output(&self, id: &str) -> WorkspaceResult<ProcessOutput>;

    /// The background processes the workspace knows: running ones and recently finished
    /// ones, oldest first.
    async fn list_processes(&self) -> WorkspaceResult<Vec<ProcessInfo>>;

    /// Sends `signal` to a background process and everything it started.
    async fn signal_process(&self, id: &str, signal: ProcessSignal)
        -> WorkspaceResult<ProcessInfo>;

    /// Starts a long-lived command whose standard input and output the caller speaks a
    /// protocol over (a workspace `.mcp.json` server). It runs like [`Workspace::start`]'s
    /// commands (same directory, environment and sandbox) and is stopped, with everything it
    /// started, when the returned [`StdioProcess`] is dropped. Implementations that cannot
    /// connect a process's stdio keep this default: [`WorkspaceErrorKind::Unsupported`].
    async fn spawn_stdio(&self, command: &str) -> WorkspaceResult<StdioProcess> {
        let _ = command;
        Err(WorkspaceError::new(
            WorkspaceErrorKind::Unsupported,
            "This workspace cannot run stdio servers.",
        ))
    }
}

/// A running command with its standard input and output connected
/// ([`Workspace::spawn_stdio`]); dropping it stops the command and everything it started.
pub struct StdioProcess {
    /// Writes to the command's standard input.
    pub stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    /// Reads the command's standard output.
    pub stdout: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    /// Stops the command when dropped.
    pub guard: Box<dyn Send + Sync>,
}

impl fmt::Debug for StdioProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdioProcess").finish_non_exhaustive()
    }
}

/// The chat a workspace is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkspaceChat {
    /// The chat running a turn.
    pub chat_id: Uuid,
    /// Its root chat (itself for a root chat).
    pub root_chat_id: Uuid,
    /// Its owner.
    pub owner_id: Uuid,
    /// The workspace already bound to the chat, or to its root chat for a sub-agent's
    /// first turn; `None` before the first use.
    pub workspace_id: Option<Uuid>,
}

impl WorkspaceChat {
    /// A root chat's request.
    pub fn new(chat_id: Uuid, owner_id: Uuid) -> Self {
        WorkspaceChat {
            chat_id,
            root_chat_id: chat_id,
            owner_id,
            workspace_id: None,
        }
    }

    /// Makes this a sub-agent of `root`.
    pub fn with_root(mut self, root: Uuid) -> Self {
        self.root_chat_id = root;
        self
    }

    /// Names the workspace already bound.
    pub fn with_workspace(mut self, workspace_id: Option<Uuid>) -> Self {
        self.workspace_id = workspace_id;
        self
    }
}

/// Where the engine gets a chat's workspace.
#[async_trait::async_trait]
pub trait WorkspaceProvider: Send + Sync + fmt::Debug {
    /// The workspace of `chat`, created on first use. The engine stores its
    /// [`Workspace::id`] as the chat's `workspace_id` and passes it back on later turns (and
    /// to the chat's sub-agents). An error leaves the turn without workspace tools; the
    /// model is told the workspace is unavailable.
    async fn workspace(&self, chat: &WorkspaceChat) -> WorkspaceResult<Arc<dyn Workspace>>;

    /// Chat `chat_id` was interrupted or deleted: stop the processes it started. Called
    /// after the change committed; must not block for long.
    async fn release(&self, chat_id: Uuid, event: ChatRelease);

    /// The engine is shutting down: stop every process.
    async fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::sync::Mutex;

    use super::*;

    /// A workspace that only lists directories: what the default `entry_kind` uses.
    #[derive(Debug, Default)]
    struct Listing {
        truncated: bool,
        asked: Mutex<Vec<(String, usize)>>,
    }

    fn unsupported<T>() -> WorkspaceResult<T> {
        Err(WorkspaceError::new(
            WorkspaceErrorKind::Unsupported,
            "not in this test",
        ))
    }

    #[async_trait::async_trait]
    impl Workspace for Listing {
        fn id(&self) -> Uuid {
            Uuid::nil()
        }
        fn working_directory(&self) -> &str {
            "/w"
        }
        async fn stat(&self, _: &str) -> WorkspaceResult<FileStat> {
            unsupported()
        }
        async fn read_file(&self, _: &str, _: u64, _: u64) -> WorkspaceResult<FileRead> {
            unsupported()
        }
        async fn write_file(&self, _: &str, _: &[u8]) -> WorkspaceResult<()> {
            unsupported()
        }
        async fn list_directory(&self, path: &str, limit: usize) -> WorkspaceResult<DirListing> {
            self.asked.lock().unwrap().push((path.to_owned(), limit));
            Ok(DirListing {
                entries: vec![
                    DirEntry {
                        name: "link".into(),
                        kind: FileKind::Symlink,
                    },
                    DirEntry {
                        name: "plain".into(),
                        kind: FileKind::File,
                    },
                ],
                truncated: self.truncated,
            })
        }
        async fn run(
            &self,
            _: CommandRequest,
            _: CancellationToken,
        ) -> WorkspaceResult<ProcessOutput> {
            unsupported()
        }
        async fn start(&self, _: CommandRequest) -> WorkspaceResult<ProcessInfo> {
            unsupported()
        }
        async fn process_output(&self, _: &str) -> WorkspaceResult<ProcessOutput> {
            unsupported()
        }
        async fn list_processes(&self) -> WorkspaceResult<Vec<ProcessInfo>> {
            unsupported()
        }
        async fn signal_process(&self, _: &str, _: ProcessSignal) -> WorkspaceResult<ProcessInfo> {
            unsupported()
        }
    }

    #[tokio::test]
    async fn default_entry_kind_looks_the_name_up_in_its_parent_and_fails_closed() {
        let ws = Listing::default();
        assert_eq!(ws.entry_kind("/w/a/link").await.unwrap(), FileKind::Symlink);
        assert_eq!(ws.entry_kind("plain").await.unwrap(), FileKind::File);
        assert_eq!(ws.entry_kind("/plain/").await.unwrap(), FileKind::File);
        let missing = ws.entry_kind("/w/missing").await.unwrap_err();
        assert_eq!(missing.kind(), WorkspaceErrorKind::NotFound);
        assert_eq!(
            *ws.asked.lock().unwrap(),
            [
                ("/w/a".to_owned(), ENTRY_KIND_LISTING_LIMIT),
                (".".to_owned(), ENTRY_KIND_LISTING_LIMIT),
                ("/".to_owned(), ENTRY_KIND_LISTING_LIMIT),
                ("/w".to_owned(), ENTRY_KIND_LISTING_LIMIT),
            ]
        );
        // A listing cut at the limit cannot prove absence: an error, not "not found".
        let cut = Listing {
            truncated: true,
            ..Listing::default()
        };
        assert_eq!(cut.entry_kind("/w/link").await.unwrap(), FileKind::Symlink);
        let unknown = cut.entry_kind("/w/missing").await.unwrap_err();
        assert_eq!(unknown.kind(), WorkspaceErrorKind::LimitReached);
    }
}
