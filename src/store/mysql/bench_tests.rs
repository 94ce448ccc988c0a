//! A throughput measurement of the hot path against `MELO_TEST_MYSQL_URL`, run by hand:
//!
//! ```text
//! MELO_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test MELO_BENCH_DMS=20000 \
//!   cargo test --no-default-features --features mysql --lib hot_path_throughput \
//!   -- --ignored --nocapture
//! ```
//!
//! Each DM goes through its store lifecycle: stored with a copy for the recipient's device and
//! one for the author's other device, acknowledged by the recipient (with the `delivered`
//! receipt for the author and the delivery flag), by the author's other device, and the
//! receipt by the author. It prints DMs per second, the database server's CPU time per DM
//! when it runs on this machine, and how many statements the server prepared and executed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::tests::fresh_store;
use crate::model::{
    Acks, Message, MessageId, NewEntry, NewMessage, QueueTarget, SessionId, StoreOutcome,
    Timestamp, UserId,
};
use crate::store::DeliveryStore;
use crate::MysqlStore;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system, in clock ticks) of the process of `/proc/<dir>`.
fn ticks(dir: &std::path::Path) -> Option<u64> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU time of the process named `mariadbd` or `mysqld`.
fn server_ticks() -> Option<u64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "mariadbd" | "mysqld") {
            return ticks(&entry.path());
        }
    }
    None
}

async fn status(store: &MysqlStore, name: &str) -> i64 {
    let v: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = ?",
    )
    .bind(name)
    .fetch_optional(store.pool())
    .await
    .expect("status");
    v.and_then(|(_, v)| String::from_utf8_lossy(&v).parse().ok())
        .unwrap_or(0)
}

async fn one_dm(store: &MysqlStore, pair: i64, n: u64) {
    let (author, other, recipient) = (pair * 3 + 1, pair * 3 + 2, pair * 3 + 3);
    let from = UserId::new(10_000_000 + u32::try_from(pair).expect("small")).expect("uid");
    let msg = NewMessage {
        message: Message {
            id: MessageId::new(),
            from,
            to: UserId::new(20_000_000),
            chat_id: None,
            payload: format!("{{\"ciphertext\":\"{}\"}}", "x".repeat(300)),
            signature: Some("s".repeat(88)),
            created_at: Timestamp::now(),
            delivered: false,
            read: false,
            edited_at: None,
            deleted: false,
            pinned: false,
            reactions: Default::default(),
        },
        sender_session: SessionId(author),
        client_id: Some(format!("c-{n}")),
    };
    let targets = [
        QueueTarget {
            session: SessionId(recipient),
            user: UserId::new(20_000_000).expect("uid"),
            self_copy: false,
        },
        QueueTarget {
            session: SessionId(other),
            user: from,
            self_copy: true,
        },
    ];
    let StoreOutcome::Stored(seqs) = store.store_message(&msg, &targets).await.expect("store")
    else {
        panic!("duplicate");
    };
    let receipt = NewEntry::Status(Bytes::from(vec![1u8; 43]));
    let acks = Acks {
        upto: seqs[0],
        seqs: vec![],
        receipts: vec![(SessionId(author), receipt)],
        delivered: vec![msg.message.id],
    };
    let receipt_seq = store.ack(SessionId(recipient), &acks).await.expect("ack")[0];
    let own = Acks {
        upto: seqs[1],
        ..Acks::default()
    };
    store.ack(SessionId(other), &own).await.expect("ack");
    let got = Acks {
        upto: receipt_seq,
        ..Acks::default()
    };
    store.ack(SessionId(author), &got).await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn hot_path_throughput() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let dms = env("MELO_BENCH_DMS", 20_000);
    let tasks = env("MELO_BENCH_TASKS", 256);
    let (prepared, executed) = (
        status(&store, "COM_STMT_PREPARE").await,
        status(&store, "COM_STMT_EXECUTE").await,
    );
    let before = (server_ticks(), ticks("/proc/self".as_ref()));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = Arc::clone(&store);
            let per = dms / tasks + usize::from(t < dms % tasks);
            tokio::spawn(async move {
                for n in 0..per {
                    one_dm(&store, i64::try_from(t).expect("small"), n as u64).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    let server = before.0.zip(server_ticks()).map(|(a, b)| b - a);
    let client = before
        .1
        .zip(ticks("/proc/self".as_ref()))
        .map(|(a, b)| b - a);
    let prepared = status(&store, "COM_STMT_PREPARE").await - prepared;
    let executed = status(&store, "COM_STMT_EXECUTE").await - executed;
    eprintln!(
        "{dms} DMs by {tasks} tasks in {secs:.2} s: {:.0} DMs/s; server CPU {}; \
         client CPU {:.1} s; {prepared} statements prepared, {executed} executed \
         ({:.2} per DM)",
        dms as f64 / secs,
        server.map_or("unknown".into(), |t| format!(
            "{:.1} s ({:.0} us per DM)",
            t as f64 / 100.0,
            t as f64 * 10_000.0 / dms as f64
        )),
        client.unwrap_or(0) as f64 / 100.0,
        executed as f64 / dms as f64,
    );
}
