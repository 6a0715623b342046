//! The `chatd-server` binary as a newcomer runs it: `--help` lists every environment
//! variable; logs written to a pipe carry no colour codes; the first start prints the admin
//! token once, and a restart with `CHATD_ADMIN_TOKEN` sets a new one for the existing admin
//! (how a lost token is recovered). SQLite in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest wait for the server to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Every variable the binary reads (main.rs `ENVIRONMENT`; its unit test checks the sources).
const EXPECTED_ENVIRONMENT: &[&str] = &[
    "CHATD_LISTEN",
    "CHATD_ACCESS_URL",
    "CHATD_DATABASE_URL",
    "CHATD_SQLITE_SYNCHRONOUS",
    "CHATD_ENCRYPTION_KEY",
    "CHATD_ADMIN_TOKEN",
    "CHATD_LOG",
    "NO_COLOR",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CHATD_MAX_CONNECTIONS",
    "CHATD_HEADER_READ_TIMEOUT",
    "CHATD_IDLE_TIMEOUT",
    "CHATD_REQUEST_BODY_TIMEOUT",
    "CHATD_UPLOAD_BODY_TIMEOUT",
    "CHATD_MAX_WEBSOCKETS_PER_USER",
    "CHATD_WORKSPACES_DIR",
    "CHATD_WORKSPACE_SANDBOX",
    "CHATD_MAX_RUNNING_CHATS",
    "CHATD_MAX_RUNNING_SUBAGENTS",
    "CHATD_DATABASE_SCHEMA",
    "CHATD_ACQUIRE_INTERVAL",
    "CHATD_HEARTBEAT_INTERVAL",
    "CHATD_STALE_AFTER",
    "CHATD_RECOVERY_INTERVAL",
    "CHATD_LIVENESS_INTERVAL",
    "CHATD_DRAIN_TIMEOUT",
    "CHATD_TURN_SUMMARIES",
    "CHATD_TURN_SUMMARY_DELAY",
    "CHATD_CHAT_DEBUG_LOGGING_FORCED",
    "CHATD_AI_GATEWAY_ALLOW_BYOK",
    "CHATD_AI_GATEWAY_ALLOWED_PRIVATE_CIDRS",
    "CHATD_AIBRIDGE_PROVIDER_<N>_{TYPE,NAME,KEY,BASE_URL,REGION,MODEL,SMALL_FAST_MODEL}",
    "CHATD_AI_GATEWAY_RECORD_PROMPTS",
    "CHATD_AI_GATEWAY_MAX_PROMPT_BYTES",
    "CHATD_AI_GATEWAY_RECORD_QUEUE",
    "CHATD_AI_GATEWAY_RETENTION",
    "CHATD_URL",
    "CHATD_TOKEN",
];

/// The variables a test run must not inherit from the developer's shell.
const INHERITED: &[&str] = &[
    "CHATD_LISTEN",
    "CHATD_ACCESS_URL",
    "CHATD_DATABASE_URL",
    "CHATD_SQLITE_SYNCHRONOUS",
    "CHATD_ENCRYPTION_KEY",
    "CHATD_ADMIN_TOKEN",
    "CHATD_LOG",
    "CHATD_MAX_CONNECTIONS",
    "CHATD_HEADER_READ_TIMEOUT",
    "CHATD_IDLE_TIMEOUT",
    "CHATD_REQUEST_BODY_TIMEOUT",
    "CHATD_UPLOAD_BODY_TIMEOUT",
    "CHATD_MAX_WEBSOCKETS_PER_USER",
    "NO_COLOR",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CHATD_WORKSPACES_DIR",
    "CHATD_WORKSPACE_SANDBOX",
    "CHATD_MAX_RUNNING_CHATS",
    "CHATD_MAX_RUNNING_SUBAGENTS",
    "CHATD_DATABASE_SCHEMA",
    "CHATD_ACQUIRE_INTERVAL",
    "CHATD_HEARTBEAT_INTERVAL",
    "CHATD_STALE_AFTER",
    "CHATD_RECOVERY_INTERVAL",
    "CHATD_LIVENESS_INTERVAL",
    "CHATD_DRAIN_TIMEOUT",
    "CHATD_TURN_SUMMARIES",
    "CHATD_TURN_SUMMARY_DELAY",
    "CHATD_CHAT_DEBUG_LOGGING_FORCED",
    "CHATD_AI_GATEWAY_RETENTION",
];

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatd-server"));
    for var in INHERITED {
        command.env_remove(var);
    }
    command
}

#[test]
fn help_lists_every_environment_variable() {
    let out = binary().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Environment:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, EXPECTED_ENVIRONMENT, "{help}");
    // Each has a description.
    for line in help.lines().skip_while(|l| *l != "Environment:").skip(1) {
        if line.trim().is_empty() {
            break;
        }
        assert!(line.split_whitespace().count() > 1, "{line}");
    }
    assert!(help.contains("Logs go to stderr"));
    assert!(!help.as_bytes().contains(&0x1b), "colour codes in --help");
}

/// `--ai-gateway-retention` (`CHATD_AI_GATEWAY_RETENTION`): documented in `--help` with its
/// default; outside 0 or 31–3650 days the server refuses to start and says why, before it
/// creates anything.
#[test]
fn ai_gateway_retention_is_bounded_at_start_up() {
    let out = binary().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--ai-gateway-retention <DAYS>"), "{help}");
    assert!(help.contains("[default: 60]"), "{help}");
    let dir = TempDir::new();
    let db = dir.0.join("chatd.db");
    let url = format!("sqlite://{}", db.display());
    for (how, value) in [("flag", "30"), ("env", "3651"), ("flag", "forever")] {
        let mut command = binary();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CHATD_DATABASE_URL", &url)
            .stdin(Stdio::null());
        if how == "flag" {
            command.args(["--ai-gateway-retention", value]);
        } else {
            command.env("CHATD_AI_GATEWAY_RETENTION", value);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--ai-gateway-retention"), "{stderr}");
        assert!(stderr.contains("31 to 3650"), "{stderr}");
    }
    assert!(!db.exists(), "a refused start created the database");
}

/// A running server process with its output collected line by line.
struct Server {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    /// Every line read so far, both streams.
    seen: Vec<String>,
    base: String,
}

impl Server {
    /// Starts `serve` on a free port with the database in `dir`, and waits until it listens.
    fn start(dir: &std::path::Path, admin_token: Option<&str>) -> Server {
        Server::start_with(binary(), dir, admin_token)
    }

    /// [`Server::start`] with the process made by `command`.
    fn start_with(
        mut command: Command,
        dir: &std::path::Path,
        admin_token: Option<&str>,
    ) -> Server {
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(
                "CHATD_DATABASE_URL",
                format!("sqlite://{}", dir.join("chatd.db").display()),
            )
            .env("CHATD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = admin_token {
            command.env("CHATD_ADMIN_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let mut server = Server {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
            base: String::new(),
        };
        let listening = server.stderr_line(|l| l.contains("chatd-server listening"));
        let addr = listening
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .unwrap_or_else(|| panic!("no address in {listening:?}"));
        server.base = format!("http://{addr}");
        server
    }

    /// The first stderr line matching `pred` (earlier lines are kept in `seen`).
    fn stderr_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(START_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}; output so far: {:#?}", self.seen));
            self.seen.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// Everything printed on stdout so far.
    fn stdout_so_far(&mut self) -> Vec<String> {
        let lines: Vec<String> = self.stdout.try_iter().collect();
        self.seen.extend(lines.iter().cloned());
        lines
    }

    /// Stops the process (it was started by this test) and returns every line it printed.
    fn stop(mut self) -> Vec<String> {
        self.kill();
        let mut seen = std::mem::take(&mut self.seen);
        // The reader threads end at the pipes' EOF, which follows the process's exit.
        seen.extend(self.stdout.iter());
        seen.extend(self.stderr.iter());
        seen
    }

    /// Kills and reaps the process; both pipes are closed afterwards.
    fn kill(&mut self) {
        // Already gone (an earlier call): nothing to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A failing test does not leave a server running.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forwards `pipe` line by line (raw bytes kept, so escape codes survive) until it closes.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line).into_owned();
            if tx.send(text).is_err() {
                return;
            }
            line.clear();
        }
    });
    rx
}

async fn me(base: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/api/v2/users/me"))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .unwrap()
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("chatd-cli-{}", codersdk::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_restart_with_a_new_admin_token_and_logs_without_colour() {
    let dir = TempDir::new();

    // First start: the admin token is printed once, on stdout.
    let mut first = Server::start(&dir.0, None);
    let printed = loop {
        if let Some(line) = first
            .stdout_so_far()
            .into_iter()
            .find(|l| l.starts_with("Admin API token"))
        {
            break line;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let generated = printed.rsplit(' ').next().unwrap().trim().to_owned();
    // With what to do next: the token goes in the environment.
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    while !first
        .seen
        .iter()
        .any(|l| l.starts_with("To chat: export CHATD_TOKEN="))
    {
        assert!(std::time::Instant::now() < deadline, "{:#?}", first.seen);
        first.stdout_so_far();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(generated.starts_with("chatd_"), "{printed}");
    let r = me(&first.base, &generated).await;
    assert_eq!(r.status(), 200);
    let first_output = first.stop();

    // Lost it? Restart with CHATD_ADMIN_TOKEN: the existing admin gets that token.
    let chosen = "chatd_recovered_admin_token_for_the_cli_test";
    let mut second = Server::start(&dir.0, Some(chosen));
    let r = me(&second.base, chosen).await;
    assert_eq!(r.status(), 200);
    let user: codersdk::User = r.json().await.unwrap();
    assert_eq!(user.username, "admin");
    assert!(user.roles.iter().any(|r| r.name == "admin"));
    // The same admin as before (not a new account), and nothing is printed this time.
    let before: codersdk::User = me(&second.base, &generated).await.json().await.unwrap();
    assert_eq!(before.id, user.id);
    assert!(
        !second
            .stdout_so_far()
            .iter()
            .any(|l| l.contains("Admin API token")),
        "a chosen token is never printed"
    );
    let second_output = second.stop();

    // A third start with the same variable is fine (the token is already there).
    let third = Server::start(&dir.0, Some(chosen));
    assert_eq!(me(&third.base, chosen).await.status(), 200);
    let third_output = third.stop();

    // Logs went to a pipe: not one escape byte, on either stream.
    for line in first_output
        .iter()
        .chain(&second_output)
        .chain(&third_output)
    {
        assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
    }
    // The chosen token is never logged.
    assert!(!second_output.iter().any(|l| l.contains(chosen)));
    assert!(first_output.iter().any(|l| l.contains("INFO")));
}

/// The database, its `-wal` and `-shm` files and the generated key file are created
/// owner-only (0600) even under a umask of 000, which would otherwise leave them readable
/// and writable by everyone.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_at_rest_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    // The shell sets the umask, then becomes the server (same pid, so it is killed).
    // It also creates a probe file, to show the umask really is 000 for the server.
    let probe = dir.0.join("umask-probe");
    let mut command = Command::new("/bin/sh");
    command.args([
        "-c",
        "umask 000 && : > \"$PROBE\" && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_chatd-server"),
    ]);
    command.env("PROBE", &probe);
    for var in INHERITED {
        command.env_remove(var);
    }
    let server = Server::start_with(command, &dir.0, Some("chatd_umask_test_admin_token"));
    // A write, so the WAL exists.
    assert_eq!(
        me(&server.base, "chatd_umask_test_admin_token")
            .await
            .status(),
        200
    );
    for name in ["chatd.db", "chatd.db-wal", "chatd.db-shm", "chatd.db.key"] {
        let path = dir.0.join(name);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, chatd_core::PRIVATE_FILE_MODE, "{name}: {mode:o}");
    }
    let probe_mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    assert_eq!(probe_mode, 0o666, "the umask was 000");
    server.stop();
}

/// The AI Gateway's start-up checks: an instance name configured twice, or a bad
/// allow-list, stops `serve` with the variable named; a good configuration serves the
/// named instance.
#[tokio::test]
async fn ai_gateway_settings_are_checked_at_start_up() {
    let dir = TempDir::new();
    let db = format!("sqlite://{}", dir.0.join("chatd.db").display());
    let run = |env: &[(&str, &str)]| {
        let mut command = binary();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CHATD_DATABASE_URL", &db)
            .stdin(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let twice = run(&[
        ("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CHATD_AIBRIDGE_PROVIDER_0_NAME", "corp"),
        ("CHATD_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CHATD_AIBRIDGE_PROVIDER_1_NAME", "corp"),
    ]);
    assert!(!twice.status.success());
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert!(stderr.contains("configured twice"), "{stderr}");
    let bad_cidr = run(&[("CHATD_AI_GATEWAY_ALLOWED_PRIVATE_CIDRS", "10.0.0.0/33")]);
    assert!(!bad_cidr.status.success());
    let stderr = String::from_utf8_lossy(&bad_cidr.stderr);
    assert!(stderr.contains("CIDR"), "{stderr}");

    let mut command = binary();
    command
        .env("CHATD_AIBRIDGE_PROVIDER_0_TYPE", "anthropic")
        .env("CHATD_AIBRIDGE_PROVIDER_0_NAME", "anthropic-corp")
        .env(
            "CHATD_AIBRIDGE_PROVIDER_0_KEY",
            "sk-ant-corp-0123456789abcdef",
        )
        .env("CHATD_AI_GATEWAY_ALLOW_BYOK", "false");
    let server = Server::start_with(command, &dir.0, Some("chatd_cli_admin_token"));
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v2/aibridge/providers", server.base))
        .header("Coder-Session-Token", "chatd_cli_admin_token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"anthropic-corp"), "{list}");
    assert!(!list.to_string().contains("sk-ant-corp"), "{list}");
    server.stop();
}
