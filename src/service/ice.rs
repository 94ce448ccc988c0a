//! ICE servers with time-limited TURN credentials (docs/protocol.md §4.8), compatible with coturn's
//! `use-auth-secret` (TURN REST API convention).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

use super::Authenticated;
use crate::config::RealtimeConfig;
use crate::model::Timestamp;

/// One ICE server entry.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct IceServer {
    /// STUN or TURN URL.
    pub urls: String,
    /// TURN username `<expiry>:<uid>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password: base64(HMAC-SHA1(secret, username)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `GET /ice_servers` answer.
#[derive(Debug, Serialize)]
pub(crate) struct IceServers {
    /// STUN entries, then TURN entries (when a TURN secret is configured).
    pub ice_servers: Vec<IceServer>,
    /// Credential lifetime, seconds.
    pub ttl: u64,
}

/// The TURN REST password for `username`.
pub(crate) fn turn_credential(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The ICE configuration for the caller, at `now`.
pub(crate) fn ice_servers(
    cfg: &RealtimeConfig,
    auth: &Authenticated,
    now: Timestamp,
) -> IceServers {
    let mut list: Vec<IceServer> = cfg
        .stun_urls
        .iter()
        .map(|u| IceServer {
            urls: u.clone(),
            username: None,
            credential: None,
        })
        .collect();
    if let Some(secret) = &cfg.turn_secret {
        let username = format!("{}:{}", now.secs() + cfg.turn_ttl as i64, auth.user);
        let credential = turn_credential(secret.expose(), &username);
        list.extend(cfg.turn_urls.iter().map(|u| IceServer {
            urls: u.clone(),
            username: Some(username.clone()),
            credential: Some(credential.clone()),
        }));
    }
    IceServers {
        ice_servers: list,
        ttl: cfg.turn_ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_style_vector() {
        // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog") = de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9
        let c = turn_credential("key", "The quick brown fox jumps over the lazy dog");
        assert_eq!(
            STANDARD.decode(c).expect("b64"),
            hex("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
