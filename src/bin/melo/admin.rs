//! `melo admin …`: operator tools on the servers' database (and their Redis), safe while they
//! serve. Results are JSON on standard output; every action is an audit event.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use melo::admin::{Admin, DEFAULT_INVITE_TTL};
use melo::model::{SessionId, UserId};
use melo::Migrations;
use serde_json::json;

use crate::open::{open_keys, open_store};
use crate::settings::Settings;

/// `melo admin` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum AdminCommand {
    /// One user's account.
    #[command(subcommand)]
    User(UserCommand),
    /// Counts of what the database holds (numbers only).
    Stats,
    /// Make a single-use registration invite (for REGISTRATION=invite); prints the code once.
    Invite(InviteArgs),
}

/// `melo admin user` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Refuse every login of the user and end every session (their sockets close).
    Lock {
        /// The user's uid.
        #[arg(value_parser = parse_uid)]
        uid: UserId,
    },
    /// Let a locked user log in again (ended sessions stay ended).
    Unlock {
        /// The user's uid.
        #[arg(value_parser = parse_uid)]
        uid: UserId,
    },
    /// Erase the account: every personal value, sessions, contacts, memberships; the uid is
    /// never reused.
    Delete {
        /// The user's uid.
        #[arg(value_parser = parse_uid)]
        uid: UserId,
        /// Confirm: without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// List the user's sessions (newest first).
    Sessions {
        /// The user's uid.
        #[arg(value_parser = parse_uid)]
        uid: UserId,
    },
    /// End one session (`--session`) or every session of the user (their sockets close).
    Revoke {
        /// The user's uid.
        #[arg(value_parser = parse_uid)]
        uid: UserId,
        /// Only this session.
        #[arg(long, value_name = "SESSION_ID", value_parser = parse_session)]
        session: Option<SessionId>,
    },
}

fn parse_uid(s: &str) -> Result<UserId, String> {
    s.parse()
        .map_err(|()| format!("{s:?} is not a uid (the digits of user_unique_id)"))
}

fn parse_session(s: &str) -> Result<SessionId, String> {
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(SessionId)
        .ok_or_else(|| format!("{s:?} is not a session id (a positive number)"))
}

/// `melo admin invite` flags.
#[derive(Args, Debug)]
pub(crate) struct InviteArgs {
    /// Seconds the code stays valid (60 to 7776000). [default: 604800, 7 days]
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u64>,
}

/// The tools over the servers' store, keys and shared ephemeral state. The schema is never
/// migrated from here: the servers own it.
async fn open(settings: &Settings) -> anyhow::Result<Admin> {
    // A tool run with the wrong MELO_DATA_DIR must not make new keys (an invite blind-indexed
    // under them would never open) or an empty database: both must be there already.
    let keys_dir = crate::open::keys_dir(settings);
    if settings.encryption_key.is_none() && !keys_dir.join("data-keys.json").exists() {
        anyhow::bail!(
            "no data keys in {}: run melo admin with the servers' MELO_DATA_DIR",
            keys_dir.display()
        );
    }
    let db = crate::open::data_dir(settings).join("melo.db");
    if settings.db_url.is_none() && !db.exists() {
        anyhow::bail!(
            "no database at {}: run melo admin with the servers' MELO_DATA_DIR and DB_URL",
            db.display()
        );
    }
    let keys = Arc::new(open_keys(settings).await?);
    let store = open_store(settings, Migrations::Verify).await?;
    let mut admin = Admin::new(store, keys);
    if let Some(url) = settings.redis_url.as_deref() {
        let ephemeral = melo::RedisEphemeral::connect(url)
            .await
            .context("REDIS_URL: cannot reach Redis")?;
        admin = admin.with_ephemeral(Arc::new(ephemeral));
    }
    Ok(admin)
}

pub(crate) async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let admin = open(settings).await?;
    let out = match command {
        AdminCommand::User(UserCommand::Lock { uid }) => {
            let revoked = admin.lock(uid).await?;
            json!({"user_id": uid, "locked": true, "sessions_revoked": revoked})
        }
        AdminCommand::User(UserCommand::Unlock { uid }) => {
            admin.unlock(uid).await?;
            json!({"user_id": uid, "locked": false})
        }
        AdminCommand::User(UserCommand::Delete { uid, yes }) => {
            if !yes {
                anyhow::bail!("deleting an account cannot be undone: add --yes");
            }
            crate::erase::delete(settings, &admin, uid).await?
        }
        AdminCommand::User(UserCommand::Sessions { uid }) => {
            let sessions = admin.sessions(uid).await?;
            json!({"user_id": uid, "sessions": sessions})
        }
        AdminCommand::User(UserCommand::Revoke { uid, session }) => {
            let revoked = admin.revoke(uid, session).await?;
            json!({"user_id": uid, "sessions_revoked": revoked})
        }
        AdminCommand::Stats => serde_json::to_value(admin.stats().await?)?,
        AdminCommand::Invite(args) => {
            let ttl = args.ttl.map_or(DEFAULT_INVITE_TTL, Duration::from_secs);
            let invite = admin.create_invite(ttl).await?;
            json!({"code": invite.code, "expires_at": invite.expires_at})
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
