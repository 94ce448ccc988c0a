//! Setup over HTTP: registration, login and contacts of the generated users.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};
use tokio::time::timeout;

use super::{args, bounded, Login, SETUP_CONCURRENCY, STEP_TIMEOUT};

#[derive(Clone)]
pub(super) struct Api {
    pub(super) base: String,
    pub(super) http: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub(super) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let mut req = http::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let resp = timeout(STEP_TIMEOUT, self.http.request(req))
            .await
            .with_context(|| format!("POST {path} timed out"))?
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        let raw = resp.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&raw).unwrap_or(Value::Null)))
    }
}

#[derive(Clone)]
pub(super) struct User {
    pub(super) uid: String,
    pub(super) phone: String,
    pub(super) token: String,
    pub(super) csrf: String,
}

const PASSWORD: &str = "Loadgen-Passw0rd";

fn random_device() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub(super) async fn login(api: &Api, phone: &str) -> Result<(String, String)> {
    let (status, body) = api
        .post(
            "/login",
            None,
            &json!({"identifier": phone, "password": PASSWORD, "device_id": random_device()}),
        )
        .await?;
    if status != 200 {
        bail!("login: {status} {body}");
    }
    let field = |k: &str| {
        body[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("login answer without {k}: {body}"))
    };
    Ok((field("access_token")?, field("csrf_token")?))
}

pub(super) async fn register(api: Api, pem: Arc<String>, n: usize) -> Result<User> {
    for _ in 0..10 {
        let phone = format!("+7999{:07}", rand::random::<u32>() % 10_000_000);
        let (status, body) = api
            .post(
                "/register",
                None,
                &json!({"phone": phone, "name": format!("Load {n}"), "nickname": format!("load{n}"),
                        "password": PASSWORD, "device_id": random_device(), "public_e2e_key": *pem}),
            )
            .await?;
        match status {
            200 => {
                let uid = body["unique_id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("register answer without unique_id: {body}"))?
                    .to_owned();
                let (token, csrf) = login(&api, &phone).await?;
                return Ok(User {
                    uid,
                    phone,
                    token,
                    csrf,
                });
            }
            409 => continue, // phone taken: draw another
            _ => bail!("register: {status} {body} (is RATE_LIMIT_CALLS raised?)"),
        }
    }
    bail!("no free phone number after 10 tries")
}

pub(super) async fn make_contacts(api: Api, a: User, b: User) -> Result<()> {
    for (path, from, to, want) in [
        ("/subscribe", &a, &b, "subscription_requested"),
        ("/confirm_subscribe", &b, &a, "confirmed"),
    ] {
        let (status, body) = api
            .post(
                path,
                Some(&from.token),
                &json!({"target_id": to.uid, "csrf_token": from.csrf}),
            )
            .await?;
        if status != 200 || body["status"] != want {
            bail!("{path}: {status} {body}");
        }
    }
    Ok(())
}

/// Registers the users of a DM run over HTTP and makes each pair contacts: a login per socket
/// (senders, receivers, idle devices of the receivers) and the receivers' uids.
pub(super) async fn melo_users(
    args: &args::Args,
    api: Api,
    pem: Arc<String>,
) -> Result<(Vec<Login>, Vec<String>)> {
    let users = bounded(2 * args.pairs, SETUP_CONCURRENCY, |i| {
        register(api.clone(), pem.clone(), i)
    })
    .await
    .context("registering users")?;
    let (senders, receivers) = users.split_at(args.pairs);
    bounded(args.pairs, SETUP_CONCURRENCY, |i| {
        make_contacts(api.clone(), senders[i].clone(), receivers[i].clone())
    })
    .await
    .context("making contacts")?;
    // Idle sockets need sessions of their own: more devices of the receivers.
    let idle_tokens = bounded(args.idle, SETUP_CONCURRENCY, |i| {
        let (api, phone) = (api.clone(), receivers[i % receivers.len()].phone.clone());
        async move { Ok(login(&api, &phone).await?.0) }
    })
    .await
    .context("logging in idle devices")?;
    let logins = users
        .iter()
        .map(|u| u.token.clone())
        .chain(idle_tokens)
        .map(Login::Token)
        .collect();
    Ok((logins, receivers.iter().map(|u| u.uid.clone()).collect()))
}
