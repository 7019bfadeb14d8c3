//! Keeping template and artifact paths inside the task dir.
//!
//! A destination is refused when, joined to the task dir, it leaves it lexically
//! (`../../etc/x`, an absolute path elsewhere, an interpolated value that does either), or when
//! an existing component of it is a symlink that resolves outside the task dir (Nomad's
//! CVE-2020-27195 and CVE-2024-1329 class).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Resolves `relative` under `root` and checks it stays there. Absolute paths are taken as
/// relative to `root`, as Nomad does for template destinations.
pub(crate) fn confined_path(root: &Path, relative: &str, what: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(format!("{what} {relative:?} escapes the task directory"));
                }
            }
            Component::Normal(part) => out.push(part),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!(
            "{what} {relative:?} names the task directory itself"
        ));
    }
    let full = root.join(&out);
    check_symlinks(root, &out, relative, what)?;
    Ok(full)
}

/// Checks that no existing component of `root/relative` resolves outside `root`.
fn check_symlinks(root: &Path, relative: &Path, original: &str, what: &str) -> Result<(), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("task directory {}: {e}", root.display()))?;
    let mut current = root.clone();
    for part in relative.components() {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(_) => {
                let resolved = current.canonicalize().map_err(|e| {
                    format!(
                        "{what} {original:?}: cannot resolve {}: {e}",
                        current.display()
                    )
                })?;
                if !resolved.starts_with(&root) {
                    return Err(format!(
                        "{what} {original:?} escapes the task directory through {}",
                        current.display()
                    ));
                }
                current = resolved;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{what} {original:?}: {e}")),
        }
    }
    Ok(())
}

/// Creates the parents of `path` and writes `content` with `mode`, refusing to follow a
/// symlink at `path` itself.
pub(crate) fn write_confined(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("nomad-tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(content)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    drop(file);
    // rename replaces a symlink at `path` rather than writing through it.
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(confined_path(dir.path(), "../../etc/x", "destination").is_err());
        assert!(confined_path(dir.path(), "local/../../x", "destination").is_err());
        let ok = confined_path(dir.path(), "local/../secrets/x", "destination").unwrap();
        assert_eq!(ok, dir.path().join("secrets/x"));
        let abs = confined_path(dir.path(), "/local/x.conf", "destination").unwrap();
        assert_eq!(abs, dir.path().join("local/x.conf"));
    }

    #[test]
    fn symlinks_out_of_the_task_dir_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("local")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("local/out")).unwrap();
        let err = confined_path(dir.path(), "local/out/x", "destination").unwrap_err();
        assert!(err.contains("escapes"), "{err}");
        std::os::unix::fs::symlink(dir.path().join("local"), dir.path().join("in")).unwrap();
        assert!(confined_path(dir.path(), "in/x", "destination").is_ok());
    }
}
