//! The server's native service catalog as a [`ServiceProvider`]: what the client's service
//! hooks register with and what templates' `nomadService` reads.
//!
//! Reads go to the server every time (a template renders what the catalog holds now); a
//! background blocking query on `/v1/services` turns every catalog change into a tick of
//! [`ServiceProvider::watch`], so templates re-render when an instance comes or goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nomad_api::{Client, Config, QueryOptions};
use nomad_core::structs::ServiceRegistration;
use nomad_discovery::{CheckStatus, DiscoveryError, ServiceProvider, ServiceQuery};
use tokio::sync::watch;

/// The native catalog, read and written through the HTTP API.
pub(crate) struct NativeCatalog {
    api: Client,
    /// Registrations this agent made: id → (namespace, service name), so a deregistration
    /// by id alone can name the service.
    mine: Mutex<BTreeMap<String, (String, String)>>,
    changes: watch::Sender<u64>,
}

fn unavailable(e: impl std::fmt::Display) -> DiscoveryError {
    DiscoveryError::Unavailable {
        reason: e.to_string(),
    }
}

impl NativeCatalog {
    /// A catalog over `api`; spawns the change watcher, which ends when `stop` turns true.
    pub(crate) fn start(api: Client, mut stop: watch::Receiver<bool>) -> Arc<Self> {
        let (changes, _) = watch::channel(0);
        let catalog = Arc::new(NativeCatalog {
            api,
            mine: Mutex::new(BTreeMap::new()),
            changes,
        });
        let watcher = Arc::clone(&catalog);
        tokio::spawn(async move {
            let mut index = 0;
            loop {
                let q = QueryOptions {
                    namespace: Some("*".into()),
                    ..QueryOptions::blocking(index, Duration::from_secs(60))
                };
                let answer = tokio::select! {
                    a = watcher.api.services(&q) => a,
                    _ = stop.changed() => return,
                };
                match answer {
                    Ok((_, meta)) => {
                        if meta.last_index != index {
                            index = meta.last_index;
                            watcher.changes.send_replace(index);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "watching the service catalog");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        catalog
    }

    fn api_in(&self, namespace: &str) -> Result<Client, DiscoveryError> {
        let mut cfg: Config = self.api.config().clone();
        cfg.namespace = Some(if namespace.is_empty() {
            "default".to_string()
        } else {
            namespace.to_string()
        });
        Client::new(cfg).map_err(unavailable)
    }

    /// Every registration of the catalog, in every namespace.
    async fn fetch_all(&self) -> Result<Vec<ServiceRegistration>, DiscoveryError> {
        let q = QueryOptions {
            namespace: Some("*".into()),
            ..QueryOptions::default()
        };
        let (namespaces, _) = self.api.services(&q).await.map_err(unavailable)?;
        let mut out = Vec::new();
        for ns in namespaces {
            for svc in ns.services {
                let q = QueryOptions {
                    namespace: Some(ns.namespace.clone()),
                    ..QueryOptions::default()
                };
                let (regs, _) = self
                    .api
                    .service(&svc.service_name, None, &q)
                    .await
                    .map_err(unavailable)?;
                out.extend(regs);
            }
        }
        out.sort_by(|a, b| (&a.service_name, &a.id).cmp(&(&b.service_name, &b.id)));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl ServiceProvider for NativeCatalog {
    fn name(&self) -> &str {
        "nomad"
    }

    async fn register(&self, registration: ServiceRegistration) -> Result<(), DiscoveryError> {
        if registration.id.is_empty() || registration.service_name.is_empty() {
            return Err(DiscoveryError::InvalidRegistration {
                id: registration.id,
                reason: "the id and the service name must be set".into(),
            });
        }
        self.mine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                registration.id.clone(),
                (
                    registration.namespace.clone(),
                    registration.service_name.clone(),
                ),
            );
        self.api
            .register_services(std::slice::from_ref(&registration))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn deregister(&self, id: &str) -> Result<(), DiscoveryError> {
        let known = self
            .mine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        let (namespace, name) = match known {
            Some(k) => k,
            None => match self.fetch_all().await?.into_iter().find(|r| r.id == id) {
                Some(r) => (r.namespace, r.service_name),
                None => return Ok(()),
            },
        };
        match self.api_in(&namespace)?.delete_service(&name, id).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(unavailable(e)),
        }
        self.mine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        Ok(())
    }

    async fn update_checks(
        &self,
        _id: &str,
        _checks: BTreeMap<String, CheckStatus>,
    ) -> Result<(), DiscoveryError> {
        // The native catalog keeps no check status yet: every instance counts as passing.
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ServiceRegistration>, DiscoveryError> {
        self.fetch_all().await
    }

    async fn query(
        &self,
        query: &ServiceQuery,
    ) -> Result<Vec<ServiceRegistration>, DiscoveryError> {
        let mut found: Vec<ServiceRegistration> = self
            .fetch_all()
            .await?
            .into_iter()
            .filter(|r| query.matches(r))
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
