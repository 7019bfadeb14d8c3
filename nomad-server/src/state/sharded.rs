//! A copy-on-write map split into shards, so that a write while snapshots are alive copies
//! one shard instead of the whole table.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// First-level shards; each holds up to `INNER` second-level maps, made when first written.
/// Many small first-level shards: a plan's thousand writes touch about as many of them,
/// each copying `INNER` pointers, instead of copying every one of fewer, larger ones.
const OUTER: usize = 4096;
const INNER: usize = 16;

/// A second-level map. Keys are shared strings, so copying a map copies pointers only.
type Shard<V> = Arc<HashMap<Arc<str>, Arc<V>>>;
type Outer<V> = Arc<Vec<Shard<V>>>;

/// A map from string keys to shared values in two levels of copy-on-write shards: a
/// clone is one pointer copy, and a write after a clone copies the top-level vector of
/// `OUTER` pointers once, one first-level vector of `INNER` pointers and one small map,
/// so a plan of a thousand allocations copies a few percent of a million-allocation
/// table instead of all of it.
#[derive(Debug)]
pub(crate) struct ShardedMap<V> {
    shards: Arc<Vec<Outer<V>>>,
    len: usize,
}

impl<V> Clone for ShardedMap<V> {
    fn clone(&self) -> Self {
        ShardedMap {
            shards: Arc::clone(&self.shards),
            len: self.len,
        }
    }
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        ShardedMap {
            shards: Arc::new((0..OUTER).map(|_| Arc::new(Vec::new())).collect()),
            len: 0,
        }
    }
}

fn shard_of(key: &str) -> (usize, usize) {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let h = h.finish() as usize;
    (h % OUTER, (h / OUTER) % INNER)
}

impl<V> ShardedMap<V> {
    fn shard(&self, key: &str) -> Option<&Shard<V>> {
        let (o, i) = shard_of(key);
        self.shards.get(o)?.get(i)
    }

    fn shard_mut(&mut self, key: &str) -> Option<&mut HashMap<Arc<str>, Arc<V>>> {
        let (o, i) = shard_of(key);
        let outer = Arc::make_mut(Arc::make_mut(&mut self.shards).get_mut(o)?);
        if outer.is_empty() {
            outer.resize_with(INNER, || Arc::new(HashMap::new()));
        }
        outer.get_mut(i).map(Arc::make_mut)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Arc<V>> {
        self.shard(key)?.get(key)
    }

    pub(crate) fn insert(&mut self, key: String, value: Arc<V>) -> Option<Arc<V>> {
        let prev = self
            .shard_mut(&key)
            .and_then(|shard| match shard.get_mut(key.as_str()) {
                Some(slot) => Some(std::mem::replace(slot, value)),
                None => shard.insert(Arc::from(key), value),
            });
        if prev.is_none() {
            self.len += 1;
        }
        prev
    }

    #[cfg(test)]
    pub(crate) fn remove(&mut self, key: &str) -> Option<Arc<V>> {
        if self.shard(key).is_none_or(|shard| !shard.contains_key(key)) {
            return None;
        }
        let prev = self.shard_mut(key).and_then(|shard| shard.remove(key));
        if prev.is_some() {
            self.len -= 1;
        }
        prev
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<V>> {
        self.shards
            .iter()
            .flat_map(|o| o.iter())
            .flat_map(|s| s.values())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_are_isolated() {
        let mut a: ShardedMap<u32> = ShardedMap::default();
        a.insert("x".into(), Arc::new(1));
        let b = a.clone();
        a.insert("x".into(), Arc::new(2));
        a.insert("y".into(), Arc::new(3));
        assert_eq!(b.get("x").map(|v| **v), Some(1));
        assert!(b.get("y").is_none());
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 1);
        assert_eq!(a.remove("y").map(|v| *v), Some(3));
        assert_eq!(a.len(), 1);
    }
}
