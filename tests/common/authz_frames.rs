//! The WebSocket half of the authorization matrix: every client → server frame type of
//! PROTOCOL §5.4 and §5.7 × the seven roles, with the answer per role: a reply frame, nothing
//! (processed; no `error`), an `error` frame with its §5.2 reason, or — for the revoked session
//! and the anonymous caller — the admission close of §5.1 (1008 with the §3.1 reason).
//!
//! Each live cell opens fresh sockets (a new socket of a device replaces its older one), sends
//! the frame with a unique `client_id` (echoed as `ref` in errors, §5.2) and then a barrier: a
//! frame of a unique unknown type, answered `error` `unknown_type` with that type as `ref`.
//! Frames are handled in order, so a refusal of the frame arrives before the barrier's answer.

use serde_json::{json, Value};
use tokio::time::Instant;

use super::authz_fixture::{subst, Fx, Obj, Role, ROLES};
use super::ws::{is, WsClient, WAIT};

/// The client frame types PROTOCOL defines (§5.4, §5.7); each must have a row.
pub const CLIENT_FRAMES: &[&str] = &[
    "ping",
    "relay",
    "chat_message",
    "get_history",
    "ack_received",
    "ack_read",
    "typing_start",
    "typing_stop",
    "presence",
    "call_start",
    "call_signal",
    "offer",
    "answer",
    "candidate",
    "ice",
    "ringing",
    "call_accept",
    "accept",
    "call_reject",
    "reject",
    "hangup",
    "call_connected",
    "call_end_state",
    "call_end",
];

/// The expected answer to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FExp {
    /// A frame of this type whose `state` / `status` is the second value ("" = any).
    Reply(&'static str, &'static str),
    /// Processed: no `error` for it before the barrier's answer.
    Quiet,
    /// `error` with this reason and `ref` = the frame's `client_id`.
    Refused(&'static str),
    /// Admission refused: upgrade, then close 1008 with this reason.
    Closed(&'static str),
}

/// What a cell observed.
#[derive(Debug)]
pub enum Got {
    Reply,
    /// Processed without an error; the other frames seen meanwhile.
    Quiet(Vec<String>),
    Refused(String),
    Closed(u16, String),
    /// Neither the barrier's answer nor a close: the frames seen instead.
    NoAnswer(Vec<String>),
}

/// What a row needs before its frame, and what is undone after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Only the fixture (`$owner`, `$group`, …).
    Plain,
    /// An object of the HTTP table (`$msg`).
    Object(Obj),
    /// The frame may start a call: afterwards the caller hangs up.
    StartsCall,
    /// `$call`: the owner's call to the contact, ringing; `$peer` is the contact for the owner
    /// and the owner for everyone else. The owner ends it afterwards.
    RingingCall,
    /// As [`Setup::RingingCall`], accepted by the contact.
    AcceptedCall,
}

pub struct FrameRow {
    pub target: &'static str,
    pub setup: Setup,
    pub frame: Value,
    pub expect: [FExp; 7],
}

impl FrameRow {
    pub fn kind(&self) -> &str {
        self.frame["type"].as_str().unwrap_or("")
    }
}

const Q: FExp = FExp::Quiet;
const REV: FExp = FExp::Closed("token_revoked");
const ANON: FExp = FExp::Closed("unauthenticated");
const SELF: FExp = FExp::Refused("invalid_target");
const NOT_CONTACT: FExp = FExp::Refused("not_a_contact");
const NOT_MEMBER: FExp = FExp::Refused("not_a_member");
const FORBIDDEN: FExp = FExp::Refused("forbidden");
const UNKNOWN: FExp = FExp::Refused("unknown_message");
const NO_CALL: FExp = FExp::Refused("call_not_found");
const QUEUED: FExp = FExp::Reply("msg_status", "queued");
const HISTORY: FExp = FExp::Reply("history", "");
const RINGING: FExp = FExp::Reply("call_state", "ringing");
const ACCEPTED: FExp = FExp::Reply("call_state", "accepted");
const REJECTED: FExp = FExp::Reply("call_state", "rejected");
const MISSED: FExp = FExp::Reply("call_state", "missed");

fn f(target: &'static str, setup: Setup, frame: Value, expect: [FExp; 7]) -> FrameRow {
    FrameRow {
        target,
        setup,
        frame,
        expect,
    }
}

/// The table, in run order.
#[rustfmt::skip]
pub fn frames() -> Vec<FrameRow> {
    use Setup::*;
    let mut rows = vec![
        f("the caller's socket", Plain, json!({"type": "ping"}),
          [FExp::Reply("pong", ""), FExp::Reply("pong", ""), FExp::Reply("pong", ""),
           FExp::Reply("pong", ""), FExp::Reply("pong", ""), REV, ANON]),
        f("the caller's presence", Plain, json!({"type": "presence", "status": "away"}),
          [Q, Q, Q, Q, Q, REV, ANON]),
        // §5.3: acking an entry that is not queued is a no-op, never an error.
        f("the owner's group message", Object(Obj::OwnerGroupMsg),
          json!({"type": "ack_received", "message_id": "$msg"}), [Q, Q, Q, Q, Q, REV, ANON]),
        // §5.4: "a message the caller received (DM recipient or chat member, not its author)".
        f("the owner's DM to the contact", Object(Obj::OwnerDmToContact),
          json!({"type": "ack_read", "message_id": "$msg"}),
          [UNKNOWN, UNKNOWN, UNKNOWN, Q, UNKNOWN, REV, ANON]),
        f("the owner's group message", Object(Obj::OwnerGroupMsg),
          json!({"type": "ack_read", "message_id": "$msg"}),
          [UNKNOWN, Q, Q, UNKNOWN, UNKNOWN, REV, ANON]),
        f("the owner's channel post", Object(Obj::OwnerChannelMsg),
          json!({"type": "ack_read", "message_id": "$msg"}),
          [UNKNOWN, Q, Q, UNKNOWN, UNKNOWN, REV, ANON]),
    ];
    // §5.4 messages and history, §5.6 typing: to the owner, in the group, in the channel.
    for (kind, extra) in [
        ("relay", json!({"payload": "x"})),
        ("chat_message", json!({"text": "x"})),
        ("get_history", json!({"limit": 5})),
        ("typing_start", json!({})),
        ("typing_stop", json!({})),
    ] {
        let frame = |to: Value| {
            let mut v = json!({"type": kind});
            let m = v.as_object_mut().expect("object");
            m.extend(to.as_object().expect("object").clone());
            m.extend(extra.as_object().expect("object").clone());
            v
        };
        let (dm, group, channel) = match kind {
            // History of the caller's own DM needs no contact (§4.6); members read channels.
            "get_history" => ([HISTORY; 5], [HISTORY, HISTORY, HISTORY, NOT_MEMBER, NOT_MEMBER],
                              [HISTORY, HISTORY, HISTORY, NOT_MEMBER, NOT_MEMBER]),
            // §5.6: typing in a channel is `forbidden` for every member.
            "typing_start" | "typing_stop" => ([SELF, Q, Q, Q, NOT_CONTACT], [Q, Q, Q, NOT_MEMBER, NOT_MEMBER],
                              [FORBIDDEN, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER]),
            _ => ([SELF, QUEUED, QUEUED, QUEUED, NOT_CONTACT], [QUEUED, QUEUED, QUEUED, NOT_MEMBER, NOT_MEMBER],
                  [QUEUED, QUEUED, FORBIDDEN, NOT_MEMBER, NOT_MEMBER]),
        };
        for (target, to, five) in [
            ("the DM with the owner", json!({"target": "$owner"}), dm),
            ("the group chat", json!({"chat_id": "$group"}), group),
            ("the channel", json!({"chat_id": "$channel"}), channel),
        ] {
            let [o, a, m, c, s] = five;
            rows.push(f(target, Plain, frame(to), [o, a, m, c, s, REV, ANON]));
        }
    }
    // §5.7 frames that start a call (`offer` / `call_signal` offer outside any call), to the owner.
    let starts = [SELF, RINGING, RINGING, RINGING, NOT_CONTACT, REV, ANON];
    rows.push(f("a call to the owner", StartsCall, json!({"type": "call_start", "target": "$owner"}), starts));
    rows.push(f("a call to the owner", StartsCall, json!({"type": "offer", "target": "$owner", "sdp": "v=0"}), starts));
    rows.push(f("a call to the owner", StartsCall,
                json!({"type": "call_signal", "target": "$owner", "payload": {"signal": "offer", "sdp": "v=0"}}), starts));
    // The owner's ringing call to the contact: only its two sides may act on it; anyone else
    // naming it gets `call_not_found` ("a frame for no active call of the sender").
    let call = "the owner's ringing call with the contact";
    rows.push(f(call, RingingCall, json!({"type": "call_start", "target": "$peer"}),
                [FExp::Refused("call_in_progress"), FExp::Reply("call_state", "busy"),
                 FExp::Reply("call_state", "busy"), FExp::Refused("call_in_progress"), NOT_CONTACT, REV, ANON]));
    // While ringing, a frame the §5.7 table gives no state change is forwarded ("every call
    // frame except call_connected and call_end_state is forwarded"). PROTOCOL is silent on the
    // caller's own `answer`/`call_accept`/`call_reject`: the server forwards them and the call
    // goes on, which is sensible since only a callee device decides (§5.7 table).
    for (kind, callee) in [
        ("offer", Q), ("answer", ACCEPTED), ("candidate", Q), ("ice", Q), ("ringing", Q),
        ("call_accept", ACCEPTED), ("accept", ACCEPTED), ("call_reject", REJECTED), ("reject", REJECTED),
    ] {
        let frame = json!({"type": kind, "target": "$peer", "call_id": "$call", "sdp": "v=0",
                           "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}});
        rows.push(f(call, RingingCall, frame, [Q, NO_CALL, NO_CALL, callee, NO_CALL, REV, ANON]));
    }
    rows.push(f(call, RingingCall,
                json!({"type": "call_signal", "target": "$peer", "call_id": "$call",
                       "payload": {"signal": "candidate", "candidate": {"candidate": "c"}}}),
                [Q, NO_CALL, NO_CALL, Q, NO_CALL, REV, ANON]));
    // Ending while ringing: the caller's side → `missed`, the callee's → `rejected`.
    for kind in ["hangup", "call_end", "call_end_state"] {
        rows.push(f(call, RingingCall, json!({"type": kind, "target": "$peer", "call_id": "$call"}),
                    [MISSED, NO_CALL, NO_CALL, REJECTED, NO_CALL, REV, ANON]));
    }
    let connected = FExp::Reply("call_state", "connected");
    rows.push(f("the owner's accepted call with the contact", AcceptedCall,
                json!({"type": "call_connected", "target": "$peer", "call_id": "$call"}),
                [connected, NO_CALL, NO_CALL, connected, NO_CALL, REV, ANON]));
    rows
}

/// Runs every frame row × role; mismatches go to `out`. Returns the number of cells.
pub async fn run(fx: &Fx, out: &mut Vec<String>) -> usize {
    let mut cells = 0;
    for (i, row) in frames().iter().enumerate() {
        for (j, (role, want)) in ROLES.iter().zip(row.expect).enumerate() {
            cells += 1;
            let cid = format!("authz-{i}-{j}");
            let got = if role.live() {
                live_cell(fx, row, *role, want, &cid).await
            } else {
                Ok(admission_cell(fx, row, *role).await)
            };
            let what = format!("WS {} [{}] × {}", row.kind(), row.target, role.name());
            match got {
                Err(e) => out.push(format!("{what}: setup failed: {e}")),
                Ok(got) if !matches(want, &got) => {
                    out.push(format!("{what}: expected {want:?}, got {got:?}"));
                }
                Ok(_) => {}
            }
        }
    }
    cells
}

fn matches(want: FExp, got: &Got) -> bool {
    match (want, got) {
        (FExp::Reply(..), Got::Reply) | (FExp::Quiet, Got::Quiet(_)) => true,
        (FExp::Refused(r), Got::Refused(g)) => r == g,
        (FExp::Closed(r), Got::Closed(code, g)) => *code == 1008 && r == g,
        _ => false,
    }
}

/// The revoked session and the anonymous caller: connect, send the frame, see the close.
async fn admission_cell(fx: &Fx, row: &FrameRow, role: Role) -> Got {
    let mut vars = match row.setup {
        Setup::Object(o) => match fx.prepare(o, role).await {
            Ok(p) => p.vars,
            Err(e) => return Got::NoAnswer(vec![e]),
        },
        _ => fx.vars(role),
    };
    // No call is set up for a socket that is never admitted; any well-formed id will do.
    vars.insert("call", json!("0".repeat(32)));
    let frame = subst(&row.frame, &vars);
    let token = fx.token(role);
    let mut ws = WsClient::connect(fx.t.http, "/ws", token, true, None).await;
    let _ = ws.try_send_text(frame.to_string()).await;
    let mut seen = Vec::new();
    while let Some(f) = ws.recv_json(WAIT).await {
        seen.push(describe(&f));
    }
    match ws.closed.take() {
        Some((code, reason)) if seen.is_empty() => Got::Closed(code, reason),
        _ => Got::NoAnswer(seen),
    }
}

async fn live_cell(
    fx: &Fx,
    row: &FrameRow,
    role: Role,
    want: FExp,
    cid: &str,
) -> Result<Got, String> {
    let mut vars = match row.setup {
        Setup::Object(o) => fx.prepare(o, role).await?.vars,
        _ => fx.vars(role),
    };
    let mut pool = Pool::default();
    let call = match row.setup {
        Setup::RingingCall => Some(start_call(fx, &mut pool, false).await?),
        Setup::AcceptedCall => Some(start_call(fx, &mut pool, true).await?),
        _ => None,
    };
    if let Some(id) = &call {
        vars.insert("call", json!(id));
    }
    let mut frame = subst(&row.frame, &vars);
    frame["client_id"] = json!(cid);
    let reply = match want {
        FExp::Reply(t, s) => Some((t, s)),
        _ => None,
    };
    let ws = pool.get(fx, role).await?;
    ws.send_json(&frame).await;
    let got = answer(ws, cid, reply).await;
    // Undo: no call may outlive its cell.
    let owner = fx.owner().uid.clone();
    let contact = fx.users[3].uid.clone();
    match (row.setup, call) {
        (Setup::StartsCall, _) if role != Role::Owner => {
            let ws = pool.get(fx, role).await?;
            ws.send_json(&json!({"type": "call_end", "target": owner}))
                .await;
            answer(ws, "authz-cleanup", None).await;
        }
        (_, Some(id)) => {
            let ws = pool.get(fx, Role::Owner).await?;
            ws.send_json(&json!({"type": "call_end", "target": contact, "call_id": id}))
                .await;
            answer(ws, "authz-cleanup", None).await;
        }
        _ => {}
    }
    pool.close().await;
    Ok(got)
}

/// Sends the barrier and reads until its answer (and the expected reply, if any) arrives.
async fn answer(ws: &mut WsClient, cid: &str, reply: Option<(&str, &str)>) -> Got {
    let barrier = format!("authz_barrier_{cid}").replace('-', "_");
    ws.send_json(&json!({"type": barrier})).await;
    let deadline = Instant::now() + WAIT;
    let (mut refused, mut replied, mut fenced) = (None, false, false);
    let mut seen = Vec::new();
    while !(fenced && (refused.is_some() || replied || reply.is_none())) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(f) = ws.recv_json(left).await else {
            break;
        };
        if let Some(seq) = f["seq"].as_i64() {
            ws.ack_up_to(seq).await;
        }
        if is(&f, "error") && f["ref"] == barrier.as_str() {
            fenced = true;
        } else if is(&f, "error") && f["ref"] == cid {
            refused = f["reason"].as_str().map(str::to_owned);
        } else if reply.is_some_and(|(t, s)| {
            is(&f, t)
                && (s.is_empty() || f["state"] == s || f["status"] == s)
                && (f.get("client_id").is_none() || f["client_id"] == cid)
        }) {
            replied = true;
        } else {
            seen.push(describe(&f));
        }
    }
    if let Some((code, reason)) = ws.closed.clone() {
        return Got::Closed(code, reason);
    }
    match (refused, replied, fenced) {
        (Some(r), _, _) => Got::Refused(r),
        (None, true, _) => Got::Reply,
        (None, false, true) => Got::Quiet(seen),
        (None, false, false) => Got::NoAnswer(seen),
    }
}

fn describe(f: &Value) -> String {
    let detail = ["state", "status", "reason"]
        .iter()
        .find_map(|k| f[*k].as_str())
        .unwrap_or("");
    format!("{} {detail}", f["type"].as_str().unwrap_or("?"))
        .trim_end()
        .to_owned()
}

/// The owner calls the contact; returns the `call_id` once ringing (accepted: once accepted).
async fn start_call(fx: &Fx, pool: &mut Pool, accept: bool) -> Result<String, String> {
    let (owner, contact) = (fx.owner().uid.clone(), fx.users[3].uid.clone());
    pool.get(fx, Role::Contact).await?;
    let wo = pool.get(fx, Role::Owner).await?;
    wo.send_json(&json!({"type": "call_start", "target": contact}))
        .await;
    let state = |f: &Value| is(f, "call_state") || is(f, "error");
    let r = wo.try_recv_where(state, WAIT).await.ok_or("no ringing")?;
    let id = match (r["state"].as_str(), r["call_id"].as_str()) {
        (Some("ringing"), Some(id)) => id.to_owned(),
        _ => return Err(format!("call_start answered {r}")),
    };
    if accept {
        let wc = pool.get(fx, Role::Contact).await?;
        wc.send_json(&json!({"type": "call_accept", "target": owner, "call_id": id}))
            .await;
        let r = wc.try_recv_where(state, WAIT).await.ok_or("no accepted")?;
        if r["state"] != "accepted" {
            return Err(format!("call_accept answered {r}"));
        }
    }
    Ok(id)
}

/// The sockets of one cell, one per role, each synced with its backlog acknowledged.
#[derive(Default)]
struct Pool {
    socks: Vec<(Role, WsClient)>,
}

impl Pool {
    async fn get(&mut self, fx: &Fx, role: Role) -> Result<&mut WsClient, String> {
        if let Some(i) = self.socks.iter().position(|(r, _)| *r == role) {
            return Ok(&mut self.socks[i].1);
        }
        let token = fx.token(role).ok_or("no token")?;
        let mut ws = WsClient::open(fx.t.http, token).await;
        // Ack as the backlog arrives: it may exceed the 256-frame window (§5.3).
        loop {
            let f = ws.recv_json(WAIT).await.ok_or("no sync_done")?;
            if let Some(seq) = f["seq"].as_i64() {
                ws.ack_up_to(seq).await;
            }
            if is(&f, "sync_done") {
                break;
            }
        }
        self.socks.push((role, ws));
        Ok(&mut self.socks.last_mut().expect("pushed").1)
    }

    async fn close(self) {
        for (_, ws) in self.socks {
            ws.close().await;
        }
    }
}
