//! `--group N`: fan-out of one sender's chat messages to a group of N members, `--online` of them
//! connected. Reports per-delivery latency and, per message, the latency until the last online
//! member had it. CPU figures as in DM mode, per delivery: `deliveries_in_window` counts the
//! deliveries read before the end of the run, the span over which CPU is sampled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::args::Args;
use super::cpu::CpuWindow;
use super::{
    ack, bounded, make_contacts, payload, percentile, register, ws_open, Api, Frame, Login, Relay,
    Shared, Ws, DRAIN, SETUP_CONCURRENCY,
};

/// What a member read: (stamp, latency µs) per delivery, and how many arrived before `run_end`.
struct Member {
    deliveries: Vec<(u64, u64)>,
    in_window: u64,
}

/// Receives chat deliveries until the run ends.
async fn member(mut ws: Ws, shared: Arc<Shared>) -> Member {
    let mut out = Member {
        deliveries: Vec::new(),
        in_window: 0,
    };
    let hard_end = shared.run_end + DRAIN;
    let (mut max_seq, mut acked) = (0i64, 0i64);
    while Instant::now() < hard_end {
        match timeout(Duration::from_millis(50), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let at = Instant::now();
                let Ok(f) = serde_json::from_str::<Frame<'_>>(t.as_str()) else {
                    continue;
                };
                if let Some(s) = f.seq {
                    max_seq = max_seq.max(s);
                }
                if f.kind == "relay_delivery" {
                    if let Some(nanos) = f.stamp() {
                        let sent_at = shared.start + Duration::from_nanos(nanos);
                        let us = at.saturating_duration_since(sent_at).as_micros() as u64;
                        out.deliveries.push((nanos, us));
                    }
                    if at < shared.run_end {
                        out.in_window += 1;
                    }
                }
                if max_seq - acked >= 32 {
                    if ws.send(ack(max_seq)).await.is_err() {
                        break;
                    }
                    acked = max_seq;
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => {
                if max_seq > acked {
                    if ws.send(ack(max_seq)).await.is_err() {
                        break;
                    }
                    acked = max_seq;
                }
                if Instant::now() >= shared.run_end + Duration::from_secs(1) {
                    break;
                }
            }
        }
    }
    out
}

/// The group run.
pub(super) async fn run(args: &Args, api: Api, addr: SocketAddr, pem: Arc<String>) -> Result<()> {
    let setup = Instant::now();
    let n = args.group;
    let online = args.online.unwrap_or(n / 2).min(n);
    let users = bounded(n + 1, SETUP_CONCURRENCY, |i| {
        register(api.clone(), pem.clone(), i)
    })
    .await
    .context("registering users")?;
    let (owner, members) = users.split_first().context("no users")?;
    bounded(n, SETUP_CONCURRENCY, |i| {
        make_contacts(api.clone(), owner.clone(), members[i].clone())
    })
    .await
    .context("making contacts")?;
    let (status, body) = api
        .post(
            "/chats/create",
            Some(&owner.token),
            &json!({"name": "Load group"}),
        )
        .await?;
    let chat = body["chat_id"].as_i64().context("chat id")?;
    if status != 200 {
        bail!("create chat: {status} {body}");
    }
    bounded(n, SETUP_CONCURRENCY, |i| {
        let (api, token, uid) = (api.clone(), owner.token.clone(), members[i].uid.clone());
        async move {
            let (status, body) = api
                .post(
                    "/chats/members/add",
                    Some(&token),
                    &json!({"chat_id": chat, "user_unique_id": uid}),
                )
                .await?;
            if status != 200 {
                bail!("add member: {status} {body}");
            }
            Ok(())
        }
    })
    .await
    .context("adding members")?;
    let mut sockets = bounded(online + 1, SETUP_CONCURRENCY, |i| {
        let token = if i == 0 {
            owner.token.clone()
        } else {
            members[i - 1].token.clone()
        };
        async move { ws_open(addr, Login::Token(token), None).await }
    })
    .await
    .context("opening sockets")?;
    let setup_s = setup.elapsed().as_secs_f64();

    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        run_end: start + Duration::from_secs(args.duration),
        errors: Default::default(),
        payload: args.payload,
    });
    let cpu = CpuWindow::start(args.pids.clone(), shared.run_end);
    let mut set = JoinSet::new();
    for ws in sockets.split_off(1) {
        set.spawn(member(ws, shared.clone()));
    }
    let owner_ws = sockets.pop().context("owner socket")?;
    let (mut tx, mut rx) = owner_ws.split();
    // The owner's socket: acknowledge receipts so its window never fills.
    let reader = tokio::spawn(async move {
        let mut max_seq = 0i64;
        while let Ok(Some(Ok(m))) = timeout(Duration::from_secs(2), rx.next()).await {
            if let Message::Text(t) = m {
                if let Ok(f) = serde_json::from_str::<Frame<'_>>(t.as_str()) {
                    max_seq = max_seq.max(f.seq.unwrap_or(0));
                }
            }
        }
        max_seq
    });
    let every = Duration::from_micros(1_000_000 / args.rate.max(1) as u64);
    let mut next = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < shared.run_end {
        sent += 1;
        let frame = Relay {
            kind: "relay",
            target: None,
            chat_id: Some(chat),
            payload: &payload(&shared),
            client_id: &format!("g-{sent}"),
        };
        tx.send(frame.message()?).await?;
        next += every;
        tokio::time::sleep_until(next).await;
    }
    let mut per_msg: HashMap<u64, (u64, usize)> = HashMap::new();
    let mut all = Vec::new();
    let mut in_window = 0u64;
    while let Some(r) = set.join_next().await {
        let r = r?;
        in_window += r.in_window;
        for (stamp, us) in r.deliveries {
            let e = per_msg.entry(stamp).or_insert((0, 0));
            e.0 = e.0.max(us);
            e.1 += 1;
            all.push(us);
        }
    }
    let _ = reader.await;
    let cpu = cpu.finish();
    let (server_per_msg, own_per_msg) = cpu.per_msg(in_window);
    all.sort_unstable();
    let mut last: Vec<u64> = per_msg
        .values()
        .filter(|(_, count)| *count == online)
        .map(|(max, _)| *max)
        .collect();
    last.sort_unstable();
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let report = json!({
        "group_members": n,
        "online_members": online,
        "messages_sent": sent,
        "rate_per_s": args.rate,
        "deliveries": all.len(),
        "deliveries_per_s": round(all.len() as f64 / args.duration as f64),
        "messages_reaching_all_online": last.len(),
        "delivery_latency_ms": {"p50": round(percentile(&all, 50)), "p99": round(percentile(&all, 99))},
        "all_online_latency_ms": {"p50": round(percentile(&last, 50)), "p99": round(percentile(&last, 99))},
        "setup_s": round(setup_s),
        "deliveries_in_window": in_window,
        "server_cpu_s": cpu.server_s.map(round),
        "server_cpu_us_per_msg": server_per_msg.map(round),
        "loadgen_cpu_s": cpu.own_s.map(round),
        "loadgen_cpu_us_per_msg": own_per_msg.map(round),
    });
    println!("{report}");
    Ok(())
}
