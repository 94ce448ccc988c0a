//! Authorization matrix (issue 7): every served route and every client WebSocket frame type ×
//! {owner, admin, member, contact, stranger, revoked session, no token} gives the PROTOCOL
//! answer. The tables are `tests/common/authz_routes.rs` and `tests/common/authz_frames.rs`;
//! the fixture is `tests/common/authz_fixture.rs`. Every cell runs; all mismatches are
//! reported together.

mod common;

use std::collections::BTreeSet;

use common::authz_fixture::{ok, setup, subst, subst_path, upload_avatar, Fx, Prep, Role, ROLES};
use common::authz_frames::{self, CLIENT_FRAMES};
use common::authz_routes::{routes, After, Body, Exp, Route};
use common::realtime::Target;
use common::ws::{is, WsClient, WAIT};
use common::{test_config, Resp, TestServer};
use http::Method;
use melo::MemoryStore;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_frame_answers_each_role_as_protocol_says() {
    let mut config = test_config();
    // Thousands of frames and sockets from one IP: the WS limits are tested elsewhere.
    config.ws.rate_limit_messages = 1_000_000;
    config.ws.max_connections_per_ip = 10_000;
    let s = TestServer::start_with(config, std::sync::Arc::new(MemoryStore::new())).await;
    let fx = setup(Target::of(&s)).await;

    let served = served_operations(&s).await;
    let table = routes();
    assert_covers_every_route(&table, &served);
    let kinds: BTreeSet<String> = authz_frames::frames()
        .iter()
        .map(|r| r.kind().to_owned())
        .collect();
    let missing: Vec<_> = CLIENT_FRAMES
        .iter()
        .filter(|k| !kinds.contains(**k))
        .collect();
    assert!(missing.is_empty(), "frame types without a row: {missing:?}");
    let unknown: Vec<_> = kinds
        .iter()
        .filter(|k| !CLIENT_FRAMES.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows of frame types PROTOCOL lacks: {unknown:?}"
    );

    let mut mismatches = Vec::new();
    let mut http_cells = 0;
    for route in &table {
        for (role, want) in ROLES.iter().zip(route.expect) {
            http_cells += 1;
            run_cell(&fx, route, *role, want, &mut mismatches).await;
        }
    }
    let ws_cells = authz_frames::run(&fx, &mut mismatches).await;
    s.stop().await;
    assert!(
        mismatches.is_empty(),
        "{} of {} cells ({} routes × 7, {} frames × 7) differ from PROTOCOL:\n{}",
        mismatches.len(),
        http_cells + ws_cells,
        table.len(),
        ws_cells / 7,
        mismatches.join("\n")
    );
}

/// `(METHOD, template)` of every operation in `/openapi.json`, which tests/openapi.rs holds
/// equal to the route table that serves requests.
async fn served_operations(s: &TestServer) -> BTreeSet<(String, String)> {
    let doc = s.client.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            methods.map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

/// A new route without a row fails here, and so does a row for a route that is not served.
fn assert_covers_every_route(table: &[Route], served: &BTreeSet<(String, String)>) {
    let rows: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let uncovered: Vec<_> = served.difference(&rows).collect();
    assert!(
        uncovered.is_empty(),
        "routes without a matrix row: {uncovered:?}"
    );
    let unserved: Vec<_> = rows.difference(served).collect();
    assert!(
        unserved.is_empty(),
        "matrix rows for unserved routes: {unserved:?}"
    );
}

fn show(e: Exp) -> String {
    match e {
        Exp::Ok => "200".into(),
        Exp::Err(status, reason) => format!("{status} {reason}"),
    }
}

async fn run_cell(fx: &Fx, route: &Route, role: Role, want: Exp, out: &mut Vec<String>) {
    let what = format!(
        "{} {} [{}] × {}",
        route.method,
        route.path,
        route.target,
        role.name()
    );
    let prep = match fx.prepare(route.obj, role).await {
        Ok(p) => p,
        Err(e) => return out.push(format!("{what}: setup failed: {e}")),
    };
    let (status, reason, body) = request(fx, route, role, &prep).await;
    let matched = match want {
        Exp::Ok => status == 200,
        Exp::Err(s, r) => status == s && reason == r,
    };
    if !matched {
        let got = if status == 200 || status == 101 {
            status.to_string()
        } else {
            format!("{status} {reason}")
        };
        out.push(format!("{what}: expected {}, got {got}", show(want)));
    }
    if role.live() {
        if let Err(e) = after(fx, route.after, role, &prep, status, &body).await {
            out.push(format!("{what}: {e}"));
        }
    }
}

/// Sends the cell's request: (status, reason, body). The upgrade row reports 200 for an
/// admitted socket and the close code and reason otherwise.
async fn request(fx: &Fx, route: &Route, role: Role, prep: &Prep) -> (u16, String, Value) {
    let c = &fx.t.client;
    let token = prep.token.as_deref().or(fx.token(role));
    let path = subst_path(route.at, &prep.vars);
    let method = Method::from_bytes(route.method.as_bytes()).expect("method");
    let r: Resp = match &route.body {
        Body::None => c.call(method, &path, token, None).await,
        Body::Json(v) => {
            c.call(method, &path, token, Some(&subst(v, &prep.vars)))
                .await
        }
        Body::Avatar => upload_avatar(c, token).await,
        Body::Upgrade => return admission(fx, token).await,
    };
    let reason = r.reason().to_owned();
    (r.status.as_u16(), reason, r.body)
}

async fn admission(fx: &Fx, token: Option<&str>) -> (u16, String, Value) {
    let mut ws = WsClient::connect(fx.t.http, "/ws", token, true, None).await;
    while let Some(f) = ws.recv_json(WAIT).await {
        if is(&f, "sync_done") {
            ws.close().await;
            return (200, String::new(), f);
        }
    }
    let (code, reason) = ws.closed.clone().unwrap_or((0, "no answer".into()));
    (code, reason, Value::Null)
}

/// The row's undo step or side-effect check; an error is a mismatch.
async fn after(
    fx: &Fx,
    after: After,
    role: Role,
    prep: &Prep,
    status: u16,
    body: &Value,
) -> Result<(), String> {
    let c = &fx.t.client;
    let me = fx.user(role);
    let owner = fx.owner();
    match after {
        After::Nothing => {}
        After::WithdrawRequest if status == 200 => {
            let b = json!({"target_id": owner.uid, "csrf_token": me.csrf});
            ok(c.post("/unsubscribe", Some(&me.token), &b).await)?;
        }
        After::WithdrawRequest => {}
        After::ReuploadAvatar => {
            ok(upload_avatar(c, Some(&me.token)).await)?;
        }
        After::BackOnline => {
            ok(c.post("/status/online", Some(&me.token), &json!({})).await)?;
        }
        After::OwnerTokenSurvives if role != Role::Owner => {
            let b = json!({"device_id": owner.device, "device_token": prep.vars["device_token"]});
            let r = c.post("/devices/refresh", Some(&owner.token), &b).await;
            if r.status != 200 {
                return Err(format!(
                    "the owner's device token stopped working ({})",
                    r.body
                ));
            }
        }
        After::OwnerTokenSurvives => {}
        After::RoleKept => {
            let list = ok(c.get("/chats/list?per_page=100", Some(&me.token)).await)?;
            let chat = &prep.vars["chat"];
            let found = list["chats"].as_array().into_iter().flatten();
            let role_now = found
                .filter(|ch| ch["id"] == *chat)
                .find_map(|ch| ch["role"].as_str());
            let want = match role {
                Role::Owner => "owner",
                Role::Admin => "admin",
                _ => "member",
            };
            if role_now != Some(want) {
                return Err(format!(
                    "role in the chat afterwards: {role_now:?}, not {want}"
                ));
            }
        }
        After::OwnerStatusHidden => {
            let st = &body["statuses"][owner.uid.as_str()]["status"];
            let hidden = *st == "not_subscribed";
            let contact = matches!(role, Role::Admin | Role::Member | Role::Contact);
            if status == 200 && role != Role::Owner && hidden == contact {
                return Err(format!("the owner's status as shown: {st}"));
            }
        }
    }
    Ok(())
}
