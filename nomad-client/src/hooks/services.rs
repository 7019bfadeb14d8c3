//! The services hooks: task and group services registered with a [`ServiceProvider`].

use std::sync::Arc;

use nomad_core::driver::PortMapping;
use nomad_core::env::interpolate_service;
use nomad_core::job::Service;
use nomad_core::structs::{Allocation, Node, ServiceRegistration};
use nomad_discovery::ServiceProvider;

use super::network::{host_ports, node_address};
use super::{AllocContext, AllocHook, HookError, Named, PrerunResponse, TaskContext, TaskHook};

/// The registrations of `services`, owned by `owner` (a task or group name).
pub(crate) fn registrations(
    alloc: &Allocation,
    node: &Node,
    owner: &str,
    services: &[Service],
    ports: &[PortMapping],
) -> Vec<ServiceRegistration> {
    services
        .iter()
        .map(|s| {
            let port = ports.iter().find(|p| p.label == s.port_label);
            let address = if !s.address.is_empty() {
                s.address.clone()
            } else {
                port.map(|p| p.host_ip.clone())
                    .unwrap_or_else(|| node_address(node))
            };
            ServiceRegistration {
                id: format!(
                    "_nomad-task-{}-{owner}-{}-{}",
                    alloc.id, s.name, s.port_label
                ),
                service_name: s.name.clone(),
                namespace: alloc.namespace.to_string(),
                node_id: node.id.to_string(),
                datacenter: node.datacenter.clone(),
                job_id: alloc.job_id.to_string(),
                alloc_id: alloc.id.to_string(),
                tags: s.tags.clone(),
                address,
                port: port
                    .map(|p| p.value)
                    .or_else(|| s.port_label.parse().ok())
                    .unwrap_or(0),
                ..ServiceRegistration::default()
            }
        })
        .collect()
}

async fn register_all(
    provider: &Arc<dyn ServiceProvider>,
    regs: Vec<ServiceRegistration>,
) -> Result<(), HookError> {
    for reg in regs {
        provider
            .register(reg)
            .await
            .map_err(|e| HookError::recoverable(e.to_string()))?;
    }
    Ok(())
}

async fn deregister_all(
    provider: &Arc<dyn ServiceProvider>,
    regs: Vec<ServiceRegistration>,
) -> Result<(), HookError> {
    let mut first = None;
    for reg in regs {
        if let Err(e) = provider.deregister(&reg.id).await {
            first.get_or_insert(HookError::recoverable(e.to_string()));
        }
    }
    first.map_or(Ok(()), Err)
}

/// Registers the task's services after it started; deregisters them when it exits or is
/// killed (before the kill, so no traffic reaches a dying task).
pub(crate) struct TaskServicesHook {
    provider: Arc<dyn ServiceProvider>,
}

impl TaskServicesHook {
    pub(crate) fn new(provider: Arc<dyn ServiceProvider>) -> Self {
        Self { provider }
    }

    fn regs(ctx: &TaskContext) -> Vec<ServiceRegistration> {
        registrations(
            &ctx.alloc,
            &ctx.node,
            &ctx.task.name,
            &ctx.task.services,
            &ctx.ports,
        )
    }
}

impl Named for TaskServicesHook {
    fn name(&self) -> &str {
        "services"
    }
}

#[async_trait::async_trait]
impl TaskHook for TaskServicesHook {
    async fn poststart(&self, ctx: &TaskContext) -> Result<(), HookError> {
        register_all(&self.provider, Self::regs(ctx)).await
    }

    async fn pre_kill(&self, ctx: &TaskContext) -> Result<(), HookError> {
        deregister_all(&self.provider, Self::regs(ctx)).await
    }

    async fn exited(
        &self,
        ctx: &TaskContext,
        _request: &super::ExitedRequest,
    ) -> Result<(), HookError> {
        deregister_all(&self.provider, Self::regs(ctx)).await
    }

    async fn stop(&self, ctx: &TaskContext) -> Result<(), HookError> {
        deregister_all(&self.provider, Self::regs(ctx)).await
    }
}

/// Registers the group's services at prerun and deregisters them at pre_kill and postrun.
pub(crate) struct GroupServicesHook {
    provider: Arc<dyn ServiceProvider>,
}

impl GroupServicesHook {
    pub(crate) fn new(provider: Arc<dyn ServiceProvider>) -> Self {
        Self { provider }
    }

    fn regs(ctx: &AllocContext) -> Vec<ServiceRegistration> {
        let Some(group) = ctx.alloc.group() else {
            return Vec::new();
        };
        let env = nomad_core::env::TaskEnvBuilder::for_group(&ctx.alloc, &ctx.node)
            .map(|b| b.build())
            .ok();
        let services: Vec<Service> = group
            .services
            .iter()
            .cloned()
            .map(|mut s| {
                if let Some(env) = &env {
                    interpolate_service(&mut s, env);
                }
                s
            })
            .collect();
        let ports = host_ports(&ctx.alloc, &ctx.node).unwrap_or_default();
        registrations(&ctx.alloc, &ctx.node, &group.name, &services, &ports)
    }
}

impl Named for GroupServicesHook {
    fn name(&self) -> &str {
        "group_services"
    }
}

#[async_trait::async_trait]
impl AllocHook for GroupServicesHook {
    async fn prerun(&self, ctx: &AllocContext) -> Result<PrerunResponse, HookError> {
        register_all(&self.provider, Self::regs(ctx)).await?;
        Ok(PrerunResponse::default())
    }

    async fn pre_kill(&self, ctx: &AllocContext) -> Result<(), HookError> {
        deregister_all(&self.provider, Self::regs(ctx)).await
    }

    async fn postrun(&self, ctx: &AllocContext) -> Result<(), HookError> {
        deregister_all(&self.provider, Self::regs(ctx)).await
    }

    async fn destroy(&self, ctx: &AllocContext) -> Result<(), HookError> {
        deregister_all(&self.provider, Self::regs(ctx)).await
    }
}
