//! Per-endpoint-host concurrency of push deliveries, so a slow host delays only its own pushes.
//!
//! Each host has two semaphores: `admit` bounds the deliveries a host may have at all (running
//! or waiting, [`MAX_HOST_BACKLOG`]), `run` those running ([`MAX_PER_HOST`]). Entries exist only
//! while a [`HostTicket`] holds them: the last ticket of a host removes its entry, so the map
//! does not grow with the hosts ever seen.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Push requests running at once to one host.
pub(crate) const MAX_PER_HOST: usize = 16;
/// Deliveries one host may have, running or waiting for a `run` permit.
pub(crate) const MAX_HOST_BACKLOG: usize = 64;
/// Hosts tracked at once (a safety net: entries live only while deliveries hold them).
const MAX_HOSTS: usize = 4096;

#[derive(Debug)]
struct HostSlot {
    admit: Arc<Semaphore>,
    run: Arc<Semaphore>,
}

/// The per-host semaphores of the hosts with deliveries.
#[derive(Clone, Debug, Default)]
pub(crate) struct HostLimits {
    hosts: Arc<DashMap<String, Arc<HostSlot>>>,
}

impl HostLimits {
    /// Admits one delivery to `host`; `None` when the host's backlog is full (or too many hosts
    /// are busy).
    pub(crate) fn admit(&self, host: &str) -> Option<HostTicket> {
        if self.hosts.len() >= MAX_HOSTS && !self.hosts.contains_key(host) {
            return None;
        }
        let slot = self
            .hosts
            .entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(HostSlot {
                    admit: Arc::new(Semaphore::new(MAX_HOST_BACKLOG)),
                    run: Arc::new(Semaphore::new(MAX_PER_HOST)),
                })
            })
            .clone();
        let mut ticket = HostTicket {
            hosts: self.hosts.clone(),
            key: host.to_owned(),
            slot: Some(slot),
            admitted: None,
        };
        let admitted = ticket
            .slot
            .as_ref()?
            .admit
            .clone()
            .try_acquire_owned()
            .ok()?;
        ticket.admitted = Some(admitted);
        Some(ticket)
    }

    /// Hosts currently tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.hosts.len()
    }
}

/// One admitted delivery to a host. Dropping it frees its place in the host's backlog and
/// removes the host's entry when no other delivery holds it.
#[derive(Debug)]
pub(crate) struct HostTicket {
    hosts: Arc<DashMap<String, Arc<HostSlot>>>,
    key: String,
    slot: Option<Arc<HostSlot>>,
    admitted: Option<OwnedSemaphorePermit>,
}

impl HostTicket {
    /// A running permit if one is free now.
    pub(crate) fn try_run(&self) -> Option<OwnedSemaphorePermit> {
        self.slot.as_ref()?.run.clone().try_acquire_owned().ok()
    }

    /// Waits for a running permit.
    pub(crate) async fn run(&self) -> Option<OwnedSemaphorePermit> {
        self.slot.as_ref()?.run.clone().acquire_owned().await.ok()
    }
}

impl Drop for HostTicket {
    fn drop(&mut self) {
        self.admitted.take();
        self.slot.take();
        // Clones are taken under the shard lock `remove_if` holds, so a count of 1 (the map's
        // own) means no delivery uses the entry and none can be about to.
        self.hosts
            .remove_if(&self.key, |_, slot| Arc::strong_count(slot) == 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_runs_and_queues_a_bounded_number() {
        let limits = HostLimits::default();
        let tickets: Vec<HostTicket> = (0..MAX_HOST_BACKLOG)
            .map(|_| limits.admit("slow.example").expect("admitted"))
            .collect();
        assert!(limits.admit("slow.example").is_none(), "backlog full");
        let running: Vec<_> = tickets.iter().filter_map(HostTicket::try_run).collect();
        assert_eq!(running.len(), MAX_PER_HOST);
        // Another host is not affected.
        let other = limits.admit("push.example").expect("other host");
        assert!(other.try_run().is_some());
        assert_eq!(limits.len(), 2);
        // A waiter gets a permit when a running delivery ends.
        let waiter = &tickets[MAX_PER_HOST];
        assert!(waiter.try_run().is_none());
        let mut running = running;
        running.pop();
        assert!(waiter.run().await.is_some());
    }

    #[tokio::test]
    async fn idle_hosts_are_forgotten() {
        let limits = HostLimits::default();
        let a = limits.admit("a.example").expect("a");
        let b = limits.admit("a.example").expect("a again");
        let run = a.try_run();
        assert_eq!(limits.len(), 1);
        drop(a);
        assert_eq!(limits.len(), 1, "still held by b");
        drop(run);
        drop(b);
        assert_eq!(limits.len(), 0);
        // A refused admission leaves nothing behind either.
        let held: Vec<HostTicket> = (0..MAX_HOST_BACKLOG)
            .map(|_| limits.admit("b.example").expect("admitted"))
            .collect();
        assert!(limits.admit("b.example").is_none());
        drop(held);
        assert_eq!(limits.len(), 0);
        // Many distinct hosts, one at a time: the map stays empty.
        for i in 0..10_000 {
            drop(limits.admit(&format!("h{i}.example")));
        }
        assert_eq!(limits.len(), 0);
    }

    #[tokio::test]
    async fn concurrent_tickets_leave_no_entry() {
        let limits = HostLimits::default();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let l = limits.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..2000 {
                    if let Some(t) = l.admit("x.example") {
                        let _r = t.try_run();
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(limits.len(), 0);
    }
}
