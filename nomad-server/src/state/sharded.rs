//! A copy-on-write map split into shards, so that a write while snapshots are alive copies
//! one shard instead of the whole table.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// First-level shards; each holds up to `INNER` second-level lists, made when first written.
/// Many small first-level shards: a plan's thousand writes touch about as many of them,
/// each copying `INNER` pointers, instead of copying every one of fewer, larger ones.
const OUTER: usize = 4096;
const INNER: usize = 16;

/// What a [`ShardedMap`] holds: values that know their own key.
pub(crate) trait Keyed: Clone {
    /// The value's key.
    fn key(&self) -> &str;
}

/// A second-level list of values with their key's hash, searched by hash then key: a few
/// dozen entries at most, so a copy is one small vector of pointers.
type Shard<V> = Arc<Vec<(u64, V)>>;
type Outer<V> = Arc<Vec<Shard<V>>>;

/// A map from string keys to values that carry them (shared pointers, cheap to clone), in
/// two levels of copy-on-write shards: a clone is one pointer copy, and a write after a
/// clone copies the top-level vector of `OUTER` pointers once, one first-level vector of
/// `INNER` pointers and one small list, so a plan of a thousand allocations copies a few
/// percent of a million-allocation table instead of all of it.
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

fn hash_of(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

fn shard_of(h: u64) -> (usize, usize) {
    let h = h as usize;
    (h % OUTER, (h / OUTER) % INNER)
}

impl<V: Keyed> ShardedMap<V> {
    fn shard(&self, h: u64) -> Option<&Shard<V>> {
        let (o, i) = shard_of(h);
        self.shards.get(o)?.get(i)
    }

    fn shard_mut(&mut self, h: u64) -> Option<&mut Vec<(u64, V)>> {
        let (o, i) = shard_of(h);
        let outer = Arc::make_mut(Arc::make_mut(&mut self.shards).get_mut(o)?);
        if outer.is_empty() {
            outer.resize_with(INNER, || Arc::new(Vec::new()));
        }
        outer.get_mut(i).map(Arc::make_mut)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        let h = hash_of(key);
        self.shard(h)?
            .iter()
            .find(|(kh, v)| *kh == h && v.key() == key)
            .map(|(_, v)| v)
    }

    /// Stores `value` under its key; returns the value it replaced.
    pub(crate) fn insert(&mut self, value: V) -> Option<V> {
        let h = hash_of(value.key());
        let shard = self.shard_mut(h)?;
        let prev = match shard
            .iter_mut()
            .find(|(kh, v)| *kh == h && v.key() == value.key())
        {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                shard.push((h, value));
                None
            }
        };
        if prev.is_none() {
            self.len += 1;
        }
        prev
    }

    #[cfg(test)]
    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let h = hash_of(key);
        let pos = self
            .shard(h)?
            .iter()
            .position(|(kh, v)| *kh == h && v.key() == key)?;
        let prev = self.shard_mut(h).map(|shard| shard.swap_remove(pos).1);
        if prev.is_some() {
            self.len -= 1;
        }
        prev
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards
            .iter()
            .flat_map(|o| o.iter())
            .flat_map(|s| s.iter().map(|(_, v)| v))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Elements of one [`Chunked`] chunk.
const CHUNK: usize = 256;

/// A copy-on-write vector in chunks, for tables indexed by node position: a clone is one
/// pointer copy, and a write after a clone copies the chunk list and one chunk of
/// `CHUNK` elements instead of the whole vector.
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: Arc<Vec<Arc<Vec<T>>>>,
    len: usize,
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Chunked {
            chunks: Arc::clone(&self.chunks),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Arc::new(Vec::new()),
            len: 0,
        }
    }
}

impl<T: Clone> Chunked<T> {
    /// A chunked copy of `items`.
    pub(crate) fn from_vec(items: Vec<T>) -> Self {
        let len = items.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(Arc::new(it.by_ref().take(CHUNK).collect()));
        }
        Chunked {
            chunks: Arc::new(chunks),
            len,
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// The element at `i` to change in place, its chunk copied first when a clone still
    /// shares it.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let chunk = Arc::make_mut(&mut self.chunks).get_mut(i / CHUNK)?;
        Arc::make_mut(chunk).get_mut(i % CHUNK)
    }

    pub(crate) fn push(&mut self, item: T) {
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(item);
                chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Shards of a [`KeyedShards`] map.
const KEYED: usize = 64;

/// A copy-on-write map in a fixed number of shards, for tables keyed by job: a clone is
/// one pointer copy, and a write after a clone copies the shard vector and one shard
/// (a sixty-fourth of the keys) instead of every key.
#[derive(Debug)]
pub(crate) struct KeyedShards<K, V> {
    shards: Arc<Vec<KeyedShard<K, V>>>,
}

/// One shard of a [`KeyedShards`] map.
type KeyedShard<K, V> = Arc<HashMap<K, Arc<V>>>;

impl<K, V> Clone for KeyedShards<K, V> {
    fn clone(&self) -> Self {
        KeyedShards {
            shards: Arc::clone(&self.shards),
        }
    }
}

impl<K, V> Default for KeyedShards<K, V> {
    fn default() -> Self {
        KeyedShards {
            shards: Arc::new((0..KEYED).map(|_| Arc::new(HashMap::new())).collect()),
        }
    }
}

fn keyed_shard<Q: Hash + ?Sized>(key: &Q) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % KEYED
}

impl<K: Hash + Eq + Clone, V: Clone + Default> KeyedShards<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<&Arc<V>> {
        self.shards.get(keyed_shard(key))?.get(key)
    }

    /// The value of `key` to change in place (a default one when absent), copied first
    /// when a clone of the map still shares it.
    pub(crate) fn get_or_default_mut(&mut self, key: K) -> Option<&mut V> {
        let shard = Arc::make_mut(Arc::make_mut(&mut self.shards).get_mut(keyed_shard(&key))?);
        Some(Arc::make_mut(shard.entry(key).or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct Named(Arc<(String, u32)>);

    impl Keyed for Named {
        fn key(&self) -> &str {
            &self.0 .0
        }
    }

    fn named(k: &str, v: u32) -> Named {
        Named(Arc::new((k.to_string(), v)))
    }

    #[test]
    fn clones_are_isolated() {
        let mut a: ShardedMap<Named> = ShardedMap::default();
        a.insert(named("x", 1));
        let b = a.clone();
        assert_eq!(a.insert(named("x", 2)).map(|v| v.0 .1), Some(1));
        a.insert(named("y", 3));
        assert_eq!(b.get("x").map(|v| v.0 .1), Some(1));
        assert!(b.get("y").is_none());
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 1);
        assert_eq!(a.remove("y").map(|v| v.0 .1), Some(3));
        assert_eq!(a.len(), 1);
        // Many keys: every one found, in every shard.
        for i in 0..5000u32 {
            a.insert(named(&format!("k{i}"), i));
        }
        assert_eq!(a.len(), 5001);
        assert!((0..5000u32).all(|i| a.get(&format!("k{i}")).map(|v| v.0 .1) == Some(i)));
        assert_eq!(a.values().count(), 5001);
    }

    #[test]
    fn chunked_clones_are_isolated() {
        let mut a = Chunked::from_vec((0..600u32).collect());
        let b = a.clone();
        *a.get_mut(300).expect("element") = 7;
        a.push(600);
        assert_eq!(b.get(300), Some(&300));
        assert_eq!(a.get(300), Some(&7));
        assert_eq!(a.get(599), Some(&599));
        assert_eq!(a.get(600), Some(&600));
        assert!(b.get(600).is_none());
        assert_eq!((a.len(), b.len()), (601, 600));
        let mut c: Chunked<u32> = Chunked::default();
        (0..300).for_each(|i| c.push(i));
        assert_eq!(c.get(299), Some(&299));
    }

    #[test]
    fn keyed_clones_are_isolated() {
        let mut a: KeyedShards<(String, String), Vec<u32>> = KeyedShards::default();
        let k = ("default".to_string(), "web".to_string());
        a.get_or_default_mut(k.clone()).expect("shard").push(1);
        let b = a.clone();
        a.get_or_default_mut(k.clone()).expect("shard").push(2);
        assert_eq!(b.get(&k).map(|v| v.as_slice()), Some(&[1][..]));
        assert_eq!(a.get(&k).map(|v| v.as_slice()), Some(&[1, 2][..]));
        assert!(a.get(&("default".to_string(), "db".to_string())).is_none());
    }
}
