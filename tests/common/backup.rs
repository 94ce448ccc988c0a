//! The backup tests' workload and checks, shared by tests/backup.rs (SQLite) and
//! tests/backup_mysql.rs: users who are contacts, a chat, messages queued for a user who is
//! offline, a sender that keeps writing while the backup is taken, and what a restored server
//! must show.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use melo::crypto::KeyPolicy;
use melo::{FileKeyProvider, Melo, Store};
use serde_json::{json, Value};

use super::realtime::{drain, hex32, make_contacts, online, queued_reply, Target};
use super::ws::{is, WsClient, WAIT};
use super::{login, new_user, test_config, TestServer, User};

/// DMs queued for the offline user before the backup.
pub const PRE: usize = 8;
/// At most this many messages from the live sender (the offline user's backlog stays inside one
/// delivery window).
pub const LIVE_MAX: usize = 120;

/// A server on `store` with the keys of the key directory `keys_dir` (created when missing).
pub async fn serve(store: Arc<dyn Store>, keys_dir: &std::path::Path) -> TestServer {
    let keys = FileKeyProvider::open(keys_dir, KeyPolicy::default(), None)
        .await
        .expect("open the key directory");
    let melo = Melo::builder(store.clone(), Arc::new(keys))
        .config(test_config())
        .build()
        .expect("build");
    TestServer::serve(melo, store).await
}

/// What the workload made.
pub struct World {
    pub a: User,
    pub b: User,
    /// Offline since before the messages: everything for it is queued.
    pub c: User,
    pub chat: i64,
    /// Payloads queued for `c` before the backup, in order.
    pub queued: Vec<String>,
}

/// Three users, all contacts of each other; A's profile bio; a chat of the three; then, with C
/// offline, C added to a second chat (a queued event), DMs from A to C and a chat message
/// from B.
pub async fn workload(t: &Target) -> World {
    let c_ = &t.client;
    let a = new_user(c_, "Alice").await;
    let b = new_user(c_, "Bob").await;
    let c = new_user(c_, "Carol").await;
    make_contacts(t, &a, &b).await;
    make_contacts(t, &a, &c).await;
    make_contacts(t, &b, &c).await;
    let r = c_
        .put(
            "/profile",
            Some(&a.token),
            &json!({"bio": "before the backup"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c_
        .post(
            "/chats/create",
            Some(&a.token),
            &json!({"name": "Backup Club"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let chat = r.body["chat_id"].as_i64().expect("chat id");
    for u in [&b, &c] {
        let r = c_
            .post(
                "/chats/members/add",
                Some(&a.token),
                &json!({"chat_id": chat, "user_unique_id": u.uid}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // C's queue is empty now; C goes offline and stays so. A sealed event is queued for C
    // (added to a second chat), then the messages.
    drain(t, &c).await;
    let r = c_
        .post("/chats/create", Some(&a.token), &json!({"name": "Second"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.body["chat_id"].as_i64().expect("chat id");
    let r = c_
        .post(
            "/chats/members/add",
            Some(&a.token),
            &json!({"chat_id": second, "user_unique_id": c.uid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut queued = Vec::new();
    let mut wa = online(t, &a).await;
    for i in 0..PRE {
        let (cid, payload) = (format!("pre-{i}"), format!("PRE-{i}"));
        wa.send_json(
            &json!({"type": "relay", "target": c.uid, "payload": payload, "client_id": cid}),
        )
        .await;
        hex32(&queued_reply(&mut wa, &cid).await["message_id"]);
        queued.push(payload);
    }
    wa.close().await;
    let mut wb = online(t, &b).await;
    wb.send_json(
        &json!({"type": "relay", "chat_id": chat, "payload": "CHAT-0", "client_id": "chat-0"}),
    )
    .await;
    queued_reply(&mut wb, "chat-0").await;
    queued.push("CHAT-0".into());
    wb.close().await;
    World {
        a,
        b,
        c,
        chat,
        queued,
    }
}

/// B sends DMs `LIVE-<i>` to C over HTTP, one after the other, until stopped; `acked` holds how
/// many the server acknowledged (stored durably) so far.
pub struct Sender {
    pub acked: Arc<Mutex<usize>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sender {
    pub fn start(t: &Target, from: &User, to: &User) -> Self {
        let acked = Arc::new(Mutex::new(0));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (client, token, target) = (t.client.clone(), from.token.clone(), to.uid.clone());
        let counter = acked.clone();
        let task = tokio::spawn(async move {
            for i in 0..LIVE_MAX {
                if *stopped.borrow() {
                    return;
                }
                let r = client
                    .post(
                        "/messages/send",
                        Some(&token),
                        &json!({"target_id": target, "data": format!("LIVE-{i}")}),
                    )
                    .await;
                assert_eq!(r.status, 200, "live send {i}: {}", r.body);
                assert_eq!(r.body["status"], "queued", "{}", r.body);
                *counter.lock().expect("counter") += 1;
                let _ = tokio::time::timeout(Duration::from_millis(3), stopped.changed()).await;
            }
        });
        Self { acked, stop, task }
    }

    pub fn acked(&self) -> usize {
        *self.acked.lock().expect("counter")
    }

    /// Waits until at least `n` messages are acknowledged.
    pub async fn wait_for(&self, n: usize) {
        for _ in 0..1000 {
            if self.acked() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the live sender did not reach {n} messages");
    }

    /// Stops the sender (its assertions fail the test here); returns how many were acknowledged.
    pub async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        self.task.await.expect("the live sender failed");
        *self.acked.lock().expect("counter")
    }
}

fn contact_ids(r: &Value) -> Vec<String> {
    let mut ids: Vec<String> = r["contacts"]
        .as_array()
        .unwrap_or_else(|| panic!("contacts: {r}"))
        .iter()
        .map(|c| c["unique_id"].as_str().expect("uid").to_owned())
        .collect();
    ids.sort();
    ids
}

/// On the restored server: everyone logs in with the password; tokens issued before the backup
/// still verify (the JWT keys came along) and A's device token logs in; contacts, the chat and
/// A's profile (sealed) are there; C receives everything queued before the backup, then a
/// prefix of the live sender's messages of at least `live_min` and at most `live_max`.
pub async fn check_restored(t: &Target, w: &World, live_min: usize, live_max: usize) {
    let c_ = &t.client;
    let r = c_.get("/profile", Some(&w.a.token)).await;
    assert_eq!(r.status, 200, "a token from before the backup: {}", r.body);
    assert_eq!(r.body["bio"], "before the backup", "{}", r.body);
    assert_eq!(r.body["phone"], w.a.phone.as_str(), "{}", r.body);
    let r = c_
        .post(
            "/login",
            None,
            &json!({"identifier": w.a.phone, "device_id": w.a.device, "device_token": w.a.device_token}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "device-token login after restore: {}",
        r.body
    );
    assert_eq!(r.body["session_id"], w.a.session_id, "{}", r.body);
    // (A device token is rotated by every login: it is used before the password logins.)

    for u in [&w.a, &w.b, &w.c] {
        let r = login(c_, &u.phone, &u.password, &u.device).await;
        assert_eq!(r.status, 200, "password login after restore: {}", r.body);
        assert_eq!(r.body["unique_id"], u.uid.as_str(), "{}", r.body);
    }

    let r = c_.get("/contacts", Some(&w.a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want = vec![w.b.uid.clone(), w.c.uid.clone()];
    want.sort();
    assert_eq!(contact_ids(&r.body), want, "A's contacts: {}", r.body);
    let r = c_.get("/contacts", Some(&w.c.token)).await;
    let mut want = vec![w.a.uid.clone(), w.b.uid.clone()];
    want.sort();
    assert_eq!(contact_ids(&r.body), want, "C's contacts: {}", r.body);
    for u in [&w.a, &w.b, &w.c] {
        let r = c_.get("/chats/list", Some(&u.token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let chats = r.body["chats"].as_array().expect("chats");
        assert!(
            chats
                .iter()
                .any(|ch| ch["id"] == w.chat && ch["name"] == "Backup Club"),
            "the chat, name unsealed: {}",
            r.body
        );
    }

    let mut wc = WsClient::open(t.http, &w.c.token).await;
    let sync = wc.sync().await;
    let payloads: Vec<String> = sync
        .backlog
        .iter()
        .filter(|f| is(f, "relay_delivery"))
        .map(|f| f["payload"].as_str().expect("payload").to_owned())
        .collect();
    let live = payloads.len().saturating_sub(w.queued.len());
    assert_eq!(
        payloads[..w.queued.len().min(payloads.len())],
        w.queued[..],
        "everything queued before the backup, in order: {payloads:?}"
    );
    let want_live: Vec<String> = (0..live).map(|i| format!("LIVE-{i}")).collect();
    assert_eq!(
        payloads[w.queued.len()..],
        want_live[..],
        "then a prefix of the live messages (one moment's snapshot): {payloads:?}"
    );
    assert!(
        (live_min..=live_max).contains(&live),
        "{live} live messages: at least the {live_min} acknowledged before the backup began, at \
         most the {live_max} acknowledged when it ended"
    );
    // Delivered from the restored queue: acknowledging empties it.
    wc.ack_and_close().await;
    let mut again = WsClient::open(t.http, &w.c.token).await;
    let sync = again.sync_within(WAIT).await;
    assert_eq!(sync.count, 0, "C's queue after the ack: {:?}", sync.backlog);
    again.close().await;
}
