//! Melo mounted in servers of its embedder: the axum example (`examples/axum.rs`), the client
//! address of a mounted service (`ClientAddr`, axum's `ConnectInfo`), the path prefix
//! (`http.path_prefix`), and `Melo::shutdown` closing sockets of a service served by the
//! embedder's own hyper loop. Real sockets throughout.

mod common;

#[cfg(feature = "axum")]
#[path = "../examples/axum.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::realtime::{make_contacts, relay, Target};
use common::ws::{WsClient, WAIT};
use common::{new_user, test_config, Client, TestServer};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use melo::{ClientAddr, Config, Melo, MemoryStore};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const LOCAL_1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const LOCAL_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn build(config: Config) -> Melo {
    Melo::builder(Arc::new(MemoryStore::new()), common::keys())
        .config(config)
        .build()
        .expect("build")
}

fn with_prefix(prefix: &str) -> Config {
    let mut config = test_config();
    config.http.path_prefix = prefix.to_owned();
    config
}

/// Serves `melo.service()` on a hyper loop of the test's own (not `Melo::serve`) until `stop`;
/// `tag` puts the peer into a `ClientAddr` extension instead of `with_peer`, and the service
/// is called through its tower impl.
async fn own_hyper_loop(melo: &Melo, tag: bool, stop: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = melo.service();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                a = listener.accept() => a.expect("accept"),
            };
            let service = service.clone();
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let builder = auto::Builder::new(TokioExecutor::new());
                if tag {
                    let svc =
                        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                            req.extensions_mut().insert(ClientAddr(peer));
                            let mut s = service.clone();
                            async move { tower_service::Service::call(&mut s, req).await }
                        });
                    let _ = builder.serve_connection_with_upgrades(io, svc).await;
                } else {
                    let svc = service.with_peer(peer);
                    let _ = builder.serve_connection_with_upgrades(io, svc).await;
                }
            });
        }
    });
    addr
}

/// `GET path` on `client`, the body as text.
async fn text(client: &Client, path: &str) -> (u16, String) {
    let r = client.get(path, None).await;
    (
        r.status.as_u16(),
        String::from_utf8_lossy(&r.raw).into_owned(),
    )
}

/// Two contacts A and B; A's socket (opened under `ws_path`) sends a DM, B's receives it.
async fn dm_over_sockets(t: &Target, ws_path: &str) {
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(t, &a, &b).await;
    let mut wa = WsClient::connect(t.http, ws_path, Some(&a.token), true, None).await;
    wa.sync().await;
    wa.ack_all().await;
    let mut wb = WsClient::connect(t.http, ws_path, Some(&b.token), true, None).await;
    wb.sync().await;
    wb.ack_all().await;
    let id = relay(&mut wa, &a, &b, "hello over the mount", "c-1").await;
    let f = wb.recv_type("relay_delivery", WAIT).await;
    assert_eq!(f["message_id"], id.as_str(), "{f}");
    assert_eq!(f["from"], a.uid.as_str(), "{f}");
    assert_eq!(f["payload"], "hello over the mount", "{f}");
    wa.close().await;
    wb.close().await;
}

/// With `ws.max_connections_per_ip = 1`: a socket from 127.0.0.1 and one from 127.0.0.2 are
/// both admitted, a second one from 127.0.0.1 is refused (1013). Seen as one address, the
/// 127.0.0.2 socket would be refused. A login from 127.0.0.2 records that address.
async fn client_addresses_are_told_apart(http: SocketAddr, prefix: &str) {
    let base = format!("http://{http}{prefix}");
    let c1 = Client::bound_to(base.clone(), LOCAL_1);
    let c2 = Client::bound_to(base, LOCAL_2);
    let a = new_user(&c1, "Alice").await;
    let b = new_user(&c2, "Bob").await;
    let sessions = c2.get("/sessions", Some(&b.token)).await;
    assert_eq!(sessions.status, 200, "{}", sessions.body);
    let current: Vec<&Value> = sessions.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["is_current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{}", sessions.body);
    assert_eq!(current[0]["ip_address"], "127.0.0.2", "{}", sessions.body);

    let ws_path = format!("{prefix}/ws");
    let mut w1 = WsClient::connect_from(LOCAL_1, http, &ws_path, &a.token).await;
    w1.sync().await;
    let mut w2 = WsClient::connect_from(LOCAL_2, http, &ws_path, &b.token).await;
    w2.sync().await;
    let mut w3 = WsClient::connect_from(LOCAL_1, http, &ws_path, &a.token).await;
    assert_eq!(
        w3.expect_close(WAIT).await,
        (1013, "too_many_connections".to_owned()),
        "a second socket from 127.0.0.1"
    );
    w1.close().await;
    w2.close().await;
}

fn one_socket_per_ip(mut config: Config) -> Config {
    config.ws.max_connections_per_ip = 1;
    config
}

#[cfg(feature = "axum")]
async fn serve_axum(melo: &Melo, stop: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = example::app(melo).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .expect("axum serve");
    });
    addr
}

/// The example's router: the embedder's routes answer, Melo answers under `/chat` (API and
/// socket: a DM between two sockets), and nothing of Melo's is outside `/chat`.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_mounts_melo_under_chat() {
    let melo = build(with_prefix(&example::config().http.path_prefix));
    let stop = CancellationToken::new();
    let http = serve_axum(&melo, stop.clone()).await;
    let root = Client::new(format!("http://{http}"));
    let (status, body) = text(&root, "/hello").await;
    assert_eq!((status, body.as_str()), (200, "Hello from the embedder\n"));
    let (status, body) = text(&root, "/").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("The embedder's home page"), "{body}");
    let r = root.get("/chat/status", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "ok", "{}", r.body);
    root.get("/status", None)
        .await
        .assert_error(404, "not_found");

    let t = Target::new(
        Client::new(format!("http://{http}{}", example::PREFIX)),
        http,
        http,
    );
    dm_over_sockets(&t, "/chat/ws").await;
    melo.shutdown().await;
    stop.cancel();
}

/// Through axum with `ConnectInfo`, Melo keys its per-IP socket cap and session IPs on each
/// client's own address.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn melo_in_axum_sees_each_client_address() {
    let melo = build(one_socket_per_ip(with_prefix(example::PREFIX)));
    let stop = CancellationToken::new();
    let http = serve_axum(&melo, stop.clone()).await;
    client_addresses_are_told_apart(http, example::PREFIX).await;
    melo.shutdown().await;
    stop.cancel();
}

/// Served by the embedder's own hyper loop through the tower impl, with the address in a
/// `ClientAddr` extension (no `with_peer`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_addr_extension_names_the_client() {
    let melo = build(one_socket_per_ip(test_config()));
    let stop = CancellationToken::new();
    let http = own_hyper_loop(&melo, true, stop.clone()).await;
    client_addresses_are_told_apart(http, "").await;
    melo.shutdown().await;
    stop.cancel();
}

/// `http.path_prefix`: every route, the socket, the web client and the docs move under it;
/// paths outside it are the JSON 404; the OpenAPI document names it; the WebSocket listener
/// keeps taking any path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_lives_under_the_path_prefix() {
    let s = TestServer::start_with(with_prefix("/chat"), Arc::new(MemoryStore::new())).await;
    let root = Client::new(format!("http://{}", s.addr));
    let chat = Client::new(format!("http://{}/chat", s.addr));

    for path in ["/status", "/healthz", "/openapi.json", "/docs", "/app/"] {
        let r = chat.get(path, None).await;
        assert_eq!(r.status, 200, "/chat{path}: {}", r.body);
        root.get(path, None).await.assert_error(404, "not_found");
    }
    // The prefix itself is the banner (`/`); a longer segment is not the prefix.
    let r = root.get("/chat", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, chat.get("/", None).await.body);
    root.get("/chatter/status", None)
        .await
        .assert_error(404, "not_found");
    root.get("/", None).await.assert_error(404, "not_found");
    // `/chat/app` → `app/`, relative: `/chat/app/`.
    let r = chat.get("/app", None).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("app/"));

    let doc = chat.get("/openapi.json", None).await.body;
    assert_eq!(doc["servers"], serde_json::json!([{ "url": "/chat" }]));
    assert!(doc["paths"]["/status"].is_object(), "paths stay unprefixed");
    let (_, docs) = text(&chat, "/docs").await;
    assert!(docs.contains("href=\"/chat/openapi.json\""), "{docs}");

    let t = Target::new(chat.clone(), s.addr, s.ws_addr);
    dm_over_sockets(&t, "/chat/ws").await;
    let u = new_user(&chat, "Carol").await;
    let refused = WsClient::try_connect(s.addr, "/ws", Some(&u.token), true, None).await;
    assert!(refused.is_err(), "/ws outside the prefix is no socket");
    let mut w = WsClient::connect(s.ws_addr, "/", Some(&u.token), true, None).await;
    w.sync().await;
    w.close().await;
    s.stop().await;
}

/// No prefix: the OpenAPI document names no server (paths are absolute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_prefix_openapi_names_no_server() {
    let s = TestServer::start().await;
    let doc = s.client.get("/openapi.json", None).await.body;
    assert!(doc["paths"]["/status"].is_object(), "{doc}");
    assert!(doc.get("servers").is_none(), "{}", doc["servers"]);
    s.stop().await;
}

#[test]
fn a_bad_path_prefix_is_refused_naming_the_variable() {
    for good in ["", "/chat", "/a/b-c_d.e~f", "/v1"] {
        with_prefix(good).validate().expect(good);
    }
    for bad in [
        "chat", "/", "/chat/", "/a//b", "/a/../b", "/..", "/a b", "/a?b", "/%2e", "/ä",
    ] {
        let e = with_prefix(bad).validate().expect_err(bad);
        assert!(
            e.starts_with("PATH_PREFIX (http.path_prefix)"),
            "{bad}: {e}"
        );
    }
}

/// `Melo::shutdown` closes a socket with 1001 `going_away` when Melo is served by the
/// embedder's own hyper loop (`service()` + `with_peer`), not by `Melo::serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_of_a_service_served_elsewhere() {
    let mut config = test_config();
    config.http.shutdown_grace_secs = 5;
    let melo = build(config);
    let stop = CancellationToken::new();
    let http = own_hyper_loop(&melo, false, stop.clone()).await;
    let c = Client::new(format!("http://{http}"));
    let u = new_user(&c, "Dave").await;
    let mut ws = WsClient::open(http, &u.token).await;
    ws.sync().await;
    ws.ack_all().await;
    let ((), close) = tokio::join!(melo.shutdown(), ws.expect_close(WAIT));
    assert_eq!(close, (1001, "going_away".to_owned()));
    stop.cancel();
}

/// Requests outside the prefix are not Melo's: they answer 404 without spending the client's
/// HTTP budget (a host site's favicons and crawlers must not lock its users out of the chat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_prefix_spend_no_budget() {
    let mut config = with_prefix("/chat");
    config.limits.rate_limit_calls = 3;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    let root = Client::new(format!("http://{}", s.addr));
    let chat = Client::new(format!("http://{}/chat", s.addr));
    for _ in 0..10 {
        root.get("/favicon.ico", None)
            .await
            .assert_error(404, "not_found");
    }
    for _ in 0..3 {
        let r = chat.get("/status", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The budget is real: the fourth request inside the prefix is refused.
    chat.get("/status", None)
        .await
        .assert_error(429, "rate_limited");
    s.stop().await;
}
