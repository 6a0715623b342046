//! Processes of the local workspaces: spawned in their own process group, supervised by a
//! task that captures their output, enforces the time and process-count limits, and kills
//! the whole group when the command ends, times out, or is stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codersdk::{Timestamp, Uuid};
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use super::output::OutputBuffer;
use super::{ExitReason, ProcessInfo, ProcessOutput, ProcessSignal, ProcessState};
use crate::engine::lock;

/// Bytes read from a pipe at a time.
const READ_CHUNK: usize = 16 * 1024;

/// One process the server started, with its captured output.
#[derive(Debug)]
pub(crate) struct ProcessRecord {
    pub(crate) id: String,
    pub(crate) command: String,
    pub(crate) chat_id: Uuid,
    pub(crate) background: bool,
    pub(crate) started_at: Timestamp,
    /// The leader's pid, which is also the process group id.
    pub(crate) pid: u32,
    stdout: Mutex<OutputBuffer>,
    stderr: Mutex<OutputBuffer>,
    state: Mutex<(ProcessState, Option<Timestamp>)>,
    stop_reason: Mutex<Option<ExitReason>>,
    /// Asks the supervisor to kill the group (the reason is in `stop_reason`).
    stop: CancellationToken,
    /// Cancelled once the process has ended and its state is final.
    pub(crate) finished: CancellationToken,
}

impl ProcessRecord {
    pub(crate) fn info(&self) -> ProcessInfo {
        let (state, finished_at) = *lock(&self.state);
        ProcessInfo {
            id: self.id.clone(),
            command: self.command.clone(),
            chat_id: self.chat_id,
            started_at: self.started_at,
            finished_at,
            state,
        }
    }

    pub(crate) fn output(&self) -> ProcessOutput {
        ProcessOutput {
            info: self.info(),
            stdout: lock(&self.stdout).snapshot(),
            stderr: lock(&self.stderr).snapshot(),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(lock(&self.state).0, ProcessState::Running)
    }

    /// Asks the supervisor to kill the process group; the first reason wins.
    pub(crate) fn request_stop(&self, reason: ExitReason) {
        {
            let mut slot = lock(&self.stop_reason);
            if slot.is_none() {
                *slot = Some(reason);
            }
        }
        self.stop.cancel();
    }

    /// Sends `signal` to the whole group now (`process_signal`).
    pub(crate) fn signal(&self, signal: ProcessSignal) {
        {
            let mut slot = lock(&self.stop_reason);
            if slot.is_none() {
                *slot = Some(ExitReason::Signalled);
            }
        }
        match signal {
            ProcessSignal::Terminate => signal_group(self.pid, GroupSignal::Terminate),
            ProcessSignal::Kill => self.stop.cancel(),
        }
    }
}

/// What [`spawn_supervised`] needs besides the child.
#[derive(Debug, Clone)]
pub(crate) struct Supervision {
    pub(crate) deadline: Duration,
    pub(crate) max_processes: usize,
    pub(crate) watch_interval: Duration,
    pub(crate) head_bytes: usize,
    pub(crate) tail_bytes: usize,
    pub(crate) drain_timeout: Duration,
}

/// Takes over a freshly spawned child (its own process group leader, stdout and stderr
/// piped) and starts the task that supervises it. The task ends when the process has
/// ended and the group is gone; the record's `finished` token says so.
pub(crate) fn spawn_supervised(
    mut child: Child,
    id: String,
    command: String,
    chat_id: Uuid,
    background: bool,
    supervision: Supervision,
    scanner: Arc<ProcScanner>,
) -> Option<(Arc<ProcessRecord>, tokio::task::JoinHandle<()>)> {
    let pid = child.id()?;
    let record = Arc::new(ProcessRecord {
        id,
        command,
        chat_id,
        background,
        started_at: Timestamp::now(),
        pid,
        stdout: Mutex::new(OutputBuffer::new(
            supervision.head_bytes,
            supervision.tail_bytes,
        )),
        stderr: Mutex::new(OutputBuffer::new(
            supervision.head_bytes,
            supervision.tail_bytes,
        )),
        state: Mutex::new((ProcessState::Running, None)),
        stop_reason: Mutex::new(None),
        stop: CancellationToken::new(),
        finished: CancellationToken::new(),
    });
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let task_record = Arc::clone(&record);
    let handle = tokio::spawn(async move {
        supervise(task_record, child, stdout, stderr, supervision, scanner).await;
    });
    Some((record, handle))
}

async fn supervise(
    record: Arc<ProcessRecord>,
    mut child: Child,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    supervision: Supervision,
    scanner: Arc<ProcScanner>,
) {
    let out_record = Arc::clone(&record);
    let out_task = tokio::spawn(async move {
        if let Some(pipe) = stdout {
            drain(pipe, |bytes| lock(&out_record.stdout).push(bytes)).await;
        }
    });
    let err_record = Arc::clone(&record);
    let err_task = tokio::spawn(async move {
        if let Some(pipe) = stderr {
            drain(pipe, |bytes| lock(&err_record.stderr).push(bytes)).await;
        }
    });
    let deadline = tokio::time::sleep(supervision.deadline);
    tokio::pin!(deadline);
    // The first count after one interval: a short command never pays for a `/proc` scan.
    let mut watch = tokio::time::interval_at(
        tokio::time::Instant::now() + supervision.watch_interval,
        supervision.watch_interval,
    );
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut timed_out = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.ok(),
            () = &mut deadline, if !timed_out => {
                timed_out = true;
                record.request_stop(ExitReason::TimedOut);
            }
            () = record.stop.cancelled() => {
                kill_command_tree(record.pid);
                break child.wait().await.ok();
            }
            _ = watch.tick() => {
                if scanner.group_size(record.pid) > supervision.max_processes {
                    record.request_stop(ExitReason::ProcessLimit);
                }
            }
        }
    };
    // Whatever the command left behind in its group goes with it: a foreground command
    // is done when its shell is, and a stray child must not outlive its supervision.
    signal_group(record.pid, GroupSignal::Kill);
    // Output still in the pipes arrives quickly; a process that escaped the group and
    // holds a pipe open must not hold the result back.
    for task in [out_task, err_task] {
        let abort = task.abort_handle();
        if tokio::time::timeout(supervision.drain_timeout, task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    let reason = lock(&record.stop_reason).unwrap_or(ExitReason::Exited);
    let (code, signal) = match status {
        Some(status) => {
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&status);
            #[cfg(not(unix))]
            let signal = None;
            (status.code(), signal)
        }
        None => (None, None),
    };
    *lock(&record.state) = (
        ProcessState::Exited {
            code,
            signal,
            reason,
        },
        Some(Timestamp::now()),
    );
    record.finished.cancel();
}

async fn drain<R: tokio::io::AsyncRead + Unpin>(mut pipe: R, mut sink: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => sink(buf.get(..n).unwrap_or_default()),
        }
    }
}

/// Kills the command led by `pgid` at once, its group and descendants (when no
/// supervisor is left to do it).
pub(crate) fn kill_group_now(pgid: u32) {
    kill_command_tree(pgid);
}

#[derive(Debug, Clone, Copy)]
enum GroupSignal {
    Terminate,
    Kill,
    /// Freezes a process (see [`kill_command_tree`]).
    Stop,
}

impl GroupSignal {
    #[cfg(unix)]
    fn as_rustix(self) -> rustix::process::Signal {
        match self {
            GroupSignal::Terminate => rustix::process::Signal::TERM,
            GroupSignal::Kill => rustix::process::Signal::KILL,
            GroupSignal::Stop => rustix::process::Signal::STOP,
        }
    }
}

/// Signals every process of group `pgid`; a group that is gone already is fine.
fn signal_group(pgid: u32, signal: GroupSignal) {
    #[cfg(unix)]
    if let Some(pid) = rustix_pid(pgid) {
        let _ = rustix::process::kill_process_group(pid, signal.as_rustix());
    }
    #[cfg(not(unix))]
    {
        let _ = (pgid, signal);
    }
}

/// Counts the processes of a command by reading `/proc` (Linux): the members of its
/// process group plus every descendant of its leader (which covers a sandbox, where the
/// command runs in a session of its own). Snapshots are shared between the commands that
/// ask within half a watch interval, so many running commands cost one scan.
#[derive(Debug)]
pub(crate) struct ProcScanner {
    max_age: Duration,
    snapshot: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

#[derive(Debug, Default)]
struct Snapshot {
    /// pid → (parent pid, process group).
    procs: HashMap<u32, (u32, u32)>,
    children: HashMap<u32, Vec<u32>>,
}

impl ProcScanner {
    pub(crate) fn new(max_age: Duration) -> Self {
        ProcScanner {
            max_age,
            snapshot: Mutex::new(None),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        let mut slot = lock(&self.snapshot);
        if let Some((taken, snap)) = slot.as_ref() {
            if taken.elapsed() < self.max_age {
                return Arc::clone(snap);
            }
        }
        let snap = Arc::new(scan_proc());
        *slot = Some((Instant::now(), Arc::clone(&snap)));
        snap
    }

    /// How many processes belong to the command whose leader is `leader`.
    pub(crate) fn group_size(&self, leader: u32) -> usize {
        members(&self.current(), leader).len()
    }
}

/// The processes of the command whose leader is `leader`: its process group, plus every
/// descendant of the leader (a sandbox's processes run in a session, and so a group, of
/// their own).
fn members(snap: &Snapshot, leader: u32) -> std::collections::HashSet<u32> {
    let mut seen = std::collections::HashSet::new();
    // Every group member and the leader start a walk down the ancestry: a descendant that
    // left the group (its own session) may hang under any of them, not only the leader.
    let mut stack: Vec<u32> = snap
        .procs
        .iter()
        .filter(|(_, (_, pgrp))| *pgrp == leader)
        .map(|(pid, _)| *pid)
        .collect();
    stack.push(leader);
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(kids) = snap.children.get(&pid) {
            stack.extend(kids.iter().copied().filter(|k| !seen.contains(k)));
        }
    }
    seen.retain(|pid| snap.procs.contains_key(pid));
    seen
}

/// Kills the command whose leader is `leader`: its group and every descendant, wherever
/// they are. Descendants are found from a fresh `/proc` scan and stopped first, so none
/// can fork or be reparented (losing the ancestry) while the group dies; then each
/// descendant's own group and the descendant itself are killed. Without this, a command
/// in bubblewrap whose sandboxed child had already moved to a session of its own could
/// outlive a kill of the leader's group.
pub(crate) fn kill_command_tree(leader: u32) {
    // Freeze first, to a fixpoint: the leader's group, then every descendant found, scanning
    // again until a scan finds no process not yet stopped. A stopped process cannot fork,
    // so nothing started between a scan and the kill can escape it.
    signal_group(leader, GroupSignal::Stop);
    let mut others: HashMap<u32, u32> = HashMap::new();
    for _ in 0..MAX_FREEZE_ROUNDS {
        let snap = scan_proc();
        let mut new = false;
        for pid in members(&snap, leader) {
            if pid == leader || others.contains_key(&pid) {
                continue;
            }
            if let Some((_, pgrp)) = snap.procs.get(&pid) {
                signal_pid(pid, GroupSignal::Stop);
                others.insert(pid, *pgrp);
                new = true;
            }
        }
        if !new {
            break;
        }
    }
    let mut others: Vec<(u32, u32)> = others.into_iter().collect();
    others.sort_unstable();
    signal_group(leader, GroupSignal::Kill);
    for (pid, pgrp) in &others {
        if *pgrp != leader {
            signal_group(*pgrp, GroupSignal::Kill);
        }
        signal_pid(*pid, GroupSignal::Kill);
    }
}

/// Scans of `/proc` [`kill_command_tree`] makes at most while freezing a command's
/// processes; each round stops what the previous one found, so a command reaches a
/// fixpoint in a few rounds unless it forks faster than it is stopped (then the process
/// limit's supervisor kills it as a fork bomb).
const MAX_FREEZE_ROUNDS: usize = 8;

/// A pid as rustix takes it; `None` for 0 or a value beyond `i32`.
#[cfg(unix)]
fn rustix_pid(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// Signals one process; one that is gone already is fine.
fn signal_pid(pid: u32, signal: GroupSignal) {
    #[cfg(unix)]
    if let Some(pid) = rustix_pid(pid) {
        let _ = rustix::process::kill_process(pid, signal.as_rustix());
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, signal);
    }
}

fn scan_proc() -> Snapshot {
    let mut snap = Snapshot::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return snap;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((ppid, pgrp)) = parse_stat(&stat) {
            snap.procs.insert(pid, (ppid, pgrp));
            snap.children.entry(ppid).or_default().push(pid);
        }
    }
    snap
}

/// The parent pid and process group of a `/proc/<pid>/stat` line. The command name (in
/// parentheses) may itself contain spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u32)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names() {
        assert_eq!(
            parse_stat("123 (bash) S 100 123 123 0 -1"),
            Some((100, 123))
        );
        assert_eq!(parse_stat("124 (a) b (c) R 1 77 77 0"), Some((1, 77)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_scanner_sees_this_process() {
        let scanner = ProcScanner::new(Duration::from_millis(10));
        let me = std::process::id();
        assert!(scanner.group_size(me) >= 1);
    }
}
