//! A keyed, de-duplicating, delaying work queue (client-go's workqueue semantics): a key queued
//! twice is one entry with the earlier deadline; a key is never handed to two workers at once; a
//! key re-added while it runs is handed out again once the current run ends.
//!
//! Fair across groups (sites): a key may belong to a group ([`WorkQueue::set_group`]); among the
//! keys due, the next one comes from the group served least recently (ties: earliest deadline),
//! so a site with fifty due keys gets one turn per round like a site with one. Keys without a
//! group rank by their own last turn.
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
    /// The group of a key (its site), when known.
    groups: HashMap<K, String>,
    /// When a group (or an ungrouped key) last had a turn, as a hand-out counter.
    group_turn: HashMap<String, u64>,
    key_turn: HashMap<K, u64>,
    turns: u64,
    /// When each waiting key was queued, as a counter: the last tie-break (first queued, first
    /// out), so the order never depends on the hash map's.
    queued_seq: HashMap<K, u64>,
    queued: u64,
}

impl<K: Eq + Hash + Clone> State<K> {
    fn last_turn(&self, key: &K) -> u64 {
        match self.groups.get(key) {
            Some(g) => self.group_turn.get(g).copied().unwrap_or(0),
            None => self.key_turn.get(key).copied().unwrap_or(0),
        }
    }

    fn take_turn(&mut self, key: &K) {
        self.turns += 1;
        let n = self.turns;
        if n % 4096 == 0 {
            // forget the turns of ungrouped keys no longer queued (a forgotten key merely ranks
            // as never served next time)
            let (pending, running, again) = (&self.pending, &self.running, &self.again);
            self.key_turn.retain(|k, _| {
                pending.contains_key(k) || running.contains(k) || again.contains_key(k)
            });
        }
        match self.groups.get(key) {
            Some(g) => {
                let g = g.clone();
                self.group_turn.insert(g, n);
            }
            None => {
                self.key_turn.insert(key.clone(), n);
            }
        }
    }
}

impl<K: Eq + Hash + Clone> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                pending: HashMap::new(),
                running: HashSet::new(),
                again: HashMap::new(),
                closed: false,
                groups: HashMap::new(),
                group_turn: HashMap::new(),
                key_turn: HashMap::new(),
                turns: 0,
                queued_seq: HashMap::new(),
                queued: 0,
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> WorkQueue<K> {
    /// Puts `key` in `group` (its site) for fair hand-out; kept until [`Self::forget`].
    pub fn set_group(&self, key: K, group: &str) {
        let mut s = self.state.lock().expect("queue lock");
        if s.groups.get(&key).map(String::as_str) != Some(group) {
            s.groups.insert(key, group.to_string());
        }
    }

    /// Queues `key` (as [`Self::add`]) in `group`.
    pub fn add_in(&self, key: K, group: &str) {
        self.set_group(key.clone(), group);
        self.add(key);
    }

    /// Keeps the groups only of the keys `keep` accepts (the resync drops deleted resources').
    pub fn retain_groups(&self, keep: impl Fn(&K) -> bool) {
        self.state
            .lock()
            .expect("queue lock")
            .groups
            .retain(|k, _| keep(k));
    }

    /// Drops what the queue remembers of `key` (its group and turn), e.g. once it is deleted.
    pub fn forget(&self, key: &K) {
        let mut s = self.state.lock().expect("queue lock");
        s.groups.remove(key);
        s.key_turn.remove(key);
    }

    /// Queues `key` to run at `at` (or earlier if it is already queued for earlier).
    pub fn add_at(&self, key: K, at: Instant) {
        let mut s = self.state.lock().expect("queue lock");
        if !s.queued_seq.contains_key(&key) {
            s.queued += 1;
            let n = s.queued;
            s.queued_seq.insert(key.clone(), n);
        }
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
                    .min_by_key(|(k, t)| {
                        (
                            s.last_turn(k),
                            **t,
                            s.queued_seq.get(*k).copied().unwrap_or(0),
                        )
                    })
                    .map(|(k, _)| k.clone());
                if let Some(k) = due {
                    s.pending.remove(&k);
                    s.queued_seq.remove(&k);
                    s.running.insert(k.clone());
                    s.take_turn(&k);
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

    /// A site with 50 due keys does not starve a site with one: the lone key is handed out
    /// within the first two, and the busy site's keys then alternate with any other site's.
    #[tokio::test(start_paused = true)]
    async fn a_busy_site_does_not_starve_another() {
        let q = WorkQueue::default();
        for i in 0..50 {
            q.add_in(format!("busy-{i}"), "site-a");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // added last, so it is the youngest: a plain deadline order would hand it out last
        q.add_in("lone".to_string(), "site-b");
        let mut order = Vec::new();
        while !q.is_empty() {
            let k = q.next().await.unwrap();
            q.done(&k);
            order.push(k);
            if order.len() == 10 {
                // a third site arrives while site-a still has 40 keys due
                q.add_in("late".to_string(), "site-c");
            }
        }
        let pos = |k: &str| order.iter().position(|x| x == k).unwrap();
        assert!(pos("lone") < 2, "{order:?}");
        assert!(pos("late") <= 11, "{order:?}");
        // within site-a, oldest first
        assert_eq!(order[0], "busy-0");
        assert_eq!(order.len(), 52);
    }

    #[tokio::test(start_paused = true)]
    async fn ungrouped_keys_take_turns_too() {
        let q = WorkQueue::default();
        q.add_in(1, "s");
        q.add_in(2, "s");
        tokio::time::sleep(Duration::from_millis(1)).await;
        q.add(3);
        assert_eq!(q.next().await, Some(1));
        // 3 never had a turn; site s just had one
        assert_eq!(q.next().await, Some(3));
        assert_eq!(q.next().await, Some(2));
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
