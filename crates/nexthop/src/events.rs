//! The controller's event log (`GET /v1/events`): health changes, failovers and BGP sessions
//! coming and going, numbered in order and kept in a bounded ring ([`EVENTS_KEPT`]). Producers
//! (the LB tasks, the instance tasks) push; readers ask for what came after the last `seq` they
//! saw, and may wait for it (long poll).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use api_types::{Event, EventsAnswer, EVENTS_KEPT};
use tokio::sync::watch;

/// A handle on the log; clones share it.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    log: Mutex<VecDeque<Event>>,
    /// The `seq` of the newest event; long polls wait on it.
    last: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                log: Mutex::new(VecDeque::with_capacity(EVENTS_KEPT)),
                last: watch::channel(0).0,
            }),
        }
    }
}

impl EventLog {
    /// Appends `e` (its `seq` and `at` are set here), dropping the oldest event when full.
    pub fn push(&self, mut e: Event) {
        let mut log = self.inner.log.lock().unwrap_or_else(|p| p.into_inner());
        e.seq = log.back().map_or(1, |l| l.seq + 1);
        e.at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let seq = e.seq;
        if log.len() == EVENTS_KEPT {
            log.pop_front();
        }
        log.push_back(e);
        drop(log);
        self.inner.last.send_replace(seq);
    }

    /// The events after `since`, and how many after it are gone from the log. A `since` past
    /// the newest event (a reader of a controller that restarted and counts from 1 again) reads
    /// from the start.
    pub fn since(&self, since: u64) -> EventsAnswer {
        let log = self.inner.log.lock().unwrap_or_else(|p| p.into_inner());
        let last = log.back().map_or(0, |e| e.seq);
        let since = if since > last { 0 } else { since };
        let first = log.front().map_or(last + 1, |e| e.seq);
        let events: Vec<Event> = log.iter().filter(|e| e.seq > since).cloned().collect();
        EventsAnswer {
            missed: first
                .saturating_sub(since.saturating_add(1))
                .min(last.saturating_sub(since)),
            events,
            last,
        }
    }

    /// A receiver of the newest `seq`, for a long poll.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.last.subscribe()
    }
}

/// An event with only its kind and text set; fill the rest with struct update syntax.
pub fn event(kind: api_types::EventKind, text: String) -> Event {
    Event {
        seq: 0,
        at: 0.0,
        kind,
        lb: None,
        backend: None,
        instance: None,
        peer: None,
        from: None,
        to: None,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::EventKind;

    #[test]
    fn numbered_bounded_and_read_from_a_position() {
        let log = EventLog::default();
        assert_eq!(log.since(0).last, 0);
        for i in 0..EVENTS_KEPT + 5 {
            log.push(event(EventKind::Health, format!("e{i}")));
        }
        let all = log.since(0);
        assert_eq!(all.events.len(), EVENTS_KEPT);
        assert_eq!(all.last, EVENTS_KEPT as u64 + 5);
        assert_eq!(all.events[0].seq, 6, "the oldest five were dropped");
        assert_eq!(all.missed, 5);
        let tail = log.since(all.last - 2);
        assert_eq!(tail.events.len(), 2);
        assert_eq!(tail.missed, 0);
        assert_eq!(tail.events[1].text, format!("e{}", EVENTS_KEPT + 4));
        assert!(log.since(all.last).events.is_empty());
        // From a controller before a restart: read from the start, no overflow.
        assert_eq!(log.since(u64::MAX).events.len(), EVENTS_KEPT);
        assert_eq!(*log.subscribe().borrow(), all.last);
    }
}
