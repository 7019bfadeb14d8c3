//! The alloc dir hook: Nomad's directory layout for the allocation.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{AllocContext, AllocHook, HookError, Named, PrerunResponse};

/// Creates `alloc/`, `alloc/logs`, `alloc/data` and `alloc/tmp` (mode 0777, shared by the
/// group's tasks) under the allocation's directory (0755) at prerun; removes it all at
/// destroy.
#[derive(Debug, Default)]
pub(crate) struct AllocDirHook;

pub(crate) fn make_dir(path: &Path, mode: u32) -> Result<(), HookError> {
    std::fs::create_dir_all(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| HookError::recoverable(format!("creating {}: {e}", path.display())))
}

impl Named for AllocDirHook {
    fn name(&self) -> &str {
        "alloc_dir"
    }
}

#[async_trait::async_trait]
impl AllocHook for AllocDirHook {
    async fn prerun(&self, ctx: &AllocContext) -> Result<PrerunResponse, HookError> {
        let root = ctx.alloc_dir.clone();
        tokio::task::spawn_blocking(move || {
            make_dir(&root, 0o755)?;
            let shared = root.join("alloc");
            make_dir(&shared, 0o777)?;
            for sub in ["logs", "data", "tmp"] {
                make_dir(&shared.join(sub), 0o777)?;
            }
            Ok::<_, HookError>(())
        })
        .await
        .map_err(|e| HookError::recoverable(e.to_string()))??;
        Ok(PrerunResponse::default())
    }

    async fn destroy(&self, ctx: &AllocContext) -> Result<(), HookError> {
        let root = ctx.alloc_dir.clone();
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HookError::recoverable(format!(
                "removing {}: {e}",
                root.display()
            ))),
        })
        .await
        .map_err(|e| HookError::recoverable(e.to_string()))?
    }
}
