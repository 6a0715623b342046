//! The local workspace: a directory per root chat under a root directory on the server's
//! machine, files through `cap-std`, commands as supervised process groups.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_std::fs::{Dir, OpenOptions};
use codersdk::{Timestamp, Uuid};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::process::{spawn_supervised, ProcScanner, ProcessRecord, Supervision};
use super::sandbox::{bwrap_args, Sandbox};
use super::{
    ChatRelease, CommandRequest, DirEntry, DirListing, ExitReason, FileKind, FileRead, FileStat,
    ProcessInfo, ProcessOutput, ProcessSignal, StdioProcess, Workspace, WorkspaceChat,
    WorkspaceError, WorkspaceErrorKind, WorkspaceProvider, WorkspaceResult,
};
use crate::engine::lock;

/// Most processes one command may have at once, its shell included (a fork bomb is
/// killed when it passes this). Counted by reading `/proc` every
/// [`DEFAULT_PROCESS_WATCH_INTERVAL`], so a fast fork bomb may briefly exceed it.
pub const DEFAULT_MAX_PROCESSES_PER_COMMAND: usize = 256;

/// How often the process count of a running command is checked.
pub const DEFAULT_PROCESS_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Most commands (foreground and background) running at once in one workspace; one more
/// is refused until one ends.
pub const DEFAULT_MAX_RUNNING_PROCESSES: usize = 16;

/// Finished background processes a workspace remembers (for `process_output` and
/// `process_list`); the oldest finished one is forgotten beyond it.
pub const DEFAULT_MAX_FINISHED_PROCESSES: usize = 16;

/// Longest a background process may live; it is killed then (also the cap of a
/// foreground command's timeout).
pub const DEFAULT_BACKGROUND_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// First bytes of each output stream (stdout, stderr) a process keeps.
pub const DEFAULT_OUTPUT_HEAD_BYTES: usize = 16 * 1024;

/// Last bytes of each output stream a process keeps, in a ring buffer.
pub const DEFAULT_OUTPUT_TAIL_BYTES: usize = 240 * 1024;

/// How long output still in the pipes is awaited after a command's process group is
/// gone; a process that escaped the group and holds a pipe open is not waited for.
pub const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// How long `signal_process` waits for the process to end before it answers (it answers
/// "running" when the process ignores SIGTERM).
const SIGNAL_SETTLE: Duration = Duration::from_secs(2);

/// How long [`WorkspaceProvider::shutdown`] waits for killed processes to be reaped.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// `PATH` of workspace commands: the system directories, not the server's own `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shells tried for commands, in order.
const SHELLS: &[&str] = &["/bin/bash", "/usr/bin/bash", "/bin/sh"];

/// The limits of a [`LocalWorkspaceProvider`]. Every field has a `DEFAULT_*` constant;
/// tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalLimits {
    /// See [`DEFAULT_MAX_PROCESSES_PER_COMMAND`].
    pub max_processes_per_command: usize,
    /// See [`DEFAULT_PROCESS_WATCH_INTERVAL`].
    pub process_watch_interval: Duration,
    /// See [`DEFAULT_MAX_RUNNING_PROCESSES`].
    pub max_running_processes: usize,
    /// See [`DEFAULT_MAX_FINISHED_PROCESSES`].
    pub max_finished_processes: usize,
    /// See [`DEFAULT_BACKGROUND_LIFETIME`].
    pub background_lifetime: Duration,
    /// See [`DEFAULT_OUTPUT_HEAD_BYTES`].
    pub output_head_bytes: usize,
    /// See [`DEFAULT_OUTPUT_TAIL_BYTES`].
    pub output_tail_bytes: usize,
}

impl Default for LocalLimits {
    fn default() -> Self {
        LocalLimits {
            max_processes_per_command: DEFAULT_MAX_PROCESSES_PER_COMMAND,
            process_watch_interval: DEFAULT_PROCESS_WATCH_INTERVAL,
            max_running_processes: DEFAULT_MAX_RUNNING_PROCESSES,
            max_finished_processes: DEFAULT_MAX_FINISHED_PROCESSES,
            background_lifetime: DEFAULT_BACKGROUND_LIFETIME,
            output_head_bytes: DEFAULT_OUTPUT_HEAD_BYTES,
            output_tail_bytes: DEFAULT_OUTPUT_TAIL_BYTES,
        }
    }
}

/// Everything a [`LocalWorkspaceProvider`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalWorkspaceConfig {
    /// The directory holding one directory per workspace (created when missing).
    pub root: PathBuf,
    /// How commands are isolated.
    pub sandbox: Sandbox,
    /// Limits.
    pub limits: LocalLimits,
    /// Extra environment variables of every command (the environment is otherwise
    /// scrubbed). Names starting with `CHATD_` are refused.
    pub env: BTreeMap<String, String>,
}

impl LocalWorkspaceConfig {
    /// Workspaces under `root`, unsandboxed, with default limits.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalWorkspaceConfig {
            root: root.into(),
            sandbox: Sandbox::None,
            limits: LocalLimits::default(),
            env: BTreeMap::new(),
        }
    }

    /// Sets the sandbox.
    pub fn with_sandbox(mut self, sandbox: Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: LocalLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// Workspaces as directories under one root: `<root>/<workspace id>`, one per root chat
/// (sub-agents share their root chat's), created on first use and kept afterwards.
#[derive(Debug, Clone)]
pub struct LocalWorkspaceProvider {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    sandbox: Sandbox,
    limits: LocalLimits,
    shell: PathBuf,
    env: Vec<(String, String)>,
    tables: Mutex<HashMap<Uuid, Arc<ProcessTable>>>,
    scanner: Arc<ProcScanner>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // No supervisor may be left to do it: kill every group still running.
        for table in lock(&self.tables).values() {
            for (record, task) in lock(&table.entries).iter() {
                if record.is_running() {
                    super::process::kill_group_now(record.pid);
                }
                task.abort();
            }
        }
    }
}

/// The processes of one workspace.
#[derive(Debug, Default)]
struct ProcessTable {
    entries: Mutex<Vec<(Arc<ProcessRecord>, JoinHandle<()>)>>,
    next_id: AtomicU64,
}

impl ProcessTable {
    fn running(&self) -> usize {
        lock(&self.entries)
            .iter()
            .filter(|(r, _)| r.is_running())
            .count()
    }

    fn background(&self) -> Vec<Arc<ProcessRecord>> {
        lock(&self.entries)
            .iter()
            .filter(|(r, _)| r.background)
            .map(|(r, _)| Arc::clone(r))
            .collect()
    }

    fn find(&self, id: &str) -> WorkspaceResult<Arc<ProcessRecord>> {
        lock(&self.entries)
            .iter()
            .find(|(r, _)| r.background && r.id == id)
            .map(|(r, _)| Arc::clone(r))
            .ok_or_else(|| {
                WorkspaceError::new(
                    WorkspaceErrorKind::NotFound,
                    format!(
                        "No process {id:?} in this workspace (process_list shows the known ones)."
                    ),
                )
            })
    }

    /// Forgets finished background processes beyond `keep`, oldest first, and finished
    /// foreground ones (their caller has their output).
    fn evict(&self, keep: usize) {
        let mut entries = lock(&self.entries);
        entries.retain(|(r, _)| r.background || r.is_running());
        let finished = entries.iter().filter(|(r, _)| !r.is_running()).count();
        let mut excess = finished.saturating_sub(keep);
        entries.retain(|(r, _)| {
            if excess > 0 && !r.is_running() {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

impl LocalWorkspaceProvider {
    /// A provider over `config.root` (created when missing). Errors: the root cannot be
    /// created or is not a directory; the sandbox program does not exist; an extra
    /// environment variable is named `CHATD_…`.
    pub fn new(config: LocalWorkspaceConfig) -> WorkspaceResult<Self> {
        let unavailable = |what: String| WorkspaceError::new(WorkspaceErrorKind::Unavailable, what);
        std::fs::create_dir_all(&config.root).map_err(|e| {
            unavailable(format!(
                "the workspaces directory {} cannot be created: {e}",
                config.root.display()
            ))
        })?;
        let root = std::fs::canonicalize(&config.root).map_err(|e| {
            unavailable(format!(
                "the workspaces directory {} cannot be opened: {e}",
                config.root.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(unavailable(format!(
                "the workspaces directory {} is not a directory",
                root.display()
            )));
        }
        if let Sandbox::Bubblewrap { program } = &config.sandbox {
            if !program.is_file() {
                return Err(unavailable(format!(
                    "bubblewrap ({}) is not installed; install the `bubblewrap` package or \
                     run without the sandbox",
                    program.display()
                )));
            }
        }
        if let Some(name) = config.env.keys().find(|k| k.starts_with("CHATD_")) {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::InvalidPath,
                format!("{name}: CHATD_ variables are the server's and never reach commands"),
            ));
        }
        let shell = SHELLS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| unavailable("no shell found (looked for bash and sh)".to_owned()))?;
        let limits = config.limits;
        let scanner = Arc::new(ProcScanner::new(limits.process_watch_interval / 2));
        Ok(LocalWorkspaceProvider {
            shared: Arc::new(Shared {
                root,
                sandbox: config.sandbox,
                limits,
                shell,
                env: config.env.into_iter().collect(),
                tables: Mutex::new(HashMap::new()),
                scanner,
            }),
        })
    }

    /// The workspaces directory (canonical).
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The directory of workspace `id` (whether or not it exists yet).
    pub fn workspace_dir(&self, id: Uuid) -> PathBuf {
        self.shared.root.join(id.to_string())
    }

    fn table(&self, id: Uuid) -> Arc<ProcessTable> {
        let mut tables = lock(&self.shared.tables);
        // Tables with nothing left in them go, so the map does not grow with every chat.
        tables.retain(|_, t| !lock(&t.entries).is_empty());
        Arc::clone(tables.entry(id).or_default())
    }

    fn all_records(&self) -> Vec<Arc<ProcessRecord>> {
        lock(&self.shared.tables)
            .values()
            .flat_map(|t| {
                lock(&t.entries)
                    .iter()
                    .map(|(r, _)| Arc::clone(r))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl WorkspaceProvider for LocalWorkspaceProvider {
    async fn workspace(&self, chat: &WorkspaceChat) -> WorkspaceResult<Arc<dyn Workspace>> {
        let id = chat.workspace_id.unwrap_or_else(Uuid::new_v4);
        let dir = self.workspace_dir(id);
        let create = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&create))
            .await
            .map_err(|e| WorkspaceError::new(WorkspaceErrorKind::Unavailable, format!("{e}")))?
            .map_err(|e| {
                WorkspaceError::new(
                    WorkspaceErrorKind::Unavailable,
                    format!("the workspace directory cannot be created: {e}"),
                )
            })?;
        let dir_text = dir.to_string_lossy().into_owned();
        Ok(Arc::new(LocalWorkspace {
            shared: Arc::clone(&self.shared),
            table: self.table(id),
            id,
            dir,
            dir_text,
        }))
    }

    async fn release(&self, chat_id: Uuid, event: ChatRelease) {
        let reason = match event {
            ChatRelease::Interrupted => ExitReason::Interrupted,
            ChatRelease::Deleted => ExitReason::Deleted,
        };
        for record in self.all_records() {
            if record.chat_id == chat_id && record.is_running() {
                record.request_stop(reason);
            }
        }
    }

    async fn shutdown(&self) {
        let running: Vec<_> = self
            .all_records()
            .into_iter()
            .filter(|r| r.is_running())
            .collect();
        for record in &running {
            record.request_stop(ExitReason::Shutdown);
        }
        let all = futures_util::future::join_all(running.iter().map(|r| r.finished.cancelled()));
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, all).await;
    }
}

/// One local workspace (see [`LocalWorkspaceProvider`]).
#[derive(Debug)]
struct LocalWorkspace {
    shared: Arc<Shared>,
    table: Arc<ProcessTable>,
    id: Uuid,
    dir: PathBuf,
    dir_text: String,
}

impl LocalWorkspace {
    /// The path relative to the workspace directory that `raw` names, before the kernel
    /// resolves it beneath the directory (which is what confines it: `..` and symbolic
    /// links are followed by `cap-std` and refused when they lead out).
    fn relative(&self, raw: &str) -> WorkspaceResult<PathBuf> {
        if raw.contains('\0') {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::InvalidPath,
                "The path contains a NUL byte.",
            ));
        }
        if raw.trim().is_empty() {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::InvalidPath,
                "The path is empty.",
            ));
        }
        let path = Path::new(raw);
        let relative = if path.is_absolute() {
            path.strip_prefix(&self.dir)
                .map_err(|_| {
                    WorkspaceError::new(
                        WorkspaceErrorKind::OutsideWorkspace,
                        format!(
                            "{raw}: the path is outside the workspace; absolute paths must be \
                             inside {}. Use a path relative to it.",
                            self.dir_text
                        ),
                    )
                })?
                .to_path_buf()
        } else {
            path.to_path_buf()
        };
        if relative.as_os_str().is_empty() {
            return Ok(PathBuf::from("."));
        }
        // Only for a clear answer: `a/../../x` climbs out even when `a` does not exist
        // (the kernel would say "not found"). Confinement itself is cap-std's.
        let mut depth = 0usize;
        for component in relative.components() {
            match component {
                std::path::Component::ParentDir => {
                    depth = depth.checked_sub(1).ok_or_else(|| outside(raw))?;
                }
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
        }
        Ok(relative)
    }

    /// Runs blocking file work on `spawn_blocking` with the workspace directory opened as
    /// a capability.
    async fn with_dir<T, F>(&self, raw: &str, work: F) -> WorkspaceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir, &Path) -> io::Result<T> + Send + 'static,
    {
        let relative = self.relative(raw)?;
        let root = self.dir.clone();
        let shown = raw.to_owned();
        tokio::task::spawn_blocking(move || {
            let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority()).map_err(|e| {
                WorkspaceError::new(
                    WorkspaceErrorKind::Unavailable,
                    format!("The workspace directory cannot be opened: {e}"),
                )
            })?;
            work(&dir, &relative).map_err(|e| io_error(&shown, &e))
        })
        .await
        .map_err(|e| WorkspaceError::new(WorkspaceErrorKind::Io, format!("{raw}: {e}")))?
    }

    fn command(&self, command: &str) -> tokio::process::Command {
        let shared = &self.shared;
        let mut cmd = match &shared.sandbox {
            Sandbox::Bubblewrap { program } => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(bwrap_args(&self.dir, &shared.shell, command));
                cmd
            }
            Sandbox::None => {
                let mut cmd = tokio::process::Command::new(&shared.shell);
                cmd.arg("-c").arg(command);
                cmd
            }
        };
        cmd.current_dir(&self.dir)
            // Nothing of the server's environment (keys, CHATD_*, tokens) reaches commands.
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOME", &self.dir)
            .env("PWD", &self.dir)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("SHELL", &shared.shell)
            .envs(shared.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        cmd
    }

    fn spawn(
        &self,
        request: &CommandRequest,
        background: bool,
    ) -> WorkspaceResult<Arc<ProcessRecord>> {
        let limits = &self.shared.limits;
        let running = self.table.running();
        if running >= limits.max_running_processes {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::LimitReached,
                format!(
                    "{running} commands are running in this workspace, the most allowed at once \
                     ({}); wait for one to finish or stop one with process_signal.",
                    limits.max_running_processes
                ),
            ));
        }
        let child = self.command(&request.command).spawn().map_err(|e| {
            WorkspaceError::new(
                WorkspaceErrorKind::Unavailable,
                format!("The command could not be started: {e}"),
            )
        })?;
        let number = self.table.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let supervision = Supervision {
            deadline: request.timeout.min(limits.background_lifetime),
            max_processes: limits.max_processes_per_command,
            watch_interval: limits.process_watch_interval,
            head_bytes: limits.output_head_bytes,
            tail_bytes: limits.output_tail_bytes,
            drain_timeout: OUTPUT_DRAIN_TIMEOUT,
        };
        let (record, task) = spawn_supervised(
            child,
            format!("proc-{number}"),
            request.command.clone(),
            request.chat_id,
            background,
            supervision,
            Arc::clone(&self.shared.scanner),
        )
        .ok_or_else(|| {
            WorkspaceError::new(
                WorkspaceErrorKind::Unavailable,
                "The command exited before it could be supervised.",
            )
        })?;
        self.table.evict(limits.max_finished_processes);
        lock(&self.table.entries).push((Arc::clone(&record), task));
        Ok(record)
    }
}

/// Stops a foreground command whose caller went away (the tool call timed out or the turn
/// was dropped) before it finished.
struct StopOnDrop(Arc<ProcessRecord>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if self.0.is_running() {
            self.0.request_stop(ExitReason::Interrupted);
        }
    }
}

#[async_trait::async_trait]
impl Workspace for LocalWorkspace {
    fn id(&self) -> Uuid {
        self.id
    }

    fn working_directory(&self) -> &str {
        &self.dir_text
    }

    async fn stat(&self, path: &str) -> WorkspaceResult<FileStat> {
        self.with_dir(path, |dir, rel| {
            let meta = dir.metadata(rel)?;
            Ok(FileStat {
                kind: kind_of(meta.file_type()),
                size: meta.len(),
                modified: meta
                    .modified()
                    .ok()
                    .map(|t| t.into_std())
                    .map(|t| Timestamp(chrono::DateTime::<chrono::Utc>::from(t))),
            })
        })
        .await
    }

    async fn read_file(&self, path: &str, offset: u64, limit: u64) -> WorkspaceResult<FileRead> {
        self.with_dir(path, move |dir, rel| {
            let meta = dir.metadata(rel)?;
            if meta.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            if !meta.is_file() {
                return Err(not_regular());
            }
            let mut file = dir.open_with(rel, &read_options())?.into_std();
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(not_regular());
            }
            file.seek(SeekFrom::Start(offset))?;
            let mut data = Vec::new();
            file.take(limit).read_to_end(&mut data)?;
            Ok(FileRead {
                data,
                size: meta.len(),
            })
        })
        .await
    }

    async fn write_file(&self, path: &str, content: &[u8]) -> WorkspaceResult<()> {
        let content = content.to_vec();
        self.with_dir(path, move |dir, rel| {
            if rel == Path::new(".") {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                // "Already exists" for a symbolic link to a directory: opening the file
                // below then says whether the link stays inside.
                match dir.create_dir_all(parent) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            let mut file = dir.open_with(rel, &write_options())?;
            if !file.metadata()?.is_file() {
                return Err(not_regular());
            }
            file.write_all(&content)?;
            file.flush()
        })
        .await
    }

    async fn entry_kind(&self, path: &str) -> WorkspaceResult<FileKind> {
        self.with_dir(path, |dir, rel| {
            if rel == Path::new(".") {
                return Ok(FileKind::Directory);
            }
            Ok(kind_of(dir.symlink_metadata(rel)?.file_type()))
        })
        .await
    }

    async fn list_directory(&self, path: &str, limit: usize) -> WorkspaceResult<DirListing> {
        self.with_dir(path, move |dir, rel| {
            let mut entries = Vec::new();
            let mut truncated = false;
            for entry in dir.read_dir(rel)? {
                let entry = entry?;
                if entries.len() >= limit {
                    truncated = true;
                    break;
                }
                entries.push(DirEntry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    kind: entry.file_type().map(kind_of).unwrap_or(FileKind::Other),
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(DirListing { entries, truncated })
        })
        .await
    }

    async fn run(
        &self,
        request: CommandRequest,
        cancel: CancellationToken,
    ) -> WorkspaceResult<ProcessOutput> {
        let record = self.spawn(&request, false)?;
        let guard = StopOnDrop(Arc::clone(&record));
        tokio::select! {
            () = record.finished.cancelled() => {}
            () = cancel.cancelled() => {
                record.request_stop(ExitReason::Interrupted);
                record.finished.cancelled().await;
            }
        }
        drop(guard);
        let output = record.output();
        self.table.evict(self.shared.limits.max_finished_processes);
        Ok(output)
    }

    async fn start(&self, request: CommandRequest) -> WorkspaceResult<ProcessInfo> {
        Ok(self.spawn(&request, true)?.info())
    }

    async fn process_output(&self, id: &str) -> WorkspaceResult<ProcessOutput> {
        Ok(self.table.find(id)?.output())
    }

    async fn list_processes(&self) -> WorkspaceResult<Vec<ProcessInfo>> {
        Ok(self.table.background().iter().map(|r| r.info()).collect())
    }

    async fn signal_process(
        &self,
        id: &str,
        signal: ProcessSignal,
    ) -> WorkspaceResult<ProcessInfo> {
        let record = self.table.find(id)?;
        if !record.is_running() {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::InvalidState,
                format!("Process {id} has already exited."),
            ));
        }
        record.signal(signal);
        let _ = tokio::time::timeout(SIGNAL_SETTLE, record.finished.cancelled()).await;
        Ok(record.info())
    }

    async fn spawn_stdio(&self, command: &str) -> WorkspaceResult<StdioProcess> {
        let mut cmd = self.command(command);
        // The protocol runs over stdin and stdout; what the server logs on stderr is not
        // read, so it must not fill a pipe and block the server.
        cmd.stdin(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| {
            WorkspaceError::new(
                WorkspaceErrorKind::Unavailable,
                format!("The server could not be started: {e}"),
            )
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(WorkspaceError::new(
                WorkspaceErrorKind::Unavailable,
                "The server's standard input and output could not be connected.",
            ));
        };
        Ok(StdioProcess {
            stdin: Box::pin(stdin),
            stdout: Box::pin(stdout),
            guard: Box::new(StdioGuard(Some(child))),
        })
    }
}

/// Kills a stdio server and everything it started when its connection is dropped.
struct StdioGuard(Option<tokio::process::Child>);

impl Drop for StdioGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            #[cfg(unix)]
            if let Some(pid) = child.id() {
                super::process::kill_command_tree(pid);
            }
            // The leader too, where the tree walk found nothing; `kill_on_drop` reaps it.
            let _ = child.start_kill();
        }
    }
}

fn kind_of(file_type: cap_std::fs::FileType) -> FileKind {
    if file_type.is_dir() {
        FileKind::Directory
    } else if file_type.is_file() {
        FileKind::File
    } else if file_type.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

/// Opening never blocks: a FIFO put where a file was expected fails instead of hanging a
/// thread until someone writes to it.
fn nonblocking(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        let flag = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
        options.custom_flags(flag);
    }
    #[cfg(not(unix))]
    let _ = options;
}

fn read_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true);
    nonblocking(&mut options);
    options
}

fn write_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    nonblocking(&mut options);
    options
}

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

/// The refusal of a path that leads outside the workspace.
fn outside(path: &str) -> WorkspaceError {
    WorkspaceError::new(
        WorkspaceErrorKind::OutsideWorkspace,
        format!(
            "{path}: the path leads outside the workspace (through `..` or a symbolic link); \
             only files inside the workspace can be used."
        ),
    )
}

/// An I/O error of a file operation on `path`, for the model.
fn io_error(path: &str, e: &io::Error) -> WorkspaceError {
    use WorkspaceErrorKind as K;
    // cap-std's refusal of a path that resolves outside the directory (`..` above the
    // root, an absolute symlink, a symlink pointing out).
    if e.to_string().contains("outside of the filesystem") {
        return outside(path);
    }
    let (kind, what) = match e.kind() {
        io::ErrorKind::NotFound => (K::NotFound, "no such file or directory".to_owned()),
        io::ErrorKind::IsADirectory => (K::IsDirectory, "is a directory".to_owned()),
        io::ErrorKind::NotADirectory => (
            K::NotADirectory,
            "a part of the path is not a directory".to_owned(),
        ),
        io::ErrorKind::PermissionDenied => (K::Io, "permission denied".to_owned()),
        io::ErrorKind::InvalidInput => (K::Io, e.to_string()),
        _ => (K::Io, e.to_string()),
    };
    WorkspaceError::new(kind, format!("{path}: {what}"))
}
