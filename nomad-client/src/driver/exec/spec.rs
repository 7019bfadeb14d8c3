//! The OCI runtime specification of an exec task: its root, mounts, namespaces, process and
//! resource limits. Pure: everything it needs from the host is passed in.

use std::path::{Path, PathBuf};

use nomad_core::driver::TaskConfig;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Mount,
    MountBuilder, RootBuilder, Spec, UserBuilder,
};

/// The host directories mounted read-only into every task: Nomad's default `chroot_env`.
pub(crate) const CHROOT_ENV: [&str; 8] = [
    "/bin",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/run/resolvconf",
    "/sbin",
    "/usr",
];

/// The smallest CPU share the kernel accepts.
const MIN_CPU_SHARES: u64 = 2;

/// What the host contributes to a task's specification.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostInputs {
    /// The [`CHROOT_ENV`] directories that exist on the host.
    pub(crate) chroot_dirs: Vec<PathBuf>,
    /// The user and group the task runs as.
    pub(crate) uid: u32,
    /// The task's group.
    pub(crate) gid: u32,
    /// The task's cgroup, relative to the cgroup root (`nomad/<container id>`).
    pub(crate) cgroup: String,
    /// The memory nodes a task with reserved cores may use (`cpuset.mems`).
    pub(crate) memory_nodes: String,
}

/// The directories a task root needs as mount points, relative to the task dir.
pub(crate) fn mount_points(host: &HostInputs) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = host
        .chroot_dirs
        .iter()
        .map(|dir| dir.strip_prefix("/").unwrap_or(dir).to_path_buf())
        .collect();
    points.extend(["alloc", "dev", "proc", "sys"].map(PathBuf::from));
    points
}

/// Builds the specification of the task `config` running `command` with `args`.
///
/// The task root is the task dir itself (so `/local`, `/secrets` and `/tmp` are the task's
/// own directories), with the shared alloc dir at `/alloc` and the chroot directories bound
/// read-only; PID, IPC and mount namespaces are private, the network is the host's.
pub(crate) fn task_spec(
    config: &TaskConfig,
    command: &str,
    args: &[String],
    host: &HostInputs,
) -> Result<Spec, String> {
    let fail = |what: &str, err: oci_spec::OciSpecError| format!("{what}: {err}");
    let mut spec = Spec::default();
    spec.set_hostname(None);
    spec.set_root(Some(
        RootBuilder::default()
            .path(config.dirs.task_dir.clone())
            .readonly(false)
            .build()
            .map_err(|err| fail("task root", err))?,
    ));

    let mut process = spec.process().clone().unwrap_or_default();
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(command.to_owned());
    argv.extend(args.iter().cloned());
    process.set_args(Some(argv));
    process.set_env(Some(
        config
            .env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect(),
    ));
    process.set_cwd(PathBuf::from("/"));
    process.set_terminal(Some(false));
    process.set_user(
        UserBuilder::default()
            .uid(host.uid)
            .gid(host.gid)
            .build()
            .map_err(|err| fail("task user", err))?,
    );
    spec.set_process(Some(process));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for dir in &host.chroot_dirs {
        mounts.push(bind(dir, dir, true).map_err(|err| fail("chroot mount", err))?);
    }
    mounts.push(
        bind(&config.dirs.shared_dir, Path::new("/alloc"), false)
            .map_err(|err| fail("alloc mount", err))?,
    );
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|kind| LinuxNamespaceBuilder::default().typ(kind).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(|err| fail("namespaces", err))?;
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(PathBuf::from(format!("/{}", host.cgroup))));

    let mut resources = linux.resources().clone().unwrap_or_default();
    let task = &config.resources;
    let hard_mb = if task.memory_max_mb > 0 {
        task.memory_max_mb
    } else {
        task.memory_mb
    };
    let mut memory = LinuxMemoryBuilder::default();
    if hard_mb > 0 {
        memory = memory.limit(megabytes(hard_mb));
    }
    if task.memory_mb > 0 && task.memory_mb < hard_mb {
        memory = memory.reservation(megabytes(task.memory_mb));
    }
    resources.set_memory(Some(memory.build().map_err(|err| fail("memory", err))?));
    let mut cpu = LinuxCpuBuilder::default();
    if task.cpu_shares > 0 {
        cpu = cpu.shares(task.cpu_shares.max(MIN_CPU_SHARES));
    }
    if !task.reserved_cores.is_empty() {
        let cores: Vec<String> = task.reserved_cores.iter().map(u16::to_string).collect();
        cpu = cpu.cpus(cores.join(",")).mems(host.memory_nodes.clone());
    }
    resources.set_cpu(Some(cpu.build().map_err(|err| fail("cpu", err))?));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn megabytes(mb: u64) -> i64 {
    i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)
}

fn bind(
    source: &Path,
    destination: &Path,
    read_only: bool,
) -> Result<Mount, oci_spec::OciSpecError> {
    let mode = if read_only { "ro" } else { "rw" };
    MountBuilder::default()
        .destination(destination.to_path_buf())
        .typ("bind")
        .source(source.to_path_buf())
        .options(vec!["rbind".to_owned(), mode.to_owned()])
        .build()
}

#[cfg(test)]
mod tests {
    use nomad_core::driver::{TaskDirs, TaskResources};

    use super::*;

    fn config() -> TaskConfig {
        TaskConfig {
            id: "a1/web/0".into(),
            task_name: "web".into(),
            dirs: TaskDirs::new("/var/nomad/alloc/a1", "web"),
            env: [("PATH".to_owned(), "/bin".to_owned())].into(),
            resources: TaskResources {
                cpu_shares: 500,
                memory_mb: 128,
                memory_max_mb: 256,
                reserved_cores: vec![0, 1],
            },
            ..TaskConfig::default()
        }
    }

    #[test]
    fn builds_the_task_root_namespaces_and_limits() {
        let host = HostInputs {
            chroot_dirs: vec![PathBuf::from("/bin"), PathBuf::from("/usr")],
            uid: 65534,
            gid: 65534,
            cgroup: "nomad/a1-web-0".into(),
            memory_nodes: "0".into(),
        };
        let spec = task_spec(&config(), "/bin/sh", &["-c".into(), "true".into()], &host).unwrap();
        let root = spec.root().clone().unwrap();
        assert_eq!(root.path(), Path::new("/var/nomad/alloc/a1/web"));
        let process = spec.process().clone().unwrap();
        assert_eq!(
            process.args().clone().unwrap(),
            ["/bin/sh", "-c", "true"].map(String::from)
        );
        assert_eq!(process.env().clone().unwrap(), ["PATH=/bin".to_owned()]);
        assert_eq!(process.user().uid(), 65534);
        let mounts = spec.mounts().clone().unwrap();
        let alloc = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/alloc"))
            .unwrap();
        assert_eq!(
            alloc.source().clone().unwrap(),
            Path::new("/var/nomad/alloc/a1/alloc")
        );
        let usr = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/usr"))
            .unwrap();
        assert!(usr.options().clone().unwrap().contains(&"ro".to_owned()));

        let linux = spec.linux().clone().unwrap();
        let kinds: Vec<LinuxNamespaceType> = linux
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|ns| ns.typ())
            .collect();
        assert_eq!(
            kinds,
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Mount
            ]
        );
        assert_eq!(
            linux.cgroups_path().clone().unwrap(),
            Path::new("/nomad/a1-web-0")
        );
        let resources = linux.resources().clone().unwrap();
        let memory = resources.memory().unwrap();
        assert_eq!(memory.limit(), Some(256 * 1024 * 1024));
        assert_eq!(memory.reservation(), Some(128 * 1024 * 1024));
        let cpu = resources.cpu().clone().unwrap();
        assert_eq!(cpu.shares(), Some(500));
        assert_eq!(cpu.cpus().clone().unwrap(), "0,1");
        assert!(mount_points(&host).contains(&PathBuf::from("usr")));
    }

    #[test]
    fn memory_alone_is_the_hard_limit() {
        let mut config = config();
        config.resources.memory_max_mb = 0;
        config.resources.reserved_cores.clear();
        let spec = task_spec(&config, "true", &[], &HostInputs::default()).unwrap();
        let resources = spec.linux().clone().unwrap().resources().clone().unwrap();
        let memory = resources.memory().unwrap();
        assert_eq!(memory.limit(), Some(128 * 1024 * 1024));
        assert_eq!(memory.reservation(), None);
        assert_eq!(resources.cpu().clone().unwrap().cpus().clone(), None);
    }
}
