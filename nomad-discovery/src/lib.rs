//! Service providers behind one trait.
//!
//! [`ServiceProvider`] is the seam between the client agent (which registers the services of
//! the tasks it runs, and renders templates that query them) and a service catalog. Nomad
//! picks a provider per service block (`provider = "nomad"` or `"consul"`); each implements
//! this trait.
//!
//! [`InMemoryProvider`] keeps the catalog in memory. It is the client side of the native
//! catalog until the server-side catalog exists, and a catalog for tests and embedders.
//!
//! # Example
//!
//! ```
//! use nomad_core::structs::ServiceRegistration;
//! use nomad_discovery::{InMemoryProvider, ServiceProvider, ServiceQuery};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), nomad_discovery::DiscoveryError> {
//! let catalog = InMemoryProvider::new();
//! let mut changes = catalog.watch();
//! catalog
//!     .register(ServiceRegistration {
//!         id: "_nomad-task-a1-web-http".into(),
//!         service_name: "web".into(),
//!         namespace: "default".into(),
//!         tags: vec!["v1".into()],
//!         address: "10.0.0.5".into(),
//!         port: 23456,
//!         ..ServiceRegistration::default()
//!     })
//!     .await?;
//! changes.changed().await.ok();
//!
//! let found = catalog.query(&ServiceQuery::name("web").tag("v1")).await?;
//! assert_eq!(found[0].port, 23456);
//! catalog.deregister("_nomad-task-a1-web-http").await?;
//! assert!(catalog.list().await?.is_empty());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod memory;

pub use memory::InMemoryProvider;

use std::collections::BTreeMap;

use nomad_core::structs::ServiceRegistration;

/// What a provider may fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// A registration lacks something the catalog needs.
    #[error("service registration {id:?} is invalid: {reason}")]
    InvalidRegistration {
        /// The registration's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No registration with this id is known.
    #[error("service registration {id:?} not found")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The catalog could not be reached or answered with an error.
    #[error("service catalog unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
}

/// The health of one check of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// The check passes.
    Passing,
    /// The check warns.
    Warning,
    /// The check fails.
    Critical,
}

/// A query for registrations: by name, optionally by tag and namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceQuery {
    /// The service name; empty for every service.
    pub name: String,
    /// Tags every result must carry.
    pub tags: Vec<String>,
    /// The namespace; empty for every namespace.
    pub namespace: String,
}

impl ServiceQuery {
    /// Every registration of service `name`.
    pub fn name(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Narrows the query to registrations carrying `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Narrows the query to `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Whether `registration` answers the query.
    pub fn matches(&self, registration: &ServiceRegistration) -> bool {
        (self.name.is_empty() || registration.service_name == self.name)
            && (self.namespace.is_empty() || registration.namespace == self.namespace)
            && self.tags.iter().all(|t| registration.tags.contains(t))
    }
}

/// A service catalog the client registers services with and queries.
///
/// Object safe: the client holds providers as `Arc<dyn ServiceProvider>`, keyed by the
/// `provider` name of service blocks.
#[async_trait::async_trait]
pub trait ServiceProvider: Send + Sync {
    /// The provider's name as service blocks write it (`nomad`, `consul`).
    fn name(&self) -> &str;

    /// Registers (or replaces) a registration, keyed by its id.
    ///
    /// # Errors
    ///
    /// * [`DiscoveryError::InvalidRegistration`] when the id or service name is empty;
    /// * [`DiscoveryError::Unavailable`] when the catalog cannot be reached.
    async fn register(&self, registration: ServiceRegistration) -> Result<(), DiscoveryError>;

    /// Removes a registration. Removing an unknown id succeeds (deregistration is
    /// idempotent, as stop hooks need).
    ///
    /// # Errors
    ///
    /// * [`DiscoveryError::Unavailable`] when the catalog cannot be reached.
    async fn deregister(&self, id: &str) -> Result<(), DiscoveryError>;

    /// Sets the status of the checks of a registration, by check name.
    ///
    /// # Errors
    ///
    /// * [`DiscoveryError::NotFound`] when the registration is unknown;
    /// * [`DiscoveryError::Unavailable`] when the catalog cannot be reached.
    async fn update_checks(
        &self,
        id: &str,
        checks: BTreeMap<String, CheckStatus>,
    ) -> Result<(), DiscoveryError>;

    /// Every registration, ordered by service name then id.
    ///
    /// # Errors
    ///
    /// * [`DiscoveryError::Unavailable`] when the catalog cannot be reached.
    async fn list(&self) -> Result<Vec<ServiceRegistration>, DiscoveryError>;

    /// The registrations answering `query` whose checks are all passing (a registration
    /// without checks counts as passing), ordered by id.
    ///
    /// # Errors
    ///
    /// * [`DiscoveryError::Unavailable`] when the catalog cannot be reached.
    async fn query(&self, query: &ServiceQuery)
        -> Result<Vec<ServiceRegistration>, DiscoveryError>;

    /// A receiver whose value is the catalog's change index: it changes after every
    /// register, deregister and check update. Templates and watchers re-query on a change.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;
}
