//! Resource arithmetic: adding up what allocations use and checking it fits a node.

use serde::{Deserialize, Serialize};

use super::{Allocation, Node};

/// Resources in a form that can be added, subtracted and compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparableResources {
    /// CPU in MHz.
    pub cpu_shares: u64,
    /// Reserved core IDs.
    pub reserved_cores: Vec<u16>,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Memory the allocations may burst to, in MB.
    pub memory_max_mb: u64,
    /// Disk in MB.
    pub disk_mb: u64,
}

impl ComparableResources {
    /// Adds `other` in place.
    pub fn add(&mut self, other: &ComparableResources) {
        self.cpu_shares = self.cpu_shares.saturating_add(other.cpu_shares);
        self.memory_mb = self.memory_mb.saturating_add(other.memory_mb);
        self.memory_max_mb = self.memory_max_mb.saturating_add(other.memory_max_mb);
        self.disk_mb = self.disk_mb.saturating_add(other.disk_mb);
        self.reserved_cores.extend_from_slice(&other.reserved_cores);
    }

    /// Subtracts `other` in place, never going below zero.
    pub fn subtract(&mut self, other: &ComparableResources) {
        self.cpu_shares = self.cpu_shares.saturating_sub(other.cpu_shares);
        self.memory_mb = self.memory_mb.saturating_sub(other.memory_mb);
        self.memory_max_mb = self.memory_max_mb.saturating_sub(other.memory_max_mb);
        self.disk_mb = self.disk_mb.saturating_sub(other.disk_mb);
        self.reserved_cores
            .retain(|c| !other.reserved_cores.contains(c));
    }

    /// `Ok` when `self` (capacity) covers `other` (usage); otherwise the first dimension
    /// that is exhausted: `cpu`, `memory`, `disk` or `cores`.
    pub fn superset(&self, other: &ComparableResources) -> Result<(), &'static str> {
        if other.cpu_shares > self.cpu_shares {
            return Err("cpu");
        }
        if other.memory_mb > self.memory_mb {
            return Err("memory");
        }
        if other.disk_mb > self.disk_mb {
            return Err("disk");
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &other.reserved_cores {
            if !seen.insert(*c) || !self.reserved_cores.contains(c) {
                return Err("cores");
            }
        }
        Ok(())
    }

    /// What a node offers for allocations: its resources less its reserved resources.
    pub fn node_capacity(node: &Node) -> ComparableResources {
        let mut c = ComparableResources::default();
        if let Some(r) = &node.node_resources {
            c.cpu_shares = r.cpu.cpu_shares;
            c.memory_mb = r.memory.memory_mb;
            c.memory_max_mb = r.memory.memory_mb;
            c.disk_mb = r.disk.disk_mb;
            c.reserved_cores = r.cpu.reservable_cpu_cores.clone();
        }
        if let Some(r) = &node.reserved_resources {
            c.cpu_shares = c.cpu_shares.saturating_sub(r.cpu.cpu_shares);
            c.memory_mb = c.memory_mb.saturating_sub(r.memory.memory_mb);
            c.memory_max_mb = c.memory_mb;
            c.disk_mb = c.disk_mb.saturating_sub(r.disk.disk_mb);
            c.reserved_cores
                .retain(|core| !r.cpu.reserved_cpu_cores.contains(core));
        }
        c
    }

    /// What an allocation uses.
    pub fn of_alloc(alloc: &Allocation) -> ComparableResources {
        let mut c = ComparableResources::default();
        if let Some(ar) = &alloc.allocated_resources {
            for t in ar.tasks.values() {
                c.cpu_shares = c.cpu_shares.saturating_add(t.cpu.cpu_shares);
                c.reserved_cores.extend_from_slice(&t.cpu.reserved_cores);
                c.memory_mb = c.memory_mb.saturating_add(t.memory.memory_mb);
                let max = if t.memory.memory_max_mb > 0 {
                    t.memory.memory_max_mb
                } else {
                    t.memory.memory_mb
                };
                c.memory_max_mb = c.memory_max_mb.saturating_add(max);
            }
            c.disk_mb = ar.shared.disk_mb;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superset_names_the_exhausted_dimension() {
        let cap = ComparableResources {
            cpu_shares: 1000,
            memory_mb: 1024,
            disk_mb: 100,
            reserved_cores: vec![0, 1],
            ..Default::default()
        };
        let mut use_ = ComparableResources {
            cpu_shares: 500,
            memory_mb: 2048,
            ..Default::default()
        };
        assert_eq!(cap.superset(&use_), Err("memory"));
        use_.memory_mb = 10;
        assert_eq!(cap.superset(&use_), Ok(()));
        use_.reserved_cores = vec![1, 1];
        assert_eq!(cap.superset(&use_), Err("cores"));
        use_.reserved_cores = vec![2];
        assert_eq!(cap.superset(&use_), Err("cores"));
    }

    #[test]
    fn add_then_subtract_is_identity() {
        let mut a = ComparableResources {
            cpu_shares: 100,
            memory_mb: 200,
            ..Default::default()
        };
        let b = ComparableResources {
            cpu_shares: 5,
            memory_mb: 6,
            reserved_cores: vec![3],
            ..Default::default()
        };
        let orig = a.clone();
        a.add(&b);
        a.subtract(&b);
        assert_eq!(a, orig);
    }
}
