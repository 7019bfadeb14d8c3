//! The eval broker: hands evaluations to scheduler workers, at least once.
//!
//! - One ready queue per scheduler type, highest priority first, then oldest first.
//! - At most one evaluation per job is outstanding (ready or being processed); later ones
//!   for the same job wait behind it, and when it is acked only the newest waiting one is
//!   released (the others are handed back through [`EvalBroker::take_cancelable`]).
//! - A dequeued evaluation must be acked or nacked with the token it came with; a nack (or
//!   no answer within the nack timeout) requeues it after a delay, until it has been
//!   delivered `delivery_limit` times, when it goes to [`EvalBroker::take_failed`].
//! - Evaluations with a `wait_until` in the future (or a `wait`) are held until then.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use nomad_core::structs::Evaluation;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ServerError;

/// Settings of the [`EvalBroker`] (Nomad's defaults).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Deliveries before an evaluation is given up on.
    pub delivery_limit: u32,
    /// How long a worker may hold an evaluation without acking it.
    pub nack_timeout: Duration,
    /// Delay before redelivering after the first nack.
    pub initial_nack_delay: Duration,
    /// Delay before redelivering after later nacks.
    pub subsequent_nack_delay: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            delivery_limit: 3,
            nack_timeout: Duration::from_secs(60),
            initial_nack_delay: Duration::from_secs(1),
            subsequent_nack_delay: Duration::from_secs(20),
        }
    }
}

type JobKey = (String, String);

fn job_key(e: &Evaluation) -> JobKey {
    let ns = if e.namespace.is_empty() {
        "default"
    } else {
        e.namespace.as_str()
    };
    (ns.to_string(), e.job_id.clone())
}

struct Ready {
    eval: Evaluation,
    seq: u64,
}

impl PartialEq for Ready {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == CmpOrdering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ready {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        // Max-heap: higher priority first, then the older (lower create index, then lower
        // sequence) first.
        self.eval
            .priority
            .cmp(&o.eval.priority)
            .then_with(|| o.eval.create_index.cmp(&self.eval.create_index))
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

struct Unacked {
    eval: Evaluation,
    token: String,
    deadline: Instant,
}

struct Delayed {
    at: Instant,
    eval: Evaluation,
    /// The evaluation still holds its job's outstanding slot (a nack requeue).
    owns_slot: bool,
}

#[derive(Default)]
struct BrokerState {
    enabled: bool,
    seq: u64,
    ready: HashMap<String, BinaryHeap<Ready>>,
    unack: HashMap<String, Unacked>,
    job_slot: HashMap<JobKey, String>,
    waiting: HashMap<JobKey, Vec<Evaluation>>,
    delayed: Vec<Delayed>,
    deliveries: HashMap<String, u32>,
    known: HashSet<String>,
    failed: Vec<Evaluation>,
    cancelable: Vec<Evaluation>,
    total_acked: u64,
    total_nacked: u64,
}

/// Counts of the broker's queues, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Ready evaluations, all schedulers.
    pub ready: usize,
    /// Ready evaluations per scheduler type.
    pub ready_by_scheduler: Vec<(String, usize)>,
    /// Evaluations being processed.
    pub unacked: usize,
    /// Evaluations waiting behind another of the same job.
    pub waiting: usize,
    /// Evaluations held until a time.
    pub delayed: usize,
    /// Evaluations that reached the delivery limit and are not yet collected.
    pub failed: usize,
    /// Acks so far.
    pub total_acked: u64,
    /// Nacks so far (timeouts included).
    pub total_nacked: u64,
}

/// The eval broker. See the module documentation for its semantics.
pub struct EvalBroker {
    cfg: BrokerConfig,
    state: Mutex<BrokerState>,
    notify: Notify,
}

fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl EvalBroker {
    /// A disabled broker (call [`EvalBroker::set_enabled`] on gaining leadership).
    pub fn new(cfg: BrokerConfig) -> Self {
        EvalBroker {
            cfg,
            state: Mutex::new(BrokerState::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Enables the broker, or disables it and drops everything it holds.
    pub fn set_enabled(&self, enabled: bool) {
        let mut s = self.lock();
        if !enabled {
            *s = BrokerState::default();
        }
        s.enabled = enabled;
        drop(s);
        self.notify.notify_waiters();
    }

    /// True when enabled.
    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// Adds an evaluation. An evaluation already held is ignored.
    pub fn enqueue(&self, eval: Evaluation) {
        let mut s = self.lock();
        if !s.enabled || s.known.contains(&eval.id) {
            return;
        }
        s.known.insert(eval.id.clone());
        let mut hold = Duration::ZERO;
        if eval.wait_until > 0 {
            let now = now_unix_nanos();
            if eval.wait_until > now {
                hold = Duration::from_nanos((eval.wait_until - now) as u64);
            }
        }
        let wait = eval.wait.to_std();
        if wait > hold {
            hold = wait;
        }
        if hold > Duration::ZERO {
            s.delayed.push(Delayed {
                at: Instant::now() + hold,
                eval,
                owns_slot: false,
            });
        } else {
            Self::enqueue_ready(&mut s, eval);
        }
        drop(s);
        self.notify.notify_waiters();
    }

    fn enqueue_ready(s: &mut BrokerState, eval: Evaluation) {
        let k = job_key(&eval);
        match s.job_slot.get(&k) {
            Some(owner) if owner != &eval.id => {
                s.waiting.entry(k).or_default().push(eval);
            }
            _ => {
                s.job_slot.insert(k, eval.id.clone());
                Self::push_ready(s, eval);
            }
        }
    }

    fn push_ready(s: &mut BrokerState, eval: Evaluation) {
        s.seq += 1;
        let seq = s.seq;
        s.ready
            .entry(eval.eval_type.clone())
            .or_default()
            .push(Ready { eval, seq });
    }

    /// Moves due delayed evaluations to ready and nacks deliveries past their timeout.
    /// Returns the next time something becomes due.
    fn tick(&self, s: &mut BrokerState, now: Instant) -> Option<Instant> {
        let (due, later): (Vec<Delayed>, Vec<Delayed>) = std::mem::take(&mut s.delayed)
            .into_iter()
            .partition(|d| d.at <= now);
        s.delayed = later;
        for d in due {
            if d.owns_slot {
                Self::push_ready(s, d.eval);
            } else {
                Self::enqueue_ready(s, d.eval);
            }
        }
        let expired: Vec<String> = s
            .unack
            .iter()
            .filter(|(_, u)| u.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(u) = s.unack.remove(&id) {
                tracing::warn!(eval = %id, "evaluation not acked in time; nacking");
                self.requeue_nacked(s, u.eval, now);
            }
        }
        let next_delay = s.delayed.iter().map(|d| d.at).min();
        let next_unack = s.unack.values().map(|u| u.deadline).min();
        match (next_delay, next_unack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn requeue_nacked(&self, s: &mut BrokerState, eval: Evaluation, now: Instant) {
        s.total_nacked += 1;
        let n = s.deliveries.get(&eval.id).copied().unwrap_or(0);
        if n >= self.cfg.delivery_limit {
            s.deliveries.remove(&eval.id);
            s.known.remove(&eval.id);
            self.release_slot(s, &eval);
            s.failed.push(eval);
            return;
        }
        let delay = if n <= 1 {
            self.cfg.initial_nack_delay
        } else {
            self.cfg.subsequent_nack_delay
        };
        s.delayed.push(Delayed {
            at: now + delay,
            eval,
            owns_slot: true,
        });
    }

    fn release_slot(&self, s: &mut BrokerState, eval: &Evaluation) {
        let k = job_key(eval);
        if s.job_slot.get(&k).is_some_and(|o| o == &eval.id) {
            s.job_slot.remove(&k);
        }
        if let Some(mut waiting) = s.waiting.remove(&k) {
            // Release the newest; the rest are superseded by it.
            waiting.sort_by_key(|e| (e.create_index, e.modify_index));
            if let Some(next) = waiting.pop() {
                for old in waiting {
                    s.known.remove(&old.id);
                    s.cancelable.push(old);
                }
                s.job_slot.insert(k, next.id.clone());
                Self::push_ready(s, next);
            }
        }
    }

    /// Waits up to `timeout` for an evaluation of one of `schedulers`; returns it with the
    /// token to ack or nack it with.
    pub async fn dequeue(
        &self,
        schedulers: &[&str],
        timeout: Duration,
    ) -> Result<Option<(Evaluation, String)>, ServerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut s = self.lock();
                if !s.enabled {
                    return Err(ServerError::BrokerDisabled);
                }
                let now = Instant::now();
                let next = self.tick(&mut s, now);
                if let Some(got) = self.pick(&mut s, schedulers, now) {
                    return Ok(Some(got));
                }
                next
            };
            let wake = match next_due {
                Some(t) => t.min(deadline),
                None => deadline,
            };
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    fn pick(
        &self,
        s: &mut BrokerState,
        schedulers: &[&str],
        now: Instant,
    ) -> Option<(Evaluation, String)> {
        let best = schedulers
            .iter()
            .filter_map(|t| s.ready.get(*t).and_then(|h| h.peek()).map(|r| (*t, r)))
            .max_by(|a, b| a.1.cmp(b.1))
            .map(|(t, _)| t.to_string())?;
        let ready = s.ready.get_mut(&best)?.pop()?;
        let token = crate::new_id();
        *s.deliveries.entry(ready.eval.id.clone()).or_insert(0) += 1;
        s.unack.insert(
            ready.eval.id.clone(),
            Unacked {
                eval: ready.eval.clone(),
                token: token.clone(),
                deadline: now + self.cfg.nack_timeout,
            },
        );
        Some((ready.eval, token))
    }

    /// Acknowledges an evaluation: it was processed and leaves the broker.
    pub fn ack(&self, eval_id: &str, token: &str) -> Result<(), ServerError> {
        let mut s = self.lock();
        match s.unack.get(eval_id) {
            None => return Err(ServerError::NotOutstanding(eval_id.to_string())),
            Some(u) if u.token != token => {
                return Err(ServerError::TokenMismatch(eval_id.to_string()))
            }
            Some(_) => {}
        }
        if let Some(u) = s.unack.remove(eval_id) {
            s.deliveries.remove(eval_id);
            s.known.remove(eval_id);
            s.total_acked += 1;
            self.release_slot(&mut s, &u.eval);
        }
        drop(s);
        self.notify.notify_waiters();
        Ok(())
    }

    /// Negatively acknowledges an evaluation: it is delivered again after a delay, or
    /// fails once it reached the delivery limit.
    pub fn nack(&self, eval_id: &str, token: &str) -> Result<(), ServerError> {
        let mut s = self.lock();
        match s.unack.get(eval_id) {
            None => return Err(ServerError::NotOutstanding(eval_id.to_string())),
            Some(u) if u.token != token => {
                return Err(ServerError::TokenMismatch(eval_id.to_string()))
            }
            Some(_) => {}
        }
        if let Some(u) = s.unack.remove(eval_id) {
            self.requeue_nacked(&mut s, u.eval, Instant::now());
        }
        drop(s);
        self.notify.notify_waiters();
        Ok(())
    }

    /// The token of the outstanding delivery of an evaluation.
    pub fn outstanding(&self, eval_id: &str) -> Option<String> {
        self.lock().unack.get(eval_id).map(|u| u.token.clone())
    }

    /// Restarts the nack timeout of an outstanding delivery (a worker still busy with it).
    pub fn outstanding_reset(&self, eval_id: &str, token: &str) -> Result<(), ServerError> {
        let mut s = self.lock();
        let timeout = self.cfg.nack_timeout;
        match s.unack.get_mut(eval_id) {
            None => Err(ServerError::NotOutstanding(eval_id.to_string())),
            Some(u) if u.token != token => Err(ServerError::TokenMismatch(eval_id.to_string())),
            Some(u) => {
                u.deadline = Instant::now() + timeout;
                Ok(())
            }
        }
    }

    /// Evaluations that reached the delivery limit since the last call.
    pub fn take_failed(&self) -> Vec<Evaluation> {
        std::mem::take(&mut self.lock().failed)
    }

    /// Evaluations superseded by a newer one of the same job since the last call.
    pub fn take_cancelable(&self) -> Vec<Evaluation> {
        std::mem::take(&mut self.lock().cancelable)
    }

    /// Queue sizes.
    pub fn stats(&self) -> BrokerStats {
        let s = self.lock();
        let mut by: Vec<(String, usize)> =
            s.ready.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        by.sort();
        BrokerStats {
            ready: by.iter().map(|(_, n)| n).sum(),
            ready_by_scheduler: by,
            unacked: s.unack.len(),
            waiting: s.waiting.values().map(Vec::len).sum(),
            delayed: s.delayed.len(),
            failed: s.failed.len(),
            total_acked: s.total_acked,
            total_nacked: s.total_nacked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, job: &str, prio: i32, create: u64) -> Evaluation {
        Evaluation {
            id: id.into(),
            job_id: job.into(),
            namespace: "default".into(),
            priority: prio,
            eval_type: "service".into(),
            create_index: create,
            status: "pending".into(),
            ..Evaluation::default()
        }
    }

    fn broker() -> EvalBroker {
        let b = EvalBroker::new(BrokerConfig {
            delivery_limit: 2,
            nack_timeout: Duration::from_secs(5),
            initial_nack_delay: Duration::from_millis(100),
            subsequent_nack_delay: Duration::from_millis(200),
        });
        b.set_enabled(true);
        b
    }

    const T: Duration = Duration::from_millis(10);

    #[tokio::test(start_paused = true)]
    async fn higher_priority_first_then_fifo() {
        let b = broker();
        b.enqueue(ev("low", "a", 10, 1));
        b.enqueue(ev("high", "b", 90, 3));
        b.enqueue(ev("mid1", "c", 50, 2));
        b.enqueue(ev("mid2", "d", 50, 4));
        let mut order = Vec::new();
        while let Some((e, tok)) = b.dequeue(&["service"], T).await.expect("enabled") {
            b.ack(&e.id, &tok).expect("ack");
            order.push(e.id);
        }
        assert_eq!(order, ["high", "mid1", "mid2", "low"]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_outstanding_per_job_and_newest_waiting_wins() {
        let b = broker();
        b.enqueue(ev("e1", "web", 50, 1));
        b.enqueue(ev("e2", "web", 50, 2));
        b.enqueue(ev("e3", "web", 50, 3));
        let (first, tok) = b.dequeue(&["service"], T).await.expect("ok").expect("eval");
        assert_eq!(first.id, "e1");
        assert!(b.dequeue(&["service"], T).await.expect("ok").is_none());
        b.ack("e1", &tok).expect("ack");
        let (next, _) = b.dequeue(&["service"], T).await.expect("ok").expect("eval");
        assert_eq!(next.id, "e3");
        let canceled: Vec<String> = b.take_cancelable().into_iter().map(|e| e.id).collect();
        assert_eq!(canceled, ["e2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn ack_and_nack_need_the_current_token() {
        let b = broker();
        b.enqueue(ev("e1", "web", 50, 1));
        let (_, tok) = b.dequeue(&["service"], T).await.expect("ok").expect("eval");
        assert!(matches!(
            b.ack("e1", "wrong"),
            Err(ServerError::TokenMismatch(_))
        ));
        assert!(matches!(
            b.ack("nope", &tok),
            Err(ServerError::NotOutstanding(_))
        ));
        assert_eq!(b.outstanding("e1"), Some(tok.clone()));
        b.ack("e1", &tok).expect("ack");
        assert!(b.outstanding("e1").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn nack_requeues_after_delay_until_delivery_limit() {
        let b = broker();
        b.enqueue(ev("e1", "web", 50, 1));
        let (_, tok) = b.dequeue(&["service"], T).await.expect("ok").expect("eval");
        b.nack("e1", &tok).expect("nack");
        // Not before the delay.
        assert!(b
            .dequeue(&["service"], Duration::from_millis(50))
            .await
            .expect("ok")
            .is_none());
        let (again, tok2) = b
            .dequeue(&["service"], Duration::from_secs(1))
            .await
            .expect("ok")
            .expect("redelivered");
        assert_eq!(again.id, "e1");
        // Second delivery is the last one allowed.
        b.nack("e1", &tok2).expect("nack");
        assert!(b
            .dequeue(&["service"], Duration::from_secs(1))
            .await
            .expect("ok")
            .is_none());
        let failed: Vec<String> = b.take_failed().into_iter().map(|e| e.id).collect();
        assert_eq!(failed, ["e1"]);
        // The job's slot is free again.
        b.enqueue(ev("e2", "web", 50, 2));
        assert!(b.dequeue(&["service"], T).await.expect("ok").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn unacked_delivery_times_out_into_a_nack() {
        let b = broker();
        b.enqueue(ev("e1", "web", 50, 1));
        let (_, _tok) = b.dequeue(&["service"], T).await.expect("ok").expect("eval");
        let (again, _) = b
            .dequeue(&["service"], Duration::from_secs(10))
            .await
            .expect("ok")
            .expect("redelivered after the nack timeout");
        assert_eq!(again.id, "e1");
        assert_eq!(b.stats().total_nacked, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn schedulers_are_separate_queues_and_disabled_broker_refuses() {
        let b = broker();
        let mut sys = ev("s1", "agent", 50, 1);
        sys.eval_type = "system".into();
        b.enqueue(sys);
        assert!(b.dequeue(&["service"], T).await.expect("ok").is_none());
        assert!(b.dequeue(&["system"], T).await.expect("ok").is_some());
        b.set_enabled(false);
        assert!(matches!(
            b.dequeue(&["service"], T).await,
            Err(ServerError::BrokerDisabled)
        ));
    }
}
