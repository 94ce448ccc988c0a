//! The cluster's background tasks of one node.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::App;

/// Users whose presence waits to be recomputed after another node's change, at most.
const PRESENCE_QUEUE: usize = 16_384;

/// The cluster's four tasks: publish queued notes (one bus message per destination), recompute
/// presence after other nodes' changes, apply notes from other nodes (resubscribing with backoff
/// while the bus is down), and a heartbeat.
pub(super) fn spawn_cluster(
    app: &Arc<App>,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) {
    use crate::metrics::Dropped;
    use crate::service::cluster::{
        bundle, node_topic, unbundle, Note, ALL, HEARTBEAT, MAX_BUNDLE, TOPIC,
    };
    let core = app.services.core().clone();
    let Some(outbox) = core.cluster.as_ref().and_then(|c| c.take_outbox()) else {
        return;
    };
    let (c, pcore) = (cancel.clone(), core.clone());
    tasks.spawn_on(
        async move {
            let mut outbox = outbox;
            let mut notes = Vec::with_capacity(MAX_BUNDLE);
            // Per destination, in the order first seen: the notes it gets.
            let mut groups: Vec<(u64, Vec<Bytes>)> = Vec::new();
            loop {
                notes.clear();
                let got = tokio::select! {
                    _ = c.cancelled() => break,
                    n = outbox.recv_many(&mut notes, MAX_BUNDLE) => n,
                };
                if got == 0 {
                    break;
                }
                let Some(cluster) = pcore.cluster.as_ref() else {
                    break;
                };
                cluster.dequeued(got);
                // Whatever queued up while the last publish ran goes out as one bus message
                // per destination.
                groups.clear();
                for (dest, note) in notes.drain(..) {
                    match groups.iter_mut().find(|(d, _)| *d == dest) {
                        Some((_, list)) => list.push(note),
                        None => groups.push((dest, vec![note])),
                    }
                }
                for (dest, list) in &groups {
                    let msg = match list.as_slice() {
                        [one] => cluster.seal_message(&pcore.pii, *dest, one),
                        many => cluster.seal_message(&pcore.pii, *dest, &bundle(many)),
                    };
                    let Some(msg) = msg else {
                        tracing::warn!("cluster note not sealed; dropped");
                        cluster.meters.dropped(Dropped::SealFailed, list.len());
                        continue;
                    };
                    let topic = if *dest == ALL {
                        TOPIC.to_owned()
                    } else {
                        node_topic(*dest)
                    };
                    cluster.count_published(list.len());
                    pcore.metrics.bus(true, list.len());
                    if let Err(e) = pcore.ephemeral.publish(&topic, msg).await {
                        // The hole it leaves in this node's counter tells the receivers.
                        tracing::debug!(error = %e, "cluster note not published");
                        cluster.meters.dropped(Dropped::PublishFailed, list.len());
                    }
                }
            }
        },
        rt,
    );
    // Presence recomputed after another node's change: store and Redis round trips, so off the
    // bus tasks, in a bounded queue (full: dropped; the user's next change recomputes).
    let (presence_tx, mut presence_rx) =
        tokio::sync::mpsc::channel::<crate::model::UserId>(PRESENCE_QUEUE);
    let (c, papp) = (cancel.clone(), app.clone());
    tasks.spawn_on(
        async move {
            loop {
                let user = tokio::select! {
                    _ = c.cancelled() => break,
                    u = presence_rx.recv() => match u { Some(u) => u, None => break },
                };
                papp.services.presence.remote_changed(user).await;
            }
        },
        rt,
    );
    let (c, rcore, ptx) = (cancel.clone(), core.clone(), presence_tx.clone());
    tasks.spawn_on(
        async move {
            let Some(cluster) = rcore.cluster.as_ref() else {
                return;
            };
            let own = node_topic(cluster.node());
            let mut backoff = Duration::from_millis(100);
            loop {
                // Both topics, or neither: retry until both are subscribed.
                let subs = tokio::select! {
                    _ = c.cancelled() => break,
                    s = async {
                        let all = rcore.ephemeral.subscribe(TOPIC).await?;
                        let mine = rcore.ephemeral.subscribe(&own).await?;
                        Ok::<_, crate::ephemeral::EphemeralError>((all, mine))
                    } => s,
                };
                let (mut all, mut mine) = match subs {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster bus unavailable; retrying");
                        tokio::select! {
                            _ = c.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                backoff = Duration::from_millis(100);
                // Notes published while this node was not subscribed are lost.
                rcore.flush_caches();
                rcore.hub.pump_all();
                loop {
                    let msg = tokio::select! {
                        _ = c.cancelled() => return,
                        m = all.recv() => m,
                        m = mine.recv() => m,
                    };
                    let Some(raw) = msg else { break };
                    let Some((from, raw, gap)) = cluster.open_message(&rcore.pii, &raw) else {
                        tracing::debug!(
                            "cluster message that does not open, is not for this node, stale or replayed: ignored"
                        );
                        continue;
                    };
                    if gap && from != cluster.node() {
                        tracing::debug!("cluster messages were lost; repairing from the store");
                        rcore.repair_after_loss(from);
                    }
                    let notes = unbundle(raw);
                    if from != cluster.node() {
                        rcore.metrics.bus(false, notes.len());
                    }
                    for raw in notes {
                        match Note::decode(raw) {
                            Some((origin, note)) if origin != cluster.node() => {
                                if let Some(user) = rcore.apply_note(cluster, origin, note) {
                                    let _ = ptx.try_send(user);
                                }
                            }
                            Some(_) => {}
                            None => tracing::debug!("malformed cluster note ignored"),
                        }
                    }
                }
            }
        },
        rt,
    );
    let (c, htx) = (cancel.clone(), presence_tx);
    tasks.spawn_on(
        async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    _ = c.cancelled() => break,
                    _ = tick.tick() => {
                        core.tell_cluster(|| Note::Heartbeat);
                        // Also on each node's own topic, so that a loss there shows too.
                        if let Some(cl) = &core.cluster {
                            let beat = Note::Heartbeat.encode(cl.node());
                            let live = cl.live_nodes();
                            cl.meters.nodes(live.len());
                            for node in live {
                                cl.publish_encoded(node, beat.clone());
                            }
                            // A node gone silent took its sockets (their users' presence may
                            // change), and its last notes may never have been published: every
                            // socket here re-reads its queue.
                            if let Some(users) = cl.forget_silent_nodes() {
                                tracing::warn!(
                                    users = users.len(),
                                    "a node went silent; its sockets are forgotten and every socket here re-reads its queue"
                                );
                                core.hub.pump_all();
                                for user in users {
                                    let _ = htx.try_send(user);
                                }
                            }
                        }
                    }
                }
            }
        },
        rt,
    );
}
