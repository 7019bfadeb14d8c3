//! Blocked evaluations: evaluations that could not place everything, held until capacity
//! changes in a way that could help them.

use std::collections::HashMap;
use std::sync::Mutex;

use nomad_core::structs::Evaluation;

type JobKey = (String, String);

/// The blocked evaluations, at most one per job (a newer one supersedes the older).
#[derive(Default)]
pub struct BlockedEvals {
    by_job: Mutex<HashMap<JobKey, Evaluation>>,
}

impl BlockedEvals {
    /// An empty set.
    pub fn new() -> Self {
        BlockedEvals::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, Evaluation>> {
        match self.by_job.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Holds an evaluation; returns the one it supersedes, to be canceled.
    pub fn block(&self, eval: Evaluation) -> Option<Evaluation> {
        let ns = if eval.namespace.is_empty() {
            "default"
        } else {
            eval.namespace.as_str()
        };
        let k = (ns.to_string(), eval.job_id.clone());
        let mut m = self.lock();
        match m.get(&k) {
            Some(cur) if cur.id == eval.id => None,
            Some(cur) if cur.create_index > eval.create_index => Some(eval),
            _ => m.insert(k, eval),
        }
    }

    /// Releases the evaluations that nodes of one of `classes` could help: those whose
    /// constraints escape computed classes, that have not seen the class, or found it
    /// eligible. An empty `classes` releases every evaluation.
    pub fn unblock(&self, classes: &[String]) -> Vec<Evaluation> {
        let mut m = self.lock();
        let keys: Vec<JobKey> = m
            .iter()
            .filter(|(_, e)| {
                classes.is_empty()
                    || e.escaped_computed_class
                    || classes
                        .iter()
                        .any(|c| e.class_eligibility.get(c).copied().unwrap_or(true))
            })
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter().filter_map(|k| m.remove(&k)).collect()
    }

    /// Drops the blocked evaluation of a job (the job was stopped or re-registered).
    pub fn untrack(&self, namespace: &str, job_id: &str) -> Option<Evaluation> {
        let ns = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        self.lock().remove(&(ns.to_string(), job_id.to_string()))
    }

    /// How many evaluations are blocked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is blocked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblocks_by_class_eligibility() {
        let b = BlockedEvals::new();
        let mut e1 = Evaluation {
            id: "e1".into(),
            job_id: "a".into(),
            ..Evaluation::default()
        };
        e1.class_eligibility.insert("c1".into(), false);
        let mut e2 = Evaluation {
            id: "e2".into(),
            job_id: "b".into(),
            ..Evaluation::default()
        };
        e2.class_eligibility.insert("c1".into(), true);
        b.block(e1);
        b.block(e2);
        let got: Vec<String> = b
            .unblock(&["c1".into()])
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(got, ["e2"]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.unblock(&[]).len(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn newer_blocked_eval_supersedes() {
        let b = BlockedEvals::new();
        b.block(Evaluation {
            id: "e1".into(),
            job_id: "a".into(),
            create_index: 1,
            ..Evaluation::default()
        });
        let old = b.block(Evaluation {
            id: "e2".into(),
            job_id: "a".into(),
            create_index: 2,
            ..Evaluation::default()
        });
        assert_eq!(old.map(|e| e.id), Some("e1".to_string()));
        assert_eq!(b.len(), 1);
    }
}
