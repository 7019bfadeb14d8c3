//! A copy-on-write map split into shards, so that a write while snapshots are alive copies
//! one shard instead of the whole table.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

const SHARDS: usize = 64;

type Shard<V> = Arc<HashMap<String, Arc<V>>>;

/// A map from string keys to shared values whose clone is `SHARDS` pointer copies.
#[derive(Debug)]
pub(crate) struct ShardedMap<V> {
    shards: Arc<Vec<Shard<V>>>,
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
            shards: Arc::new((0..SHARDS).map(|_| Arc::new(HashMap::new())).collect()),
            len: 0,
        }
    }
}

fn shard_of(key: &str) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

impl<V> ShardedMap<V> {
    pub(crate) fn get(&self, key: &str) -> Option<&Arc<V>> {
        self.shards.get(shard_of(key))?.get(key)
    }

    pub(crate) fn insert(&mut self, key: String, value: Arc<V>) -> Option<Arc<V>> {
        let s = shard_of(&key);
        let shards = Arc::make_mut(&mut self.shards);
        let prev = shards
            .get_mut(s)
            .and_then(|shard| Arc::make_mut(shard).insert(key, value));
        if prev.is_none() {
            self.len += 1;
        }
        prev
    }

    #[cfg(test)]
    pub(crate) fn remove(&mut self, key: &str) -> Option<Arc<V>> {
        let s = shard_of(key);
        if self
            .shards
            .get(s)
            .is_none_or(|shard| !shard.contains_key(key))
        {
            return None;
        }
        let shards = Arc::make_mut(&mut self.shards);
        let prev = shards
            .get_mut(s)
            .and_then(|shard| Arc::make_mut(shard).remove(key));
        if prev.is_some() {
            self.len -= 1;
        }
        prev
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<V>> {
        self.shards.iter().flat_map(|s| s.values())
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
