//! The template hook: Go templates rendered into the task dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use gotmpl::{Template as GoTemplate, Value};
use nomad_core::job::Template;
use nomad_core::structs::ServiceRegistration;
use nomad_discovery::ServiceProvider;
use tokio::task::JoinHandle;

use super::confine::{confined_path, write_confined};
use super::{HookError, HookState, Named, PrestartResponse, TaskContext, TaskHook};

/// Renders the task's `template` blocks (Go template syntax) with the functions `env`,
/// `file` and `nomadService` (the latter from the [`ServiceProvider`]). Destinations and
/// sources are confined to the task dir. Templates with `env = true` feed the task's
/// environment. After the task starts, a change in the catalog re-renders them; a template
/// whose output changed triggers its `change_mode`: `restart`, `signal` (`change_signal`) or
/// `noop`.
pub(crate) struct TemplateHook {
    provider: Arc<dyn ServiceProvider>,
    rendered: Arc<Mutex<BTreeMap<usize, String>>>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl TemplateHook {
    pub(crate) fn new(provider: Arc<dyn ServiceProvider>) -> Self {
        Self {
            provider,
            rendered: Arc::default(),
            watcher: Mutex::new(None),
        }
    }
}

impl Named for TemplateHook {
    fn name(&self) -> &str {
        "templates"
    }
}

fn registration_value(r: &ServiceRegistration) -> Value {
    let mut m = BTreeMap::<String, Value>::new();
    m.insert("ID".into(), Value::from(r.id.as_str()));
    m.insert("Name".into(), Value::from(r.service_name.as_str()));
    m.insert("Namespace".into(), Value::from(r.namespace.as_str()));
    m.insert("NodeID".into(), Value::from(r.node_id.as_str()));
    m.insert("Datacenter".into(), Value::from(r.datacenter.as_str()));
    m.insert("JobID".into(), Value::from(r.job_id.as_str()));
    m.insert("AllocID".into(), Value::from(r.alloc_id.as_str()));
    m.insert("Address".into(), Value::from(r.address.as_str()));
    m.insert("Port".into(), Value::Int(i64::from(r.port)));
    m.insert(
        "Tags".into(),
        Value::from(
            r.tags
                .iter()
                .map(|t| Value::from(t.as_str()))
                .collect::<Vec<_>>(),
        ),
    );
    Value::from(m)
}

fn arg_str(args: &[Value], i: usize, func: &str) -> gotmpl::Result<String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        _ => Err(gotmpl::TemplateError::Exec(format!(
            "{func}: argument {} must be a string",
            i + 1
        ))),
    }
}

/// Everything one render needs, owned so template functions can hold it.
#[derive(Clone)]
struct RenderInputs {
    env: Arc<BTreeMap<String, String>>,
    task_dir: PathBuf,
    services: Arc<Vec<ServiceRegistration>>,
}

fn render(template: &Template, source: &str, inputs: &RenderInputs) -> Result<String, String> {
    let env = inputs.env.clone();
    let task_dir = inputs.task_dir.clone();
    let services = inputs.services.clone();
    let mut t = GoTemplate::new("template");
    if !template.left_delim.is_empty() && !template.right_delim.is_empty() {
        t = t.delims(&template.left_delim, &template.right_delim);
    }
    t = t
        .func("env", move |args: &[Value]| {
            let name = arg_str(args, 0, "env")?;
            Ok(Value::from(env.get(&name).cloned().unwrap_or_default()))
        })
        .func("file", move |args: &[Value]| {
            let path = arg_str(args, 0, "file")?;
            let full =
                confined_path(&task_dir, &path, "file").map_err(gotmpl::TemplateError::Exec)?;
            std::fs::read_to_string(&full)
                .map(Value::from)
                .map_err(|e| gotmpl::TemplateError::Exec(format!("file {path:?}: {e}")))
        })
        .func("nomadService", move |args: &[Value]| {
            let query = arg_str(args, 0, "nomadService")?;
            let (tag, name) = match query.split_once('.') {
                Some((tag, name)) => (Some(tag.to_owned()), name.to_owned()),
                None => (None, query),
            };
            let found: Vec<Value> = services
                .iter()
                .filter(|r| r.service_name == name)
                .filter(|r| tag.as_ref().is_none_or(|t| r.tags.contains(t)))
                .map(registration_value)
                .collect();
            Ok(Value::from(found))
        });
    let t = t.parse(source).map_err(|e| e.to_string())?;
    t.execute_to_string(&Value::from(BTreeMap::<String, Value>::new()))
        .map_err(|e| e.to_string())
}

fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

fn mode(perms: &str) -> u32 {
    u32::from_str_radix(perms, 8).unwrap_or(0o644)
}

/// Renders every template; returns the env of `env = true` templates and the indices of
/// templates whose output changed since the last render.
async fn render_all(
    templates: &[Template],
    task_dir: &Path,
    env: &BTreeMap<String, String>,
    provider: &Arc<dyn ServiceProvider>,
    rendered: &Mutex<BTreeMap<usize, String>>,
) -> Result<(BTreeMap<String, String>, Vec<usize>), HookError> {
    let services = provider
        .list()
        .await
        .map_err(|e| HookError::recoverable(format!("template: {e}")))?;
    let inputs = RenderInputs {
        env: Arc::new(env.clone()),
        task_dir: task_dir.to_owned(),
        services: Arc::new(services),
    };
    let mut out_env = BTreeMap::new();
    let mut changed = Vec::new();
    for (i, template) in templates.iter().enumerate() {
        let dest = confined_path(task_dir, &template.dest_path, "template destination")
            .map_err(HookError::fatal)?;
        let source = if template.source_path.is_empty() {
            template.embedded_tmpl.clone()
        } else {
            let src = confined_path(task_dir, &template.source_path, "template source")
                .map_err(HookError::fatal)?;
            tokio::fs::read_to_string(&src).await.map_err(|e| {
                HookError::recoverable(format!("template source {:?}: {e}", template.source_path))
            })?
        };
        let text = render(template, &source, &inputs)
            .map_err(|e| HookError::fatal(format!("template {:?}: {e}", template.dest_path)))?;
        let previous = rendered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(i, text.clone());
        if previous.as_deref() != Some(text.as_str()) {
            if previous.is_some() {
                changed.push(i);
            }
            let perms = mode(&template.perms);
            let bytes = text.clone().into_bytes();
            tokio::task::spawn_blocking(move || write_confined(&dest, &bytes, perms))
                .await
                .map_err(|e| HookError::recoverable(e.to_string()))?
                .map_err(|e| {
                    HookError::recoverable(format!("template {:?}: {e}", template.dest_path))
                })?;
        }
        if template.envvars {
            out_env.extend(parse_env_file(&text));
        }
    }
    Ok((out_env, changed))
}

#[async_trait::async_trait]
impl TaskHook for TemplateHook {
    async fn prestart(
        &self,
        ctx: &TaskContext,
        _previous: Option<&HookState>,
    ) -> Result<PrestartResponse, HookError> {
        if ctx.task.templates.is_empty() {
            return Ok(PrestartResponse::default());
        }
        let (env, _) = render_all(
            &ctx.task.templates,
            &ctx.dirs.task_dir,
            ctx.env.env(),
            &self.provider,
            &self.rendered,
        )
        .await?;
        Ok(PrestartResponse {
            env,
            ..PrestartResponse::default()
        })
    }

    async fn poststart(&self, ctx: &TaskContext) -> Result<(), HookError> {
        if ctx.task.templates.is_empty() {
            return Ok(());
        }
        let mut changes = self.provider.watch();
        changes.borrow_and_update();
        let provider = self.provider.clone();
        let rendered = self.rendered.clone();
        let ctx = ctx.clone();
        let watcher = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let result = render_all(
                    &ctx.task.templates,
                    &ctx.dirs.task_dir,
                    ctx.env.env(),
                    &provider,
                    &rendered,
                )
                .await;
                let changed = match result {
                    Ok((_, changed)) => changed,
                    Err(e) => {
                        tracing::warn!(task = %ctx.task.name, error = %e, "template re-render failed");
                        continue;
                    }
                };
                let modes: Vec<&Template> = changed
                    .iter()
                    .filter_map(|i| ctx.task.templates.get(*i))
                    .collect();
                if modes
                    .iter()
                    .any(|t| t.change_mode == "restart" || t.change_mode.is_empty())
                {
                    ctx.control
                        .restart("Template with change_mode restart re-rendered");
                } else {
                    for t in modes.iter().filter(|t| t.change_mode == "signal") {
                        ctx.control.signal(&t.change_signal);
                    }
                }
            }
        });
        if let Some(old) = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(watcher)
        {
            old.abort();
        }
        Ok(())
    }

    async fn exited(
        &self,
        _ctx: &TaskContext,
        _request: &super::ExitedRequest,
    ) -> Result<(), HookError> {
        self.stop_watcher();
        Ok(())
    }

    async fn stop(&self, _ctx: &TaskContext) -> Result<(), HookError> {
        self.stop_watcher();
        Ok(())
    }
}

impl TemplateHook {
    fn stop_watcher(&self) {
        if let Some(w) = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            w.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_env_and_services() {
        let inputs = RenderInputs {
            env: Arc::new(BTreeMap::from([("NOMAD_TASK_NAME".into(), "web".into())])),
            task_dir: std::env::temp_dir(),
            services: Arc::new(vec![ServiceRegistration {
                id: "x".into(),
                service_name: "db".into(),
                address: "10.0.0.1".into(),
                port: 5432,
                tags: vec!["primary".into()],
                ..ServiceRegistration::default()
            }]),
        };
        let t = Template::default();
        let out = render(
            &t,
            r#"{{ env "NOMAD_TASK_NAME" }} {{ range nomadService "primary.db" }}{{ .Address }}:{{ .Port }}{{ end }}"#,
            &inputs,
        )
        .unwrap();
        assert_eq!(out, "web 10.0.0.1:5432");
        assert_eq!(
            parse_env_file("A=1\n# c\nB=\"two\"\n"),
            BTreeMap::from([("A".into(), "1".into()), ("B".into(), "two".into())])
        );
    }
}
