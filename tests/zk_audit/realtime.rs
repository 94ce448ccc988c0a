//! The real-time half of the workload (§4.5, §4.6, §4.9, §5): sockets that carry a user agent
//! and a forwarded address, DMs over WS and HTTP with receipts and management, scheduled
//! messages, a chat message under slow mode, presence, push registrations, one connected call
//! and one ringing call (its offer held for the callee), and typing last, so all of it is live
//! when the dump runs.

use serde_json::{json, Value};

use super::api::{Actor, Api};
use super::people::{self, candidate, sdp};
use super::workload::World;
use crate::common::calls::{forwarded, state};
use crate::common::push_service::PushService;
use crate::common::realtime::{delivery, hex32, queued_reply, relay};
use crate::common::ws::WsClient;
use crate::common::TestServer;

/// `GET /ws` as `who` (user agent and `X-Forwarded-For` included), synced and acked.
async fn open(api: &Api, s: &TestServer, who: &Actor) -> WsClient {
    let headers = [("user-agent", who.net.ua), ("x-forwarded-for", who.net.ip)];
    let mut ws = WsClient::open_with_headers(s.addr, &who.u.token, &headers).await;
    api.record("GET", "/ws", 101);
    ws.sync().await;
    ws.ack_all().await;
    ws
}

fn id(v: &Value) -> String {
    hex32(&v["message_id"])
}

/// DMs over both transports, receipts, edit/pin/react/delete, chat messages and history.
async fn messages(api: &Api, w: &World, wa: &mut WsClient, wb: &mut WsClient, wc: &mut WsClient) {
    let (a, b, c, d) = (&w.a, &w.b, &w.c, &w.d);
    let m1 = relay(wa, &a.u, &b.u, people::DM_PAYLOAD, "zk-1").await;
    delivery(wb, &a.u, &b.u).await;
    wb.send_json(&json!({"type": "ack_received", "message_id": m1}))
        .await;
    wb.send_json(&json!({"type": "ack_read", "message_id": m1}))
        .await;
    let body = json!({"target_id": b.u.uid, "data": "WktETS0y"});
    let m2 = id(&api.post(a, "/messages/send", body).await);
    let edit = json!({"message_id": m2, "new_data": "WktETS0z"});
    api.post(a, "/messages/edit", edit).await;
    api.post(b, "/messages/pin", json!({"message_id": m1}))
        .await;
    let react = json!({"message_id": m1, "reaction": "\u{1f44d}"});
    api.post(b, "/messages/react", react).await;
    api.post(a, "/messages/delete", json!({"message_id": m2}))
        .await;
    let body = json!({"chat_id": w.group, "data": "WktHUk9VUA=="});
    let in_group = id(&api.post(a, "/messages/send", body).await);
    // B's read marker in the group (a row of the store) and its `messages_read`.
    let read = json!({"chat_id": w.group, "message_id": in_group});
    api.post(b, "/status/read", read).await;
    // Scheduled messages: one stays pending (its row is in the dump), one is cancelled.
    let later = |ms: i64| {
        melo::model::Timestamp::from_millis(melo::model::Timestamp::now().millis() + ms).to_string()
    };
    let body = json!({"target_id": b.u.uid, "when": later(3_600_000), "data": "WktTQ0gx",
                      "client_id": "zk-s1"});
    api.post(a, "/schedule/message", body).await;
    let body = json!({"chat_id": w.group, "when": later(7_200_000), "data": "WktTQ0gy"});
    let gone = hex32(&api.post(a, "/schedule/message", body).await["schedule_id"]);
    api.get(a, "/schedule").await;
    let path = format!("/schedule/{gone}");
    api.ok(a, http::Method::DELETE, &path, None).await;
    // A plain member posts under slow mode: the chat's limiter holds state for them.
    wc.send_json(
        &json!({"type": "chat_message", "chat_id": w.group, "client_id": "zk-c1", "text": "WktD"}),
    )
    .await;
    queued_reply(wc, "zk-c1").await;
    // Dave has no socket: this DM is queued for him and pushed to his endpoint.
    relay(wc, &c.u, &d.u, "WktETS1k", "zk-2").await;
    api.get(a, &format!("/messages/history/dm/{}", b.u.uid))
        .await;
    api.get(a, &format!("/messages/history/chat/{}", w.group))
        .await;
    api.get(a, &format!("/history/{}", b.u.uid)).await;
}

/// A↔B connected (SDP and ICE relayed), C→D ringing with the offer held for D's devices.
async fn calls(w: &World, wa: &mut WsClient, wb: &mut WsClient, wc: &mut WsClient) {
    let (a, b, d) = (&w.a.u, &w.b.u, &w.d.u);
    wa.send_json(&json!({"type": "offer", "target": b.uid, "sdp": sdp("offer")}))
        .await;
    let x = hex32(&state(wa, "ringing").await["call_id"]);
    forwarded(wb, "call_start", &x, &a.uid).await;
    forwarded(wb, "offer", &x, &a.uid).await;
    wb.send_json(&json!({"type": "answer", "target": a.uid, "call_id": x, "sdp": sdp("answer")}))
        .await;
    state(wa, "accepted").await;
    forwarded(wa, "answer", &x, &b.uid).await;
    let cand = json!({"candidate": candidate(), "sdpMid": "0"});
    wa.send_json(&json!({"type": "candidate", "target": b.uid, "call_id": x, "candidate": cand}))
        .await;
    forwarded(wb, "candidate", &x, &a.uid).await;
    wa.send_json(&json!({"type": "call_connected", "target": b.uid, "call_id": x}))
        .await;
    state(wa, "connected").await;

    wc.send_json(&json!({"type": "call_start", "target": d.uid, "media": "video"}))
        .await;
    let y = hex32(&state(wc, "ringing").await["call_id"]);
    let offer = json!({"signal": "offer", "sdp": sdp("held")});
    wc.send_json(&json!({"type": "call_signal", "target": d.uid, "call_id": y, "payload": offer}))
        .await;
    wc.send_json(&json!({"type": "ice", "target": d.uid, "call_id": y, "candidate": cand}))
        .await;
    wc.ping().await;
}

/// Runs the real-time workload; returns the open sockets of A, B and C.
pub async fn run(api: &Api, s: &TestServer, push: &PushService, w: &World) -> Vec<WsClient> {
    let (a, b, c, d) = (&w.a, &w.b, &w.c, &w.d);
    let sub = push.browser_subscription(people::PUSH_PATH);
    api.post(
        d,
        "/register_push",
        json!({"platform": "web", "subscription": sub}),
    )
    .await;
    let fcm = json!({"platform": "android", "push_token": people::FCM_TOKEN});
    api.post(b, "/register_push", fcm).await;
    let mut wa = open(api, s, a).await;
    let mut wb = open(api, s, b).await;
    let mut wc = open(api, s, c).await;
    messages(api, w, &mut wa, &mut wb, &mut wc).await;

    api.post(c, "/status/online", json!({})).await;
    api.post(d, "/status/offline", json!({})).await;
    wb.send_json(&json!({"type": "presence", "status": "away"}))
        .await;
    let ids = format!("/statuses?user_ids={},{}", b.u.uid, c.u.uid);
    api.get(a, &ids).await;
    api.get(a, "/status/me").await;
    api.get(a, "/status/contacts").await;
    api.get(a, "/ice_servers").await;
    let remove = json!({"chat_id": w.group, "user_unique_id": c.u.uid});
    api.post(a, "/chats/members/remove", remove).await;
    api.post(d, "/chats/leave", json!({"chat_id": w.channel}))
        .await;

    calls(w, &mut wa, &mut wb, &mut wc).await;
    // Typing last: its state lives `TYPING_TTL` seconds.
    wa.send_json(&json!({"type": "typing_start", "target": b.u.uid}))
        .await;
    wb.send_json(&json!({"type": "typing_start", "chat_id": w.group}))
        .await;
    // A types in the group over HTTP: the chat a user types in is ephemeral state too.
    api.post(a, "/status/typing", json!({"chat_id": w.group}))
        .await;
    for ws in [&mut wa, &mut wb, &mut wc] {
        ws.ping().await;
    }
    vec![wa, wb, wc]
}
