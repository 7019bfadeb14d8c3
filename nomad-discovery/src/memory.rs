//! The in-memory catalog.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use nomad_core::structs::ServiceRegistration;
use tokio::sync::watch;

use crate::{CheckStatus, DiscoveryError, ServiceProvider, ServiceQuery};

#[derive(Debug, Clone)]
struct Entry {
    registration: ServiceRegistration,
    checks: BTreeMap<String, CheckStatus>,
}

/// A catalog kept in memory: the client side of the native (`nomad`) catalog, and a catalog
/// for tests and embedders. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct InMemoryProvider {
    name: String,
    entries: Mutex<BTreeMap<String, Entry>>,
    index: watch::Sender<u64>,
}

impl Default for InMemoryProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryProvider {
    /// An empty catalog answering to the provider name `nomad`.
    pub fn new() -> Self {
        Self::named("nomad")
    }

    /// An empty catalog answering to `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            entries: Mutex::new(BTreeMap::new()),
            index: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.index.send_modify(|i| *i = i.wrapping_add(1));
    }
}

#[async_trait::async_trait]
impl ServiceProvider for InMemoryProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn register(&self, registration: ServiceRegistration) -> Result<(), DiscoveryError> {
        if registration.id.is_empty() || registration.service_name.is_empty() {
            return Err(DiscoveryError::InvalidRegistration {
                id: registration.id,
                reason: "the id and the service name must not be empty".into(),
            });
        }
        let changed = {
            let mut entries = self.lock();
            let checks = entries
                .get(&registration.id)
                .map(|e| e.checks.clone())
                .unwrap_or_default();
            let old = entries.insert(
                registration.id.clone(),
                Entry {
                    registration: registration.clone(),
                    checks,
                },
            );
            old.map(|e| e.registration) != Some(registration)
        };
        if changed {
            self.bump();
        }
        Ok(())
    }

    async fn deregister(&self, id: &str) -> Result<(), DiscoveryError> {
        let removed = self.lock().remove(id).is_some();
        if removed {
            self.bump();
        }
        Ok(())
    }

    async fn update_checks(
        &self,
        id: &str,
        checks: BTreeMap<String, CheckStatus>,
    ) -> Result<(), DiscoveryError> {
        {
            let mut entries = self.lock();
            let entry = entries
                .get_mut(id)
                .ok_or_else(|| DiscoveryError::NotFound { id: id.to_owned() })?;
            entry.checks = checks;
        }
        self.bump();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ServiceRegistration>, DiscoveryError> {
        let mut all: Vec<ServiceRegistration> = self
            .lock()
            .values()
            .map(|e| e.registration.clone())
            .collect();
        all.sort_by(|a, b| (&a.service_name, &a.id).cmp(&(&b.service_name, &b.id)));
        Ok(all)
    }

    async fn query(
        &self,
        query: &ServiceQuery,
    ) -> Result<Vec<ServiceRegistration>, DiscoveryError> {
        Ok(self
            .lock()
            .values()
            .filter(|e| query.matches(&e.registration))
            .filter(|e| e.checks.values().all(|c| *c == CheckStatus::Passing))
            .map(|e| e.registration.clone())
            .collect())
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.index.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, name: &str, tags: &[&str]) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: name.into(),
            namespace: "default".into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            address: "127.0.0.1".into(),
            port: 80,
            ..ServiceRegistration::default()
        }
    }

    #[tokio::test]
    async fn query_by_name_tag_and_health() {
        let p = InMemoryProvider::new();
        p.register(reg("a", "web", &["v1"])).await.unwrap();
        p.register(reg("b", "web", &["v2"])).await.unwrap();
        p.register(reg("c", "db", &[])).await.unwrap();
        assert_eq!(p.query(&ServiceQuery::name("web")).await.unwrap().len(), 2);
        let v2 = p.query(&ServiceQuery::name("web").tag("v2")).await.unwrap();
        assert_eq!(v2.len(), 1);
        assert_eq!(v2[0].id, "b");
        p.update_checks(
            "b",
            BTreeMap::from([("http".into(), CheckStatus::Critical)]),
        )
        .await
        .unwrap();
        assert!(p
            .query(&ServiceQuery::name("web").tag("v2"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(p.list().await.unwrap().len(), 3);
        assert!(matches!(
            p.update_checks("zz", BTreeMap::new()).await,
            Err(DiscoveryError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn watch_sees_changes_and_deregister_is_idempotent() {
        let p = InMemoryProvider::new();
        let mut w = p.watch();
        p.register(reg("a", "web", &[])).await.unwrap();
        assert!(w.has_changed().unwrap());
        w.borrow_and_update();
        // The same registration again changes nothing.
        p.register(reg("a", "web", &[])).await.unwrap();
        assert!(!w.has_changed().unwrap());
        p.deregister("a").await.unwrap();
        p.deregister("a").await.unwrap();
        assert!(w.has_changed().unwrap());
        assert!(p.list().await.unwrap().is_empty());
        let bad = p.register(reg("", "web", &[])).await;
        assert!(matches!(
            bad,
            Err(DiscoveryError::InvalidRegistration { .. })
        ));
    }
}
