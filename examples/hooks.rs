//! The three hooks for embedders in one server: a registration policy that wants a code (as if
//! sent by SMS), a logger of events, and a welcome system message to every new user.
//!
//! ```text
//! cargo run --example hooks -- 127.0.0.1:8080
//! ```
//!
//! A first `POST /register` answers 403 `verification_required` (`"method": "sms"`) and this
//! process prints the code it would have texted; the same request again with
//! `"verification": "<code>"` creates the account, and the new user's first socket gets a
//! `relay_delivery` from `00000000` with `"system": true`.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use futures_util::StreamExt;
use melo::hooks::{
    Event, MessageTarget, RegistrationAttempt, RegistrationDecision, RegistrationPolicy,
};
use melo::{Melo, MemoryStore, StaticKeys};
use rand::Rng;

/// Wants a six-digit code per phone, "sent" when first asked for.
#[derive(Default)]
struct SmsCodes {
    /// Code by phone. In memory only, never logged.
    pending: Mutex<HashMap<String, String>>,
}

#[melo::async_trait]
impl RegistrationPolicy for SmsCodes {
    async fn check(&self, attempt: &RegistrationAttempt<'_>) -> RegistrationDecision {
        let mut pending = match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let (Some(sent), Some(given)) = (pending.get(attempt.phone), attempt.verification) {
            if sent == given {
                pending.remove(attempt.phone);
                return RegistrationDecision::Allow;
            }
        }
        let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
        // A real server would text it to `attempt.phone` here (and rate limit the texts).
        println!("[sms gateway] verification code {code} (the phone is not printed)");
        pending.insert(attempt.phone.to_owned(), code);
        RegistrationDecision::require_verification("sms", Some("a 6-digit code was sent".into()))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let melo = Melo::builder(
        Arc::new(MemoryStore::new()),
        Arc::new(StaticKeys::generate()?),
    )
    .registration_policy(Arc::new(SmsCodes::default()))
    .build()?;
    let melo = Arc::new(melo);

    // Events: ids only, so they can be logged as they are.
    let mut events = melo.events();
    let hooks = melo.clone();
    tokio::spawn(async move {
        while let Some(next) = events.next().await {
            match next {
                Ok(Event::UserRegistered { user, .. }) => {
                    tracing::info!(%user, "registered: sending the welcome message");
                    // Not end-to-end encrypted: the server writes it.
                    let welcome = r#"{"text":"Welcome to Melo!"}"#;
                    if let Err(e) = hooks
                        .send_system_message(MessageTarget::User(user), welcome)
                        .await
                    {
                        tracing::warn!(error = %e, "welcome message not sent");
                    }
                }
                Ok(event) => tracing::info!(?event, "event"),
                Err(lagged) => tracing::warn!(%lagged),
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    melo.serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    melo.shutdown().await;
    Ok(())
}
