//! The workload's HTTP client: every request carries the actor's `User-Agent` and
//! `X-Forwarded-For` (the server trusts 127.0.0.1 as a proxy), and every request is recorded so
//! the workload can prove it served each documented route.

use std::collections::BTreeSet;
use std::sync::Mutex;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use serde_json::Value;

use crate::common::{Client, Resp, User};

/// Where a client appears to come from.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    pub ua: &'static str,
    pub ip: &'static str,
}

/// A logged-in device and its network identity.
#[derive(Clone, Debug)]
pub struct Actor {
    pub u: User,
    pub net: Net,
}

pub struct Api {
    pub client: Client,
    hits: Mutex<Vec<(String, String, u16)>>,
}

impl Api {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            hits: Mutex::new(Vec::new()),
        }
    }

    /// Sends one request as `net`, with `token` and a JSON or raw body; records it.
    pub async fn send(
        &self,
        net: Net,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let mut b = self
            .client
            .request(method.clone(), path, token)
            .header("user-agent", net.ua)
            .header("x-forwarded-for", net.ip);
        let body = match body {
            Some((content_type, bytes)) => {
                b = b.header("content-type", content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let r = self.client.send(b.body(body).expect("request")).await;
        self.record(method.as_str(), path, r.status.as_u16());
        r
    }

    /// Records a request made elsewhere (the WebSocket upgrades).
    pub fn record(&self, method: &str, path: &str, status: u16) {
        let path = path.split('?').next().unwrap_or(path).to_owned();
        self.hits
            .lock()
            .expect("hits")
            .push((method.to_owned(), path, status));
    }

    async fn json(
        &self,
        net: Net,
        m: Method,
        path: &str,
        token: Option<&str>,
        v: Option<&Value>,
    ) -> Resp {
        let body = v.map(|v| ("application/json", serde_json::to_vec(v).expect("json")));
        self.send(net, m, path, token, body).await
    }

    /// A request as `who` with a raw body (`content type`, bytes), answered as it may be.
    pub async fn raw(
        &self,
        who: &Actor,
        m: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        self.send(who.net, m, path, Some(&who.u.token), body).await
    }

    /// A request as `who`, asserting 200; returns the JSON body.
    pub async fn ok(&self, who: &Actor, m: Method, path: &str, body: Option<Value>) -> Value {
        let r = self
            .json(who.net, m.clone(), path, Some(&who.u.token), body.as_ref())
            .await;
        assert_eq!(r.status, 200, "{m} {path} as {}: {}", who.u.uid, r.body);
        r.body
    }

    pub async fn get(&self, who: &Actor, path: &str) -> Value {
        self.ok(who, Method::GET, path, None).await
    }

    pub async fn post(&self, who: &Actor, path: &str, body: Value) -> Value {
        self.ok(who, Method::POST, path, Some(body)).await
    }

    /// An anonymous request from `net`, answered as it may be.
    pub async fn anon(&self, net: Net, m: Method, path: &str, body: Option<Value>) -> Resp {
        self.json(net, m, path, None, body.as_ref()).await
    }

    /// Documented operations (from `/openapi.json`) that no request of the workload hit with a
    /// success status (< 400; 101 for the WebSocket upgrade).
    pub fn untouched(&self, openapi: &Value) -> Vec<String> {
        let hits = self.hits.lock().expect("hits");
        let ok: BTreeSet<(&str, &str)> = hits
            .iter()
            .filter(|(_, _, s)| *s < 400)
            .map(|(m, p, _)| (m.as_str(), p.as_str()))
            .collect();
        let mut missing = Vec::new();
        for (template, item) in openapi["paths"].as_object().expect("paths") {
            for m in item.as_object().expect("path item").keys() {
                let m = m.to_ascii_uppercase();
                if !ok.iter().any(|(hm, hp)| *hm == m && matches(template, hp)) {
                    missing.push(format!("{m} {template}"));
                }
            }
        }
        missing
    }
}

/// Does `path` fit `template` (`{name}` matches one non-empty segment)?
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}
