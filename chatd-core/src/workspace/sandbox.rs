//! Running workspace commands inside bubblewrap (`bwrap`): a new mount, PID, IPC and UTS
//! namespace in which only the workspace directory is writable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where [`find_bwrap`] looks for bubblewrap before searching `PATH`.
pub const BWRAP_CANDIDATES: &[&str] = &["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"];

/// How workspace commands are isolated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sandbox {
    /// Commands run as the server's user, in the workspace directory, with a scrubbed
    /// environment; nothing else stops them (docs/workspaces.md says what that means).
    #[default]
    None,
    /// Commands run inside bubblewrap: the system directories read-only, the workspace
    /// the only writable place, a private `/tmp`, their own PID namespace (everything
    /// dies with the command), no capabilities; the network is shared.
    Bubblewrap {
        /// The `bwrap` executable.
        program: PathBuf,
    },
}

/// The bubblewrap executable: the first of [`BWRAP_CANDIDATES`] that is a file, else the
/// first `bwrap` on `PATH`; `None` when it is not installed.
pub fn find_bwrap() -> Option<PathBuf> {
    BWRAP_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|dir| dir.join("bwrap"))
                .find(|p| p.is_file())
        })
}

/// The system directories bound read-only into the sandbox, when they exist. Directories
/// that are symbolic links (merged `/usr`: `/bin` → `usr/bin`) become the same links.
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"];

/// The arguments that make bubblewrap run `shell -c command` in `workspace`.
pub(crate) fn bwrap_args(workspace: &Path, shell: &Path, command: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        // Everything in the sandbox dies with the `bwrap` process the server supervises.
        "--die-with-parent",
        // No controlling terminal: a sandboxed process cannot inject input into the
        // server's terminal (TIOCSTI).
        "--new-session",
        "--unshare-all",
        // Builds fetch dependencies: the network stays reachable (docs/workspaces.md).
        "--share-net",
        // As root, bubblewrap would keep every capability; nobody inside needs one.
        "--cap-drop",
        "ALL",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    args.push("--symlink".into());
                    args.push(target.into_os_string());
                    args.push(path.as_os_str().to_owned());
                }
            }
            Ok(meta) if meta.is_dir() => {
                args.push("--ro-bind".into());
                args.push(path.as_os_str().to_owned());
                args.push(path.as_os_str().to_owned());
            }
            _ => {}
        }
    }
    for (flag, target) in [("--proc", "/proc"), ("--dev", "/dev"), ("--tmpfs", "/tmp")] {
        args.push(flag.into());
        args.push(target.into());
    }
    // The workspace at its own path, so the paths the file tools show work in commands.
    args.push("--bind".into());
    args.push(workspace.as_os_str().to_owned());
    args.push(workspace.as_os_str().to_owned());
    args.push("--chdir".into());
    args.push(workspace.as_os_str().to_owned());
    args.push("--".into());
    args.push(shell.as_os_str().to_owned());
    args.push("-c".into());
    args.push(command.into());
    args
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_workspace_is_the_only_writable_bind_and_the_command_comes_last() {
        let args = bwrap_args(Path::new("/w/abc"), Path::new("/bin/bash"), "echo hi");
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let binds: Vec<&[String]> = text.windows(3).filter(|w| w[0] == "--bind").collect();
        assert_eq!(binds.len(), 1);
        assert_eq!(binds[0][1], "/w/abc");
        assert!(text.iter().any(|a| a == "--die-with-parent"));
        assert!(text.iter().any(|a| a == "--new-session"));
        assert_eq!(
            &text[text.len() - 4..],
            &["--", "/bin/bash", "-c", "echo hi"]
        );
        // Every other bind is read-only.
        assert!(!text.iter().any(|a| a == "--bind-try" || a == "--dev-bind"));
    }
}
