//! Driver events: how a driver tells the task runner what happened to a task.
//!
//! The runner hands each driver an [`EventSink`] through
//! [`TaskDriver::events`](super::TaskDriver::events); the driver calls [`EventSink::emit`] from
//! wherever it learns something (an image being pulled, a kill escalated). `emit` is a plain,
//! non-blocking function, so the contract needs no async runtime: a runner built on tokio
//! forwards events into an unbounded channel, a test collects them in an [`EventBuffer`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Something a driver reports about a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverEvent {
    /// The task the event is about.
    pub task_id: String,
    /// The task's allocation.
    pub alloc_id: String,
    /// The task's name.
    pub task_name: String,
    /// When it happened.
    pub timestamp: SystemTime,
    /// What happened, for people: `Downloading image busybox:1.36`.
    pub message: String,
    /// Structured details: `image`, `signal`, ...
    pub annotations: BTreeMap<String, String>,
}

impl DriverEvent {
    /// An event about `config`'s task saying `message`, stamped now.
    pub fn new(config: &super::TaskConfig, message: impl Into<String>) -> Self {
        Self {
            task_id: config.id.clone(),
            alloc_id: config.alloc_id.clone(),
            task_name: config.task_name.clone(),
            timestamp: SystemTime::now(),
            message: message.into(),
            annotations: BTreeMap::new(),
        }
    }

    /// Adds an annotation.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
}

/// A receiver of driver events. Implementations must not block: queue the event and return.
pub trait EventSink: Send + Sync {
    /// Receives one event.
    fn emit(&self, event: DriverEvent);
}

impl<F> EventSink for F
where
    F: Fn(DriverEvent) + Send + Sync,
{
    fn emit(&self, event: DriverEvent) {
        self(event)
    }
}

/// An [`EventSink`] that keeps every event it receives, for tests and simple embedders.
#[derive(Debug, Default)]
pub struct EventBuffer {
    events: Mutex<Vec<DriverEvent>>,
}

impl EventBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events received so far, oldest first.
    pub fn events(&self) -> Vec<DriverEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl EventSink for EventBuffer {
    fn emit(&self, event: DriverEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

/// The subscribers of one driver: drivers keep one and call [`EventFanout::emit`]; every sink
/// given to [`TaskDriver::events`](super::TaskDriver::events) receives every later event.
#[derive(Default)]
pub struct EventFanout {
    sinks: Mutex<Vec<Arc<dyn EventSink>>>,
}

impl EventFanout {
    /// No subscribers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber.
    pub fn subscribe(&self, sink: Arc<dyn EventSink>) {
        self.sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sink);
    }

    /// Sends `event` to every subscriber.
    pub fn emit(&self, event: DriverEvent) {
        let sinks = self
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for sink in sinks {
            sink.emit(event.clone());
        }
    }
}

impl std::fmt::Debug for EventFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("EventFanout")
            .field("subscribers", &count)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_receives_every_event() {
        let fanout = EventFanout::new();
        let first = Arc::new(EventBuffer::new());
        let second = Arc::new(EventBuffer::new());
        fanout.subscribe(first.clone());
        fanout.emit(DriverEvent::new(&Default::default(), "before"));
        fanout.subscribe(second.clone());
        let config = crate::driver::TaskConfig {
            id: "t1".into(),
            ..Default::default()
        };
        fanout.emit(DriverEvent::new(&config, "after").with_annotation("signal", "SIGTERM"));
        let seen: Vec<_> = first.events().into_iter().map(|e| e.message).collect();
        assert_eq!(seen, ["before", "after"]);
        let late = second.events();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].task_id, "t1");
        assert_eq!(late[0].annotations["signal"], "SIGTERM");
    }

    #[test]
    fn closures_are_sinks() {
        let seen = Arc::new(Mutex::new(0));
        let counter = seen.clone();
        let sink: Arc<dyn EventSink> = Arc::new(move |_event: DriverEvent| {
            *counter.lock().unwrap() += 1;
        });
        sink.emit(DriverEvent::new(&Default::default(), "x"));
        assert_eq!(*seen.lock().unwrap(), 1);
    }
}
