//! The allocations of one node as a chain of commits, so that a commit placing on a node
//! whose list a snapshot still shares adds a link holding only what it wrote, instead of
//! copying (and later freeing) every allocation pointer of the node.
//!
//! Readers get the node's list as one slice, built from the chain the first time it is
//! asked for and kept with that version of the list.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use nomad_core::structs::{Allocation, ArcStr};

/// Links a chain may reach before a new commit folds it into one.
const MAX_DEPTH: u32 = 16;

/// One version of a node's allocation list: what the latest commit wrote on top of the
/// version before it. Immutable once a snapshot shares it.
#[derive(Debug, Default)]
pub(crate) struct NodeAllocs {
    /// Allocations the commit wrote: new ones, and new versions of older ones.
    batch: Vec<Arc<Allocation>>,
    /// The version this one was written over.
    prev: Option<Arc<NodeAllocs>>,
    /// Links in the chain, this one included.
    depth: u32,
    /// Some link of the chain holds a new version of an allocation an older link holds
    /// (the list is then built by replacing, not by appending).
    replaces: bool,
    /// The whole list, built when first read.
    flat: OnceLock<Vec<Arc<Allocation>>>,
}

impl NodeAllocs {
    /// A single-link list holding `allocs`.
    pub(crate) fn from_vec(allocs: Vec<Arc<Allocation>>) -> Arc<NodeAllocs> {
        Arc::new(NodeAllocs {
            batch: allocs,
            prev: None,
            depth: 1,
            replaces: false,
            flat: OnceLock::new(),
        })
    }

    /// The node's allocations, oldest first; a new version of an allocation keeps the
    /// place of the first.
    pub(crate) fn as_slice(&self) -> &[Arc<Allocation>] {
        if self.prev.is_none() {
            return &self.batch;
        }
        self.flat.get_or_init(|| self.build())
    }

    fn build(&self) -> Vec<Arc<Allocation>> {
        let mut links: Vec<&NodeAllocs> = Vec::with_capacity(self.depth as usize);
        let mut cur = Some(self);
        while let Some(l) = cur {
            // A link already built holds everything below it.
            if let Some(flat) = l.flat.get() {
                links.push(l);
                return Self::assemble(flat, &links[..links.len() - 1], self.replaces);
            }
            links.push(l);
            cur = l.prev.as_deref();
        }
        Self::assemble(&[], &links, self.replaces)
    }

    /// `base` followed by the batches of `links` (newest first).
    fn assemble(
        base: &[Arc<Allocation>],
        links: &[&NodeAllocs],
        replaces: bool,
    ) -> Vec<Arc<Allocation>> {
        let total = base.len() + links.iter().map(|l| l.batch.len()).sum::<usize>();
        let mut out: Vec<Arc<Allocation>> = Vec::with_capacity(total);
        out.extend(base.iter().cloned());
        if !replaces {
            for l in links.iter().rev() {
                out.extend(l.batch.iter().cloned());
            }
            return out;
        }
        let mut pos: HashMap<ArcStr, usize> = out
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        for l in links.iter().rev() {
            for a in &l.batch {
                match pos.get(a.id.as_str()) {
                    Some(&i) => out[i] = Arc::clone(a),
                    None => {
                        pos.insert(a.id.clone(), out.len());
                        out.push(Arc::clone(a));
                    }
                }
            }
        }
        out
    }

    /// Writes `a` (a new allocation, or with `replaces` a new version of one the list
    /// holds) into the list at `slot`: into its newest link when no snapshot shares it,
    /// else into a new link over it (folding the chain into one link when it is long).
    pub(crate) fn push(slot: &mut Arc<NodeAllocs>, a: Arc<Allocation>, replaces: bool) {
        if let Some(head) = Arc::get_mut(slot) {
            head.batch.push(a);
            head.replaces |= replaces;
            head.flat = OnceLock::new();
            return;
        }
        let old = Arc::clone(slot);
        *slot = if old.depth >= MAX_DEPTH {
            let mut all = old.as_slice().to_vec();
            match replaces
                .then(|| all.iter().position(|x| x.id == a.id))
                .flatten()
            {
                Some(i) => all[i] = a,
                None => all.push(a),
            }
            NodeAllocs::from_vec(all)
        } else {
            Arc::new(NodeAllocs {
                batch: vec![a],
                depth: old.depth + 1,
                replaces: old.replaces || replaces,
                prev: Some(old),
                flat: OnceLock::new(),
            })
        };
    }

    /// Removes the allocation `id` (one that moved to another node): the list is
    /// rebuilt as one link.
    pub(crate) fn remove(slot: &mut Arc<NodeAllocs>, id: &str) {
        let mut all = slot.as_slice().to_vec();
        all.retain(|x| x.id != id);
        *slot = NodeAllocs::from_vec(all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, version: u64) -> Arc<Allocation> {
        Arc::new(Allocation {
            id: id.to_string().into(),
            modify_index: version,
            ..Allocation::default()
        })
    }

    fn ids(l: &NodeAllocs) -> Vec<(String, u64)> {
        l.as_slice()
            .iter()
            .map(|a| (a.id.to_string(), a.modify_index))
            .collect()
    }

    #[test]
    fn shared_versions_keep_their_view() {
        let mut head = NodeAllocs::from_vec(vec![alloc("a", 1)]);
        let v1 = Arc::clone(&head);
        NodeAllocs::push(&mut head, alloc("b", 2), false);
        // Not shared yet: the same link grows.
        NodeAllocs::push(&mut head, alloc("c", 2), false);
        let v2 = Arc::clone(&head);
        NodeAllocs::push(&mut head, alloc("a", 3), true);
        assert_eq!(ids(&v1), vec![("a".into(), 1)]);
        assert_eq!(
            ids(&v2),
            vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 2)]
        );
        assert_eq!(
            ids(&head),
            vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 2)]
        );
        // A link built before a write over it is rebuilt.
        let mut h2 = Arc::clone(&head);
        drop(head);
        assert_eq!(h2.as_slice().len(), 3);
        NodeAllocs::push(&mut h2, alloc("d", 4), false);
        assert_eq!(h2.as_slice().len(), 4);
        NodeAllocs::remove(&mut h2, "b");
        assert_eq!(
            ids(&h2),
            vec![("a".into(), 3), ("c".into(), 2), ("d".into(), 4)]
        );
        assert_eq!(ids(&v2).len(), 3);
    }

    #[test]
    fn long_chains_fold_and_match_a_plain_list() {
        let mut head = NodeAllocs::from_vec(Vec::new());
        let mut plain: Vec<(String, u64)> = Vec::new();
        let mut keep = Vec::new();
        for i in 0..100u64 {
            keep.push(Arc::clone(&head));
            let id = format!("a{}", i % 37);
            let replaces = plain.iter().any(|(x, _)| *x == id);
            match plain.iter().position(|(x, _)| *x == id) {
                Some(p) => plain[p].1 = i,
                None => plain.push((id.clone(), i)),
            }
            NodeAllocs::push(&mut head, alloc(&id, i), replaces);
            assert!(head.depth <= MAX_DEPTH);
            if i % 7 == 0 {
                // Reads in between build some links and not others.
                assert_eq!(ids(&head), plain);
            }
        }
        assert_eq!(ids(&head), plain);
        assert!(keep.iter().all(|k| k.as_slice().len() <= 37));
    }
}
