//! What runs on this machine, from `/proc`: how tests see that a killed process (and
//! everything it started) is really gone.

/// The command lines (NUL separators as spaces) of the live processes; zombies, which have
/// exited already, are left out. Empty where `/proc` does not exist.
pub fn live_command_lines() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Whether a live process's command line contains `marker`.
pub fn process_alive_with(marker: &str) -> bool {
    live_command_lines().iter().any(|c| c.contains(marker))
}
