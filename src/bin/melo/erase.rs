//! `melo admin user delete UID --yes`: the library's account deletion (what `DELETE /account`
//! does after its password check), run from an operator's process.

use std::sync::Arc;

use anyhow::Context;
use melo::admin::Admin;
use melo::model::UserId;
use melo::{Melo, Migrations};
use serde_json::{json, Value};

use crate::open::{open_keys, open_store};
use crate::settings::Settings;

/// First the account is locked, which ends every session through a revocation note that every
/// running server polls (their sockets close within about a second, with one node or several)
/// and refuses logins until the erase; then the
/// account is erased in one store transaction by a Melo instance that serves nothing and joins
/// no bus. Former contacts and chat members connected to a running server are not sent frames
/// from here (this process holds none of their sockets): they see the change when their clients
/// next read the contact list, the chat or its members.
pub(crate) async fn delete(
    settings: &Settings,
    admin: &Admin,
    uid: UserId,
) -> anyhow::Result<Value> {
    let revoked = admin.lock(uid).await?;
    let keys = Arc::new(open_keys(settings).await?);
    let store = open_store(settings, Migrations::Verify).await?;
    let mut builder = Melo::builder(store, keys).config(settings.config.clone());
    if let Some(url) = settings.redis_url.as_deref() {
        // The user's presence, typing and rate-limit state in the shared Redis go too.
        let ephemeral = melo::RedisEphemeral::connect(url)
            .await
            .context("REDIS_URL: cannot reach Redis")?;
        builder = builder.ephemeral(Arc::new(ephemeral));
    }
    let melo = builder.build()?;
    let result = melo.delete_account(uid).await;
    melo.shutdown().await;
    let done = result?;
    Ok(json!({"deleted": done, "sessions_revoked": revoked}))
}
