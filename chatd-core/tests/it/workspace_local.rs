//! The local workspace on real temporary directories: confinement of paths, files,
//! foreground and background processes, and every limit at its edge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatd_core::workspace::{
    find_bwrap, ChatRelease, CommandRequest, ExitReason, FileKind, LocalLimits,
    LocalWorkspaceConfig, LocalWorkspaceProvider, ProcessSignal, ProcessState, Sandbox, Workspace,
    WorkspaceChat, WorkspaceErrorKind, WorkspaceProvider,
};
use chatd_test_support::process::{live_command_lines, process_alive_with};
use codersdk::Uuid;
use tokio_util::sync::CancellationToken;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chatd-ws-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn provider_with(root: &Path, limits: LocalLimits) -> LocalWorkspaceProvider {
    LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(root).with_limits(limits)).unwrap()
}

async fn workspace(provider: &LocalWorkspaceProvider) -> Arc<dyn Workspace> {
    provider
        .workspace(&WorkspaceChat::new(Uuid::new_v4(), Uuid::new_v4()))
        .await
        .unwrap()
}

fn request(command: &str, timeout: Duration) -> CommandRequest {
    CommandRequest {
        command: command.to_owned(),
        timeout,
        chat_id: Uuid::nil(),
    }
}

async fn run(ws: &dyn Workspace, command: &str) -> chatd_core::workspace::ProcessOutput {
    ws.run(
        request(command, Duration::from_secs(30)),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether a process whose command line *starts* with `command` runs (not a zombie).
fn sleeper_alive(command: &str) -> bool {
    live_command_lines().iter().any(|c| c.starts_with(command))
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_per_root_chat_created_on_first_use_and_shared_by_sub_agents() {
    let tmp = TempDir::new();
    let root = tmp.0.join("not-yet");
    let provider = provider_with(&root, LocalLimits::default());
    assert!(root.is_dir(), "the root is created with the provider");
    let chat = Uuid::new_v4();
    let owner = Uuid::new_v4();
    let ws = provider
        .workspace(&WorkspaceChat::new(chat, owner))
        .await
        .unwrap();
    let dir = provider.workspace_dir(ws.id());
    assert!(dir.is_dir());
    assert_eq!(ws.working_directory(), dir.to_str().unwrap());
    ws.write_file("shared.txt", b"root").await.unwrap();
    // A sub-agent names its root's workspace and sees the same files.
    let sub = provider
        .workspace(
            &WorkspaceChat::new(Uuid::new_v4(), owner)
                .with_root(chat)
                .with_workspace(Some(ws.id())),
        )
        .await
        .unwrap();
    assert_eq!(sub.id(), ws.id());
    assert_eq!(
        sub.read_file("shared.txt", 0, 100).await.unwrap().data,
        b"root"
    );
    // Another root chat gets another directory.
    let other = workspace(&provider).await;
    assert_ne!(other.id(), ws.id());
    assert_eq!(
        other.stat("shared.txt").await.unwrap_err().kind(),
        WorkspaceErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_read_write_list_and_stat() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    ws.write_file("a/b/c.txt", b"0123456789").await.unwrap();
    let read = ws.read_file("a/b/c.txt", 3, 4).await.unwrap();
    assert_eq!(read.data, b"3456");
    assert_eq!(read.size, 10);
    // Past the end: nothing, and the size.
    assert!(ws
        .read_file("a/b/c.txt", 20, 4)
        .await
        .unwrap()
        .data
        .is_empty());
    // Absolute paths inside the workspace are fine.
    let absolute = format!("{}/a/b/c.txt", ws.working_directory());
    assert_eq!(ws.read_file(&absolute, 0, 2).await.unwrap().data, b"01");
    let stat = ws.stat("a/b").await.unwrap();
    assert_eq!(stat.kind, FileKind::Directory);
    assert_eq!(ws.stat("a/b/c.txt").await.unwrap().size, 10);
    ws.write_file("a/z.txt", b"").await.unwrap();
    let listing = ws.list_directory("a", 10).await.unwrap();
    let names: Vec<_> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["b", "z.txt"]);
    assert!(!listing.truncated);
    // The listing limit at its edge.
    assert!(!ws.list_directory("a", 2).await.unwrap().truncated);
    let one = ws.list_directory("a", 1).await.unwrap();
    assert_eq!(one.entries.len(), 1);
    assert!(one.truncated);
    // Overwrite replaces the whole file.
    ws.write_file("a/b/c.txt", b"new").await.unwrap();
    assert_eq!(
        ws.read_file("a/b/c.txt", 0, 100).await.unwrap().data,
        b"new"
    );
    // Directories are not files.
    assert_eq!(
        ws.read_file("a", 0, 1).await.unwrap_err().kind(),
        WorkspaceErrorKind::IsDirectory
    );
    assert_eq!(
        ws.write_file("a", b"x").await.unwrap_err().kind(),
        WorkspaceErrorKind::IsDirectory
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_leading_outside_are_refused_and_nothing_outside_is_touched() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0.join("root"), LocalLimits::default());
    let ws = workspace(&provider).await;
    let secret = tmp.0.join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let dir = PathBuf::from(ws.working_directory());
    // Symbolic links: one pointing out absolutely, one relatively, one to a directory
    // outside; one pointing inside is fine.
    std::os::unix::fs::symlink(&secret, dir.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../secret.txt", dir.join("rel-link")).unwrap();
    std::os::unix::fs::symlink(&tmp.0, dir.join("dir-link")).unwrap();
    ws.write_file("inside.txt", b"fine").await.unwrap();
    std::os::unix::fs::symlink("inside.txt", dir.join("good-link")).unwrap();
    assert_eq!(
        ws.read_file("good-link", 0, 10).await.unwrap().data,
        b"fine"
    );

    let outside = [
        "../secret.txt",
        "../../secret.txt",
        "a/../../secret.txt",
        "abs-link",
        "rel-link",
        "dir-link/secret.txt",
        secret.to_str().unwrap(),
        "/etc/passwd",
    ];
    for path in outside {
        let err = ws.read_file(path, 0, 100).await.unwrap_err();
        assert_eq!(
            err.kind(),
            WorkspaceErrorKind::OutsideWorkspace,
            "{path}: {err}"
        );
        assert!(err.message().contains(path), "{err}");
        let err = ws.write_file(path, b"pwned").await.unwrap_err();
        assert_eq!(
            err.kind(),
            WorkspaceErrorKind::OutsideWorkspace,
            "{path}: {err}"
        );
        assert!(ws.stat(path).await.is_err(), "{path}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "top secret");
    assert!(!tmp.0.join("root").join("..").join("pwned").exists());
    // A directory symlink out cannot be used to create files either.
    let err = ws.write_file("dir-link/new.txt", b"x").await.unwrap_err();
    assert_eq!(err.kind(), WorkspaceErrorKind::OutsideWorkspace);
    assert!(!tmp.0.join("new.txt").exists());

    for (path, kind) in [
        ("bad\0name", WorkspaceErrorKind::InvalidPath),
        ("", WorkspaceErrorKind::InvalidPath),
        ("   ", WorkspaceErrorKind::InvalidPath),
    ] {
        assert_eq!(ws.read_file(path, 0, 1).await.unwrap_err().kind(), kind);
        assert_eq!(ws.write_file(path, b"x").await.unwrap_err().kind(), kind);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_never_hangs_a_read_or_a_write() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let out = run(&*ws, "mkfifo pipe").await;
    assert_eq!(out.info.state, exited(0));
    let started = Instant::now();
    assert!(ws.read_file("pipe", 0, 10).await.is_err());
    assert!(ws.write_file("pipe", b"x").await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn exited(code: i32) -> ProcessState {
    ProcessState::Exited {
        code: Some(code),
        signal: None,
        reason: ExitReason::Exited,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_in_the_workspace_with_a_scrubbed_environment() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let out = run(&*ws, "pwd; echo err >&2; exit 3").await;
    assert_eq!(out.info.state, exited(3));
    assert_eq!(text(&out.stdout.kept()).trim(), ws.working_directory());
    assert_eq!(text(&out.stderr.kept()), "err\n");
    // Only the variables the workspace sets (and those bash adds itself) exist: nothing
    // of the test process (CARGO_*, CHATD_TEST_DATABASE_URL, …) gets through.
    let out = run(&*ws, "env | cut -d= -f1 | sort").await;
    let names = text(&out.stdout.kept());
    for name in names.lines() {
        assert!(
            ["PATH", "HOME", "PWD", "LANG", "TERM", "SHELL", "SHLVL", "_", "OLDPWD"]
                .contains(&name),
            "unexpected variable {name} in\n{names}"
        );
    }
    let out = run(&*ws, "echo $HOME").await;
    assert_eq!(text(&out.stdout.kept()).trim(), ws.working_directory());
    // The provider refuses to pass CHATD_ variables even when asked to.
    let mut config = LocalWorkspaceConfig::new(&tmp.0);
    config.env.insert("CHATD_ENCRYPTION_KEY".into(), "k".into());
    assert!(LocalWorkspaceProvider::new(config).is_err());
    let mut config = LocalWorkspaceConfig::new(&tmp.0);
    config.env.insert("GOFLAGS".into(), "-mod=mod".into());
    let provider = LocalWorkspaceProvider::new(config).unwrap();
    let ws = workspace(&provider).await;
    let out = run(&*ws, "echo $GOFLAGS").await;
    assert_eq!(text(&out.stdout.kept()).trim(), "-mod=mod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_never_exits_is_killed_with_its_whole_group_at_the_timeout() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let marker = format!("1{}.25", std::process::id());
    let started = Instant::now();
    let out = ws
        .run(
            request(
                &format!("echo started; sleep {marker} & sleep {marker}; echo never"),
                Duration::from_millis(500),
            ),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    match out.info.state {
        ProcessState::Exited { reason, .. } => assert_eq!(reason, ExitReason::TimedOut),
        other => panic!("{other:?}"),
    }
    assert_eq!(text(&out.stdout.kept()), "started\n");
    eventually("the background sleep dies with the group", || {
        !process_alive_with(&format!("sleep {marker}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_dropping_a_foreground_command_kills_it() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let marker = format!("2{}.5", std::process::id());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let out = ws
        .run(
            request(&format!("sleep {marker}"), Duration::from_secs(60)),
            cancel,
        )
        .await
        .unwrap();
    assert!(matches!(
        out.info.state,
        ProcessState::Exited {
            reason: ExitReason::Interrupted,
            ..
        }
    ));
    assert!(!process_alive_with(&format!("sleep {marker}")));
    // Dropped: the caller (a timed-out tool call) went away.
    let marker = format!("3{}.5", std::process::id());
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        ws.run(
            request(&format!("sleep {marker}"), Duration::from_secs(60)),
            CancellationToken::new(),
        ),
    )
    .await;
    assert!(dropped.is_err());
    eventually("the dropped command dies", || {
        !process_alive_with(&format!("sleep {marker}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_stopped_by_the_process_limit() {
    let tmp = TempDir::new();
    let mut limits = LocalLimits::default();
    limits.max_processes_per_command = 8;
    let provider = provider_with(&tmp.0, limits);
    let ws = workspace(&provider).await;
    // Bounded, so a broken limit cannot take the machine down: 40 sleepers.
    let marker = format!("4{}.5", std::process::id());
    let out = ws
        .run(
            request(
                &format!("for i in $(seq 40); do sleep {marker} & done; wait"),
                Duration::from_secs(20),
            ),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            out.info.state,
            ProcessState::Exited {
                reason: ExitReason::ProcessLimit,
                ..
            }
        ),
        "{:?}",
        out.info.state
    );
    eventually("every sleeper is gone", || {
        !process_alive_with(&format!("sleep {marker}"))
    })
    .await;
    // At the edge: 7 sleepers + the shell = 8 processes are allowed.
    let out = ws
        .run(
            request(
                "for i in $(seq 7); do sleep 0.6 & done; wait; echo done",
                Duration::from_secs(20),
            ),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.info.state, exited(0), "{}", text(&out.stderr.kept()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_is_bounded_and_counted() {
    let tmp = TempDir::new();
    let mut limits = LocalLimits::default();
    limits.output_head_bytes = 4;
    limits.output_tail_bytes = 8;
    let provider = provider_with(&tmp.0, limits);
    let ws = workspace(&provider).await;
    // 12 bytes fit exactly.
    let out = run(&*ws, "printf 'abcdefghijkl'").await;
    assert_eq!(out.stdout.head, b"abcd");
    assert_eq!(out.stdout.tail, b"efghijkl");
    assert_eq!(out.stdout.dropped_bytes(), 0);
    // One more byte drops one.
    let out = run(&*ws, "printf 'abcdefghijklm'").await;
    assert_eq!(out.stdout.tail, b"fghijklm");
    assert_eq!(out.stdout.dropped_bytes(), 1);
    // 100 MB with default caps: counted, not kept.
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let out = run(&*ws, "head -c 100000000 /dev/zero; echo end >&2").await;
    assert_eq!(out.stdout.total_bytes, 100_000_000);
    assert!(out.stdout.kept().len() <= 256 * 1024);
    assert_eq!(text(&out.stderr.kept()), "end\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_processes_start_report_output_and_take_signals() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let started = ws
        .start(request(
            "echo ready; trap 'echo bye; exit 7' TERM; while true; do sleep 0.05; done",
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    assert_eq!(started.state, ProcessState::Running);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ws.process_output(&started.id).await.unwrap();
        if text(&out.stdout.kept()) == "ready\n" {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = ws.list_processes().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, started.id);
    let after = ws
        .signal_process(&started.id, ProcessSignal::Terminate)
        .await
        .unwrap();
    match after.state {
        ProcessState::Exited { code, reason, .. } => {
            assert_eq!(code, Some(7));
            assert_eq!(reason, ExitReason::Signalled);
        }
        other => panic!("{other:?}"),
    }
    let out = ws.process_output(&started.id).await.unwrap();
    assert_eq!(text(&out.stdout.kept()), "ready\nbye\n");
    // Signalling an exited process, or an unknown one, is a clear error.
    assert_eq!(
        ws.signal_process(&started.id, ProcessSignal::Kill)
            .await
            .unwrap_err()
            .kind(),
        WorkspaceErrorKind::InvalidState
    );
    assert_eq!(
        ws.process_output("proc-999").await.unwrap_err().kind(),
        WorkspaceErrorKind::NotFound
    );
    // Kill ends one that ignores SIGTERM.
    let stubborn = ws
        .start(request(
            "trap '' TERM; while true; do sleep 0.05; done",
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    let after = ws
        .signal_process(&stubborn.id, ProcessSignal::Kill)
        .await
        .unwrap();
    assert!(matches!(after.state, ProcessState::Exited { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_deletion_and_shutdown_stop_the_chats_processes() {
    let tmp = TempDir::new();
    let provider = provider_with(&tmp.0, LocalLimits::default());
    let ws = workspace(&provider).await;
    let chat_a = Uuid::new_v4();
    let chat_b = Uuid::new_v4();
    let start = |chat: Uuid, marker: String| {
        let ws = Arc::clone(&ws);
        async move {
            ws.start(CommandRequest {
                command: format!("sleep {marker}"),
                timeout: Duration::from_secs(60),
                chat_id: chat,
            })
            .await
            .unwrap()
        }
    };
    let pid = std::process::id();
    let a = start(chat_a, format!("5{pid}.1")).await;
    let b = start(chat_b, format!("5{pid}.2")).await;
    provider.release(chat_a, ChatRelease::Interrupted).await;
    eventually("chat a's process ends", || {
        !process_alive_with(&format!("sleep 5{pid}.1"))
    })
    .await;
    let info = |id: String| {
        let ws = Arc::clone(&ws);
        async move { ws.process_output(&id).await.unwrap().info.state }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while info(a.id.clone()).await == ProcessState::Running {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        info(a.id.clone()).await,
        ProcessState::Exited {
            reason: ExitReason::Interrupted,
            ..
        }
    ));
    // Chat b's process is untouched by a's interrupt.
    assert_eq!(info(b.id.clone()).await, ProcessState::Running);
    provider.release(chat_b, ChatRelease::Deleted).await;
    eventually("chat b's process ends", || {
        !process_alive_with(&format!("sleep 5{pid}.2"))
    })
    .await;
    let c = start(chat_a, format!("5{pid}.3")).await;
    provider.shutdown().await;
    assert!(matches!(
        info(c.id.clone()).await,
        ProcessState::Exited {
            reason: ExitReason::Shutdown,
            ..
        }
    ));
    assert!(!process_alive_with(&format!("sleep 5{pid}.3")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_and_remembered_processes_are_bounded_at_the_edge() {
    let tmp = TempDir::new();
    let mut limits = LocalLimits::default();
    limits.max_running_processes = 2;
    limits.max_finished_processes = 2;
    let provider = provider_with(&tmp.0, limits);
    let ws = workspace(&provider).await;
    let long = || request("sleep 30", Duration::from_secs(60));
    let first = ws.start(long()).await.unwrap();
    let _second = ws.start(long()).await.unwrap();
    // The third running command, background or foreground, is one too many.
    let err = ws.start(long()).await.unwrap_err();
    assert_eq!(err.kind(), WorkspaceErrorKind::LimitReached);
    assert!(err.message().contains("(2)"), "{err}");
    let err = ws
        .run(
            request("true", Duration::from_secs(5)),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), WorkspaceErrorKind::LimitReached);
    ws.signal_process(&first.id, ProcessSignal::Kill)
        .await
        .unwrap();
    let third = ws.start(long()).await.unwrap();
    // Remembered finished processes: two are kept, the oldest goes with the third.
    for p in ws.list_processes().await.unwrap() {
        if p.state == ProcessState::Running {
            ws.signal_process(&p.id, ProcessSignal::Kill).await.unwrap();
        }
    }
    let quick = ws
        .start(request("true", Duration::from_secs(5)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ws.process_output(&quick.id).await.unwrap().info.state == ProcessState::Running {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _another = ws
        .start(request("true", Duration::from_secs(5)))
        .await
        .unwrap();
    let ids: Vec<String> = ws
        .list_processes()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert!(!ids.contains(&first.id), "{ids:?}");
    assert!(ids.len() <= 3, "{ids:?}");
    assert!(
        ids.contains(&quick.id) || ids.contains(&third.id),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_lifetime_is_a_time_bound() {
    let tmp = TempDir::new();
    let mut limits = LocalLimits::default();
    limits.background_lifetime = Duration::from_millis(300);
    let provider = provider_with(&tmp.0, limits);
    let ws = workspace(&provider).await;
    // Asked for an hour, capped at the lifetime.
    let p = ws
        .start(request("sleep 30", Duration::from_secs(3600)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = ws.process_output(&p.id).await.unwrap().info.state;
        if let ProcessState::Exited { reason, .. } = state {
            assert_eq!(reason, ExitReason::TimedOut);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bubblewrap_keeps_everything_but_the_workspace_read_only() {
    let Some(bwrap) = find_bwrap() else {
        eprintln!("bubblewrap is not installed; skipping");
        return;
    };
    let tmp = TempDir::new();
    let outside = tmp.0.join("outside.txt");
    std::fs::write(&outside, "keep").unwrap();
    let provider = LocalWorkspaceProvider::new(
        LocalWorkspaceConfig::new(tmp.0.join("root"))
            .with_sandbox(Sandbox::Bubblewrap { program: bwrap }),
    )
    .unwrap();
    let ws = workspace(&provider).await;
    let out = run(
        &*ws,
        &format!(
            "echo hi > inside.txt && cat inside.txt; echo x > {} ; touch /usr/pwned; \
             ls {} ; echo $HOME",
            outside.display(),
            tmp.0.display()
        ),
    )
    .await;
    let stdout = text(&out.stdout.kept());
    assert!(stdout.starts_with("hi\n"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with(ws.working_directory()),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    assert!(!Path::new("/usr/pwned").exists());
    assert_eq!(
        ws.read_file("inside.txt", 0, 10).await.unwrap().data,
        b"hi\n"
    );
    // A background process inside the sandbox dies with the sandbox.
    let marker = format!("6{}.5", std::process::id());
    let p = ws
        .start(request(
            &format!("sleep {marker} & sleep {marker}"),
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    // The sleepers themselves, not just the command lines of bwrap and bash that name them:
    // the kill must reach processes already inside the sandbox's own session.
    eventually("the sandboxed sleepers start", || {
        sleeper_alive(&format!("sleep {marker}"))
    })
    .await;
    ws.signal_process(&p.id, ProcessSignal::Kill).await.unwrap();
    eventually("the sandboxed sleepers die", || {
        !process_alive_with(&format!("sleep {marker}"))
    })
    .await;
    // A missing bwrap is refused when the provider is built.
    let missing = LocalWorkspaceProvider::new(
        LocalWorkspaceConfig::new(tmp.0.join("root")).with_sandbox(Sandbox::Bubblewrap {
            program: tmp.0.join("no-bwrap"),
        }),
    )
    .unwrap_err();
    assert!(missing.message().contains("bubblewrap"), "{missing}");
}

/// The defect behind the bubblewrap flake, reproduced without bubblewrap: a grandchild that
/// moved to a session of its own (as bubblewrap's `--new-session` does inside the sandbox),
/// under a child that stays in the leader's process group. Killing the group alone misses
/// it; the kill must follow the ancestry through group members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_reaches_a_grandchild_in_its_own_session_under_a_group_member() {
    let tmp = TempDir::new();
    let provider =
        LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(tmp.0.join("root"))).unwrap();
    let ws = workspace(&provider).await;
    let marker = format!("7{}.25", std::process::id());
    let p = ws
        .start(request(
            &format!("sh -c 'setsid sleep {marker} & wait' & wait"),
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    eventually("the detached sleeper starts", || {
        sleeper_alive(&format!("sleep {marker}"))
    })
    .await;
    ws.signal_process(&p.id, ProcessSignal::Kill).await.unwrap();
    eventually("the detached sleeper dies", || {
        !process_alive_with(&format!("sleep {marker}"))
    })
    .await;
}
