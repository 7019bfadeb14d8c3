//! The task dir hook: `<task>/local`, `<task>/secrets` and `<task>/tmp`.

use super::alloc_dir::make_dir;
use super::{HookError, HookState, Named, PrestartResponse, TaskContext, TaskHook};

/// Creates the task dir (0777), `local` (0777), `secrets` (0700) and `tmp` (0777). Done once:
/// restarts and a restarted agent do not run it again.
#[derive(Debug, Default)]
pub(crate) struct TaskDirHook;

impl Named for TaskDirHook {
    fn name(&self) -> &str {
        "task_dir"
    }
}

#[async_trait::async_trait]
impl TaskHook for TaskDirHook {
    async fn prestart(
        &self,
        ctx: &TaskContext,
        _previous: Option<&HookState>,
    ) -> Result<PrestartResponse, HookError> {
        let dirs = ctx.dirs.clone();
        tokio::task::spawn_blocking(move || {
            make_dir(&dirs.task_dir, 0o777)?;
            make_dir(&dirs.local_dir, 0o777)?;
            make_dir(&dirs.secrets_dir, 0o700)?;
            make_dir(&dirs.tmp_dir, 0o777)
        })
        .await
        .map_err(|e| HookError::recoverable(e.to_string()))??;
        Ok(PrestartResponse {
            done: true,
            ..PrestartResponse::default()
        })
    }
}
