//! The exec driver's view of a task's cgroup: usage, OOM kills and removal, on cgroup v1
//! (including hybrid hosts, where v1 controllers sit beside `/sys/fs/cgroup/unified`) and v2.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nomad_core::driver::{CpuUsage, MemoryUsage};

/// How the host's cgroup filesystem is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CgroupLayout {
    /// One hierarchy per controller under `root` (`root/memory`, `root/cpuacct`, ...).
    V1 {
        /// Where the hierarchies are mounted, usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// The unified hierarchy mounted at `root`.
    V2 {
        /// Where it is mounted, usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
}

impl CgroupLayout {
    /// Detects the layout under `root`; `None` when no usable cgroup filesystem is there.
    pub(crate) fn detect(root: &Path) -> Option<Self> {
        if root.join("cgroup.controllers").is_file() {
            Some(Self::V2 {
                root: root.to_path_buf(),
            })
        } else if root.join("memory").join("memory.limit_in_bytes").is_file() {
            Some(Self::V1 {
                root: root.to_path_buf(),
            })
        } else {
            None
        }
    }

    /// `v1` or `v2`, for the node attributes.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Self::V1 { .. } => "v1",
            Self::V2 { .. } => "v2",
        }
    }

    fn controller(&self, controller: &str, relative: &str) -> PathBuf {
        match self {
            Self::V1 { root } => root.join(controller).join(relative),
            Self::V2 { root } => root.join(relative),
        }
    }

    /// Every directory the cgroup `relative` has on the host: one per v1 hierarchy (the
    /// unified one of a hybrid host included), or the single v2 directory.
    pub(crate) fn directories(&self, relative: &str) -> Vec<PathBuf> {
        match self {
            Self::V2 { root } => vec![root.join(relative)],
            Self::V1 { root } => {
                let Ok(entries) = std::fs::read_dir(root) else {
                    return Vec::new();
                };
                let mut dirs: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    // Controllers mounted together (`cpu,cpuacct`) appear once as a directory
                    // and again as symlinks to it; the directory is enough.
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                    .map(|entry| entry.path().join(relative))
                    .collect();
                dirs.sort();
                dirs
            }
        }
    }

    /// Whether any directory of the cgroup `relative` is left on the host.
    #[cfg(test)]
    pub(crate) fn exists(&self, relative: &str) -> bool {
        self.directories(relative).iter().any(|dir| dir.exists())
    }

    /// Whether the kernel killed a process of the cgroup for exceeding its memory limit.
    pub(crate) fn oom_killed(&self, relative: &str) -> bool {
        match self {
            Self::V2 { .. } => read(&self.controller("", relative).join("memory.events"))
                .and_then(|text| keyed(&text, "oom_kill"))
                .is_some_and(|kills| kills > 0),
            Self::V1 { .. } => {
                let memory = self.controller("memory", relative);
                // `oom_kill` is in memory.oom_control since Linux 4.13; before, a hit of the
                // limit (failcnt) is the best sign there is.
                match read(&memory.join("memory.oom_control")).and_then(|t| keyed(&t, "oom_kill")) {
                    Some(kills) => kills > 0,
                    None => read(&memory.join("memory.failcnt"))
                        .and_then(|text| text.trim().parse::<u64>().ok())
                        .is_some_and(|hits| hits > 0),
                }
            }
        }
    }

    /// The processes in the cgroup.
    pub(crate) fn processes(&self, relative: &str) -> Vec<i32> {
        read(&self.controller("memory", relative).join("cgroup.procs"))
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// CPU and memory used by the cgroup, with how many processes it has.
    pub(crate) fn usage(&self, relative: &str) -> io::Result<(CpuUsage, MemoryUsage, u64)> {
        let memory_dir = self.controller("memory", relative);
        let stat = read(&memory_dir.join("memory.stat")).unwrap_or_default();
        let (cpu, memory) = match self {
            Self::V2 { .. } => {
                let cpu_stat = read(&memory_dir.join("cpu.stat")).unwrap_or_default();
                let usec = |key| keyed(&cpu_stat, key).unwrap_or(0).saturating_mul(1000);
                let memory = MemoryUsage {
                    rss_bytes: keyed(&stat, "anon").unwrap_or(0),
                    cache_bytes: keyed(&stat, "file").unwrap_or(0),
                    swap_bytes: read_number(&memory_dir.join("memory.swap.current")).unwrap_or(0),
                    usage_bytes: read_number(&memory_dir.join("memory.current"))?,
                };
                (
                    CpuUsage {
                        user_ns: usec("user_usec"),
                        system_ns: usec("system_usec"),
                        percent: None,
                    },
                    memory,
                )
            }
            Self::V1 { .. } => {
                let cpuacct = self.controller("cpuacct", relative);
                let memory = MemoryUsage {
                    rss_bytes: keyed(&stat, "rss").unwrap_or(0),
                    cache_bytes: keyed(&stat, "cache").unwrap_or(0),
                    swap_bytes: keyed(&stat, "swap").unwrap_or(0),
                    usage_bytes: read_number(&memory_dir.join("memory.usage_in_bytes"))?,
                };
                (
                    CpuUsage {
                        user_ns: read_number(&cpuacct.join("cpuacct.usage_user")).unwrap_or(0),
                        system_ns: read_number(&cpuacct.join("cpuacct.usage_sys")).unwrap_or(0),
                        percent: None,
                    },
                    memory,
                )
            }
        };
        let pids = self.processes(relative).len() as u64;
        Ok((cpu, memory, pids))
    }

    /// Removes every directory of the cgroup `relative`, children first; a directory that
    /// is already gone is fine. Processes that just died may keep a cgroup busy for a
    /// moment, so removal is retried briefly.
    pub(crate) fn remove(&self, relative: &str) -> io::Result<()> {
        let mut last_error = None;
        for dir in self.directories(relative) {
            if let Err(err) = remove_tree(&dir) {
                last_error = Some(err);
            }
        }
        match last_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// Removes a cgroup directory and its child cgroups (cgroup directories are removed with
/// `rmdir`, never by deleting their files).
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) if attempts < 50 => {
                attempts += 1;
                tracing::debug!(cgroup = %dir.display(), error = %err, "cgroup busy, retrying");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(err),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_number(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {text:?}, not a number", path.display()),
        )
    })
}

/// The value of `key` in a flat keyed file (`key value` lines: memory.stat, cpu.stat,
/// memory.events, memory.oom_control).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_keyed_files() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(text, "oom_kill"), Some(2));
        assert_eq!(keyed(text, "under_oom"), Some(0));
        assert_eq!(keyed(text, "missing"), None);
        assert_eq!(keyed("rss notanumber\n", "rss"), None);
    }

    #[test]
    fn detects_layouts_and_reads_a_fake_v2_cgroup() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(CgroupLayout::detect(root.path()), None);
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        let layout = CgroupLayout::detect(root.path()).unwrap();
        assert_eq!(layout.version(), "v2");
        let task = root.path().join("nomad/t1");
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        std::fs::write(task.join("memory.current"), "4096\n").unwrap();
        std::fs::write(task.join("memory.stat"), "anon 1024\nfile 2048\n").unwrap();
        std::fs::write(
            task.join("cpu.stat"),
            "usage_usec 5\nuser_usec 3\nsystem_usec 2\n",
        )
        .unwrap();
        std::fs::write(task.join("cgroup.procs"), "12\n13\n").unwrap();
        assert!(layout.oom_killed("nomad/t1"));
        let (cpu, memory, pids) = layout.usage("nomad/t1").unwrap();
        assert_eq!((cpu.user_ns, cpu.system_ns), (3000, 2000));
        assert_eq!((memory.rss_bytes, memory.cache_bytes), (1024, 2048));
        assert_eq!(memory.usage_bytes, 4096);
        assert_eq!(pids, 2);
        assert!(layout.exists("nomad/t1"));
        assert!(!layout.exists("nomad/t2"));
    }

    #[test]
    fn a_v1_cgroup_without_oom_kill_counter_falls_back_to_failcnt() {
        let root = tempfile::tempdir().unwrap();
        let memory = root.path().join("memory");
        std::fs::create_dir_all(memory.join("nomad/t1")).unwrap();
        std::fs::write(
            memory.join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        let layout = CgroupLayout::detect(root.path()).unwrap();
        assert_eq!(layout.version(), "v1");
        let task = memory.join("nomad/t1");
        std::fs::write(task.join("memory.oom_control"), "oom_kill_disable 0\n").unwrap();
        std::fs::write(task.join("memory.failcnt"), "0\n").unwrap();
        assert!(!layout.oom_killed("nomad/t1"));
        std::fs::write(task.join("memory.failcnt"), "3\n").unwrap();
        assert!(layout.oom_killed("nomad/t1"));
        std::fs::write(
            task.join("memory.oom_control"),
            "oom_kill_disable 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!layout.oom_killed("nomad/t1"));
        assert_eq!(
            layout.directories("nomad/t1"),
            vec![memory.join("nomad/t1")]
        );
    }
}
