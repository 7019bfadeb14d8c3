//! The drivers a client offers, with their fingerprinted health.

use std::collections::BTreeMap;
use std::sync::Arc;

use nomad_core::driver::{Fingerprint, HealthState, TaskDriver};

/// The client's drivers by name, each with its last fingerprint. A task may only use a
/// driver that is present and detected: a disabled (undetected) driver cannot be used by
/// any job.
#[derive(Clone, Default)]
pub struct DriverSet {
    drivers: BTreeMap<String, (Arc<dyn TaskDriver>, Fingerprint)>,
}

impl std::fmt::Debug for DriverSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.drivers.iter().map(|(k, (_, fp))| (k, &fp.health)))
            .finish()
    }
}

impl DriverSet {
    /// Fingerprints every driver and keeps it under its name.
    pub async fn fingerprint(drivers: Vec<Arc<dyn TaskDriver>>) -> Self {
        let mut set = Self::default();
        for driver in drivers {
            let fp = driver.fingerprint().await;
            set.drivers.insert(driver.name().to_owned(), (driver, fp));
        }
        set
    }

    /// The drivers and their fingerprints.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn TaskDriver>, &Fingerprint)> {
        self.drivers.iter().map(|(n, (d, f))| (n.as_str(), d, f))
    }

    /// The driver `name` if a task may use it.
    ///
    /// # Errors
    ///
    /// A message naming the driver when it is unknown or not detected (disabled).
    pub fn usable(&self, name: &str) -> Result<Arc<dyn TaskDriver>, String> {
        match self.drivers.get(name) {
            None => Err(format!("driver {name:?} is not available on this client")),
            Some((_, fp)) if fp.health == HealthState::Undetected => Err(format!(
                "driver {name:?} is not enabled on this client ({}): a disabled driver cannot be used by any job",
                fp.description
            )),
            Some((driver, _)) => Ok(driver.clone()),
        }
    }
}
