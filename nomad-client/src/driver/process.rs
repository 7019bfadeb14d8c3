//! Host processes: `/proc` reading, signal names and process-group signalling, shared by the
//! drivers that run host processes.

use std::io;
use std::path::Path;
use std::str::FromStr;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use nomad_core::driver::{CpuUsage, DriverError, MemoryUsage};

/// Parses a signal name as Nomad writes it (`SIGTERM`, or `TERM`) or a signal number.
pub(crate) fn parse_signal(name: &str) -> Result<Signal, DriverError> {
    let invalid = || DriverError::InvalidSignal {
        signal: name.to_owned(),
    };
    let trimmed = name.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| invalid());
    }
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| invalid())
}

/// The fields of `/proc/<pid>/stat` the drivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The process state letter (`R`, `S`, `Z`, ...).
    pub(crate) state: char,
    /// The process group.
    pub(crate) pgrp: i32,
    /// User-mode CPU time in clock ticks.
    pub(crate) utime: u64,
    /// Kernel-mode CPU time in clock ticks.
    pub(crate) stime: u64,
    /// Start time in clock ticks after boot: with the pid, it identifies a process.
    pub(crate) start_ticks: u64,
    /// Resident set size in pages.
    pub(crate) rss_pages: u64,
}

/// Parses the text of `/proc/<pid>/stat`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 of proc(5).
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Whether the process `pid` that started at `start_ticks` still runs (a zombie does not).
pub(crate) fn is_alive(pid: i32, start_ticks: u64) -> bool {
    read_stat(pid).is_some_and(|stat| stat.start_ticks == start_ticks && stat.state != 'Z')
}

/// Sends `signal` to every process of group `pgid`; a group that no longer exists is fine.
pub(crate) fn signal_group(pgid: i32, signal: Signal) -> Result<(), DriverError> {
    match signal::killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(err) => Err(DriverError::other(
            format!("sending {signal} to process group {pgid}"),
            io::Error::from(err),
        )),
    }
}

/// Sends `signal` to process `pid`; a process that no longer exists is fine.
pub(crate) fn signal_process(pid: i32, signal: Signal) -> Result<(), DriverError> {
    match signal::kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(err) => Err(DriverError::other(
            format!("sending {signal} to process {pid}"),
            io::Error::from(err),
        )),
    }
}

/// The summed usage of every live process in group `pgid`, with how many there are.
pub(crate) fn group_usage(pgid: i32) -> io::Result<(CpuUsage, MemoryUsage, u64)> {
    let ticks_per_second = clock_ticks_per_second();
    let page_size = page_size();
    let mut ticks_user = 0u64;
    let mut ticks_system = 0u64;
    let mut rss_pages = 0u64;
    let mut count = 0u64;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Some(stat) = read_stat(pid) else { continue };
        if stat.pgrp != pgid || stat.state == 'Z' {
            continue;
        }
        ticks_user += stat.utime;
        ticks_system += stat.stime;
        rss_pages += stat.rss_pages;
        count += 1;
    }
    let to_ns = |ticks: u64| ticks.saturating_mul(1_000_000_000) / ticks_per_second;
    let rss = rss_pages.saturating_mul(page_size);
    Ok((
        CpuUsage {
            user_ns: to_ns(ticks_user),
            system_ns: to_ns(ticks_system),
            percent: None,
        },
        MemoryUsage {
            rss_bytes: rss,
            usage_bytes: rss,
            ..MemoryUsage::default()
        },
        count,
    ))
}

fn clock_ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(size)) if size > 0 => size as u64,
        _ => 4096,
    }
}

/// Finds the program `command` the way a raw task runs it: a path with a slash is taken
/// relative to `task_dir`; a bare name is looked up in `path_var` (the task's `PATH`).
pub(crate) fn resolve_command(
    command: &str,
    task_dir: &Path,
    path_var: &str,
) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if command.is_empty() {
        return Err("command is empty".into());
    }
    if command.contains('/') {
        let path = task_dir.join(command);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!("command {command:?} is not an executable file"))
        };
    }
    path_var
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(command))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| format!("command {command:?} not found in PATH {path_var:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let text = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
                    98765 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 1234);
        assert_eq!(stat.utime, 7);
        assert_eq!(stat.stime, 3);
        assert_eq!(stat.start_ticks, 98765);
        assert_eq!(stat.rss_pages, 250);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id() as i32;
        let stat = read_stat(me).unwrap();
        assert!(is_alive(me, stat.start_ticks));
        assert!(!is_alive(me, stat.start_ticks + 1));
    }

    #[test]
    fn parses_signal_names_and_numbers() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("int").unwrap(), Signal::SIGINT);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(matches!(
            parse_signal("SIGNOPE"),
            Err(DriverError::InvalidSignal { signal }) if signal == "SIGNOPE"
        ));
    }

    #[test]
    fn resolves_commands_in_path_and_task_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_command("sh", dir.path(), "/nonexistent:/bin").unwrap(),
            Path::new("/bin/sh")
        );
        assert!(resolve_command("sh", dir.path(), "/nonexistent").is_err());
        assert_eq!(
            resolve_command("/bin/sh", dir.path(), "").unwrap(),
            Path::new("/bin/sh")
        );
        assert!(resolve_command("./missing", dir.path(), "/bin").is_err());
    }
}
