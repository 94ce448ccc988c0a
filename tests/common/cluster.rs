//! Two nodes acting as one server (issue 6): `n1` and `n2` share the store and the ephemeral
//! state/bus. Run in-process on shared memory backends (tests/cluster.rs) and, with the
//! production backends, on MySQL + Redis.

use serde_json::{json, Value};

use super::realtime::{make_contacts, online, relay, second_device, Target};
use super::ws::{is, WsClient, WAIT};
use super::{new_user, User};

fn delivery_of(f: &Value, id: &str) -> bool {
    is(f, "relay_delivery") && f["message_id"] == id
}

async fn delivered(ws: &mut WsClient, id: &str) -> Value {
    let f = ws
        .recv_where(
            &format!("relay_delivery {id}"),
            |f| delivery_of(f, id),
            WAIT,
        )
        .await;
    if let Some(seq) = f["seq"].as_i64() {
        ws.send_json(&json!({"type": "ack_received", "seq": seq}))
            .await;
    }
    f
}

async fn state(ws: &mut WsClient, st: &str) -> Value {
    ws.recv_where(
        &format!("call_state {st}"),
        |f| is(f, "call_state") && f["state"] == st,
        WAIT,
    )
    .await
}

/// A on node 1, B on node 2 (and B's second device on node 1).
pub async fn two_nodes(n1: &Target, n2: &Target) {
    let a = new_user(&n1.client, "cla").await;
    let b = new_user(&n2.client, "clb").await;
    make_contacts(n1, &a, &b).await;
    let mut wa = online(n1, &a).await;
    let mut wb = online(n2, &b).await;
    // Presence crosses nodes: A (node 1) learns that B (node 2) is online.
    wa.recv_where(
        "status_change of B online",
        |f| is(f, "status_change") && f["user_id"] == b.uid.as_str() && f["status"] == "online",
        WAIT,
    )
    .await;
    let b2: User = second_device(n1, &b).await;
    let mut wb2 = online(n1, &b2).await;

    // DMs both ways, live, to every device of B on both nodes; receipts come back across.
    let m1 = relay(&mut wa, &a, &b, "Q0wtMQ==", "cl-1").await;
    delivered(&mut wb, &m1).await;
    delivered(&mut wb2, &m1).await;
    let st = wa
        .recv_where(
            "delivered of m1",
            |f| is(f, "msg_status") && f["message_id"] == m1.as_str() && f["status"] == "delivered",
            WAIT,
        )
        .await;
    assert_eq!(st["from"], b.uid.as_str());
    let m2 = relay(&mut wb, &b, &a, "Q0wtMg==", "cl-2").await;
    delivered(&mut wa, &m2).await;
    // B's own copy reaches B's other device, on the other node.
    let copy = delivered(&mut wb2, &m2).await;
    assert_eq!(copy["self"], true, "{copy}");

    // Typing from node 2 reaches node 1.
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    wa.recv_where(
        "typing_start from B",
        |f| is(f, "typing_start") && f["user_id"] == b.uid.as_str(),
        WAIT,
    )
    .await;

    // A group created on node 1; its message reaches B on node 2.
    let r = n1
        .client
        .post("/chats/create", Some(&a.token), &json!({"name": "Nodes"}))
        .await;
    let k = r.body["chat_id"].as_i64().expect("chat id");
    let r = n2
        .client
        .post(
            "/chats/members/add",
            Some(&a.token),
            &json!({"chat_id": k, "user_unique_id": b.uid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wa.send_json(&json!({"type": "relay", "chat_id": k, "payload": "R1JQ", "client_id": "cl-g"}))
        .await;
    let q = wa
        .recv_where(
            "queued cl-g",
            |f| is(f, "msg_status") && f["client_id"] == "cl-g",
            WAIT,
        )
        .await;
    let g = q["message_id"].as_str().expect("id").to_owned();
    assert_eq!(delivered(&mut wb, &g).await["chat_id"], k);
    delivered(&mut wb2, &g).await;

    // A call rings B on both nodes; B2 (node 1) answers; B on node 2 hears answered_elsewhere.
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let ringing = state(&mut wa, "ringing").await;
    let call = ringing["call_id"].as_str().expect("call id").to_owned();
    for ws in [&mut wb, &mut wb2] {
        ws.recv_where(
            "call_start",
            |f| is(f, "call_start") && f["call_id"] == call.as_str(),
            WAIT,
        )
        .await;
    }
    wb2.send_json(&json!({"type": "call_accept", "target": a.uid, "call_id": call}))
        .await;
    state(&mut wa, "accepted").await;
    state(&mut wb, "answered_elsewhere").await;
    wa.send_json(&json!({"type": "call_end", "target": b.uid, "call_id": call}))
        .await;
    state(&mut wb2, "ended").await;

    // Revoking B's node-2 session from node 1 closes that socket on node 2.
    let r = n1
        .client
        .call(
            http::Method::DELETE,
            &format!("/sessions/{}", b.session_id),
            Some(&b2.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    while wb.recv_json(WAIT).await.is_some() {}
    assert_eq!(wb.closed, Some((1008, "token_revoked".to_owned())));
    // The token is refused on both nodes.
    for n in [n1, n2] {
        n.client
            .get("/contacts", Some(&b.token))
            .await
            .assert_error(401, "token_revoked");
    }
    wa.ack_and_close().await;
    wb2.ack_and_close().await;
}
