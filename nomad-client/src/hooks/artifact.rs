//! The artifact hook: `artifact` blocks fetched into the task dir.

use super::confine::confined_path;
use super::{HookError, HookState, Named, PrestartResponse, TaskContext, TaskHook};

/// Copies each artifact into its destination under the task dir (confined like template
/// destinations). Only local sources (`file://` URLs and absolute paths) are fetched;
/// remote getters (http, s3, git, ...) are refused as not supported yet. Done once.
#[derive(Debug, Default)]
pub(crate) struct ArtifactHook;

impl Named for ArtifactHook {
    fn name(&self) -> &str {
        "artifacts"
    }
}

#[async_trait::async_trait]
impl TaskHook for ArtifactHook {
    async fn prestart(
        &self,
        ctx: &TaskContext,
        _previous: Option<&HookState>,
    ) -> Result<PrestartResponse, HookError> {
        for artifact in &ctx.task.artifacts {
            let dest_dir = if artifact.relative_dest.is_empty() {
                "local/"
            } else {
                artifact.relative_dest.as_str()
            };
            let dest = confined_path(&ctx.dirs.task_dir, dest_dir, "artifact destination")
                .map_err(HookError::fatal)?;
            let source = artifact.getter_source.as_str();
            let path = match source.strip_prefix("file://") {
                Some(p) => p,
                None if source.starts_with('/') => source,
                None => {
                    return Err(HookError::fatal(format!(
                        "artifact {source:?}: only local file sources are supported by this client"
                    )))
                }
            };
            let from = std::path::PathBuf::from(path);
            let file_name = from
                .file_name()
                .map(|n| n.to_owned())
                .ok_or_else(|| HookError::fatal(format!("artifact {source:?} names no file")))?;
            let to = if artifact.getter_mode == "file" {
                dest
            } else {
                tokio::fs::create_dir_all(&dest).await.map_err(|e| {
                    HookError::recoverable(format!("artifact destination {dest_dir:?}: {e}"))
                })?;
                dest.join(file_name)
            };
            if let Some(parent) = to.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    HookError::recoverable(format!("artifact destination {dest_dir:?}: {e}"))
                })?;
            }
            tokio::fs::copy(&from, &to)
                .await
                .map_err(|e| HookError::recoverable(format!("artifact {source:?}: {e}")))?;
        }
        Ok(PrestartResponse {
            done: true,
            ..PrestartResponse::default()
        })
    }
}
