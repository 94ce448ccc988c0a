//! Durable before acknowledged (DESIGN guarantee 1, PROTOCOL §5.3 "Storing a message"): every
//! message whose sender got `msg_status queued` survives an abrupt stop of the server — its
//! runtime is torn down with `shutdown_background`, no graceful drain — and reaches the recipient
//! after a restart on the same SQLite file and keys.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::realtime::{hex32, make_contacts, queued_reply, Target};
use common::ws::WsClient;
use common::{new_user, Client};
use melo::{Melo, SqliteStore};
use serde_json::json;
use tokio::net::TcpListener;

/// A server in its own runtime on its own thread, so that it can be killed abruptly.
struct Node {
    addr: SocketAddr,
    kill: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Node {
    fn start(db: PathBuf) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            let addr = rt.block_on(async move {
                let store = SqliteStore::open(&db).await.expect("open SQLite");
                let melo = Melo::builder(Arc::new(store), common::keys())
                    .config(common::test_config())
                    .build()
                    .expect("build");
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                tokio::spawn(async move {
                    let _ = melo.serve(listener, std::future::pending::<()>()).await;
                });
                addr
            });
            addr_tx.send(addr).expect("report address");
            let _ = kill_rx.recv();
            // The crash: every task is dropped where it stands; nothing is flushed or drained.
            rt.shutdown_background();
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server started");
        Self { addr, kill, thread }
    }

    fn target(&self) -> Target {
        Target::new(
            Client::new(format!("http://{}", self.addr)),
            self.addr,
            self.addr,
        )
    }

    fn crash(self) {
        self.kill.send(()).expect("kill");
        self.thread.join().expect("server thread");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_an_abrupt_stop() {
    const N: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("melo.db");

    let node = Node::start(db.clone());
    let t = node.target();
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(&t, &a, &b).await;
    // B's queue starts empty (its contact request is acked); B then goes offline.
    let mut wb = WsClient::open(t.http, &b.token).await;
    wb.sync().await;
    wb.ack_and_close().await;

    let mut wa = WsClient::open(t.http, &a.token).await;
    wa.sync().await;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let cid = format!("d-{i}");
        wa.send_json(&json!({"type": "relay", "target": b.uid, "payload": format!("DUR-{i}"), "client_id": cid}))
            .await;
        ids.push(hex32(&queued_reply(&mut wa, &cid).await["message_id"]));
    }
    // Kill right after the last `queued`, with A's socket still open.
    node.crash();
    drop(wa);

    let node = Node::start(db);
    let t = node.target();
    let mut wb = WsClient::open(t.http, &b.token).await;
    let sync = wb.sync().await;
    let got: Vec<&str> = sync
        .backlog
        .iter()
        .map(|f| f["message_id"].as_str().expect("message_id"))
        .collect();
    assert_eq!(
        got, ids,
        "every acknowledged message, in order, after the crash"
    );
    let first = sync.backlog[0]["seq"].as_i64().expect("seq");
    for (i, f) in sync.backlog.iter().enumerate() {
        assert_eq!(f["type"], "relay_delivery", "{f}");
        assert_eq!(f["payload"], format!("DUR-{i}"), "{f}");
        assert_eq!(f["from"], a.uid.as_str(), "{f}");
        assert_eq!(f["seq"], first + i as i64, "consecutive seq: {f}");
    }
    assert_eq!(sync.count, N as i64);
    assert_eq!(sync.last_seq, first + N as i64 - 1);
    wb.ack_and_close().await;
    // History survived too.
    let r = t
        .client
        .get(&format!("/messages/history/dm/{}", b.uid), Some(&a.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], N, "{}", r.body);
    node.crash();
}
