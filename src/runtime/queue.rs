//! A keyed, de-duplicating, delaying work queue (client-go's workqueue semantics): a key queued
//! twice is one entry with the earlier deadline; a key is never handed to two workers at once; a
//! key re-added while it runs is handed out again once the current run ends.
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
}

struct State<K> {
    /// Keys waiting, with the earliest time they may run.
    pending: HashMap<K, Instant>,
    running: HashSet<K>,
    /// Keys added while running: they go back to `pending` when the run ends.
    again: HashMap<K, Instant>,
    closed: bool,
}

impl<K: Eq + Hash + Clone> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                pending: HashMap::new(),
                running: HashSet::new(),
                again: HashMap::new(),
                closed: false,
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> WorkQueue<K> {
    /// Queues `key` to run at `at` (or earlier if it is already queued for earlier).
    pub fn add_at(&self, key: K, at: Instant) {
        let mut s = self.state.lock().expect("queue lock");
        let slot = if s.running.contains(&key) {
            s.again.entry(key)
        } else {
            s.pending.entry(key)
        };
        slot.and_modify(|t| *t = (*t).min(at)).or_insert(at);
        drop(s);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub fn add(&self, key: K) {
        self.add_at(key, Instant::now());
    }

    pub fn add_after(&self, key: K, after: std::time::Duration) {
        self.add_at(key, Instant::now() + after);
    }

    /// Waits for the next due key and marks it running. `None` once the queue is closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.wake.notified();
            let wait_until = {
                let mut s = self.state.lock().expect("queue lock");
                if s.closed {
                    return None;
                }
                let now = Instant::now();
                let due = s
                    .pending
                    .iter()
                    .filter(|(_, t)| **t <= now)
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone());
                if let Some(k) = due {
                    s.pending.remove(&k);
                    s.running.insert(k.clone());
                    return Some(k);
                }
                s.pending.values().min().copied()
            };
            match wait_until {
                Some(t) => {
                    tokio::select! {
                        _ = notified => {},
                        _ = tokio::time::sleep_until(t) => {},
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` finished; a re-add that came in meanwhile becomes pending.
    pub fn done(&self, key: &K) {
        let mut s = self.state.lock().expect("queue lock");
        s.running.remove(key);
        if let Some(at) = s.again.remove(key) {
            let slot = s.pending.entry(key.clone()).or_insert(at);
            *slot = (*slot).min(at);
        }
        drop(s);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub fn close(&self) {
        self.state.lock().expect("queue lock").closed = true;
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub fn len(&self) -> usize {
        let s = self.state.lock().expect("queue lock");
        s.pending.len() + s.again.len()
    }

    /// Keys due now, keys waiting for later, keys being worked, and how long the longest-waiting
    /// due key has been due (the metrics' queue depth and age).
    pub fn depth(&self) -> (usize, usize, usize, std::time::Duration) {
        let s = self.state.lock().expect("queue lock");
        let now = Instant::now();
        let mut ready = 0;
        let mut oldest = std::time::Duration::ZERO;
        for at in s.pending.values() {
            if *at <= now {
                ready += 1;
                oldest = oldest.max(now - *at);
            }
        }
        (
            ready,
            s.pending.len() - ready + s.again.len(),
            s.running.len(),
            oldest,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn dedups_and_keeps_the_earlier_deadline() {
        let q = WorkQueue::default();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2));
        q.add_after("a", Duration::from_secs(5));
        assert_eq!(q.len(), 1);
        let start = Instant::now();
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_twice_but_runs_again_after() {
        let q = Arc::new(WorkQueue::default());
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.add("a");
        q.add("b");
        // "a" is running: the next key is "b", and "a" waits for done().
        assert_eq!(q.next().await, Some("b"));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        q.done(&"a");
        assert_eq!(waiter.await.unwrap(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn earliest_due_first_and_close_ends_waiters() {
        let q = Arc::new(WorkQueue::default());
        q.add_after(1, Duration::from_secs(3));
        q.add_after(2, Duration::from_secs(1));
        assert_eq!(q.next().await, Some(2));
        assert_eq!(q.next().await, Some(1));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_is_woken_by_an_add() {
        let q = Arc::new(WorkQueue::default());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiter.is_finished());
        q.add("x");
        assert_eq!(waiter.await.unwrap(), Some("x"));
    }
}
