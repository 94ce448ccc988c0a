use serde::Serialize;

use super::{DeviceId, SessionId, Timestamp, UserId};

/// A user row as the store keeps it. Every PII field is a sealed blob (see [`crate::crypto::Pii`]);
/// only the service layer opens them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Public handle.
    pub id: UserId,
    /// Keyed blind index (HMAC-SHA256) of the normalized phone: the only lookup path to a phone.
    pub phone_index: Vec<u8>,
    /// Sealed E.164 phone.
    pub phone: Vec<u8>,
    /// Sealed display name.
    pub name: Vec<u8>,
    /// Sealed nickname.
    pub nickname: Vec<u8>,
    /// Sealed username, if set.
    pub username: Option<Vec<u8>>,
    /// Sealed bio, if set.
    pub bio: Option<Vec<u8>>,
    /// Sealed PEM of the user's E2E public key, if any.
    pub public_key: Option<Vec<u8>>,
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// Registration time.
    pub created_at: Timestamp,
}

/// A user to create: the same shape as a stored row.
pub type NewUser = UserRecord;

/// A partial profile update. `None` leaves a field unchanged; for the optional fields
/// `Some(None)` clears them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// New sealed name.
    pub name: Option<Vec<u8>>,
    /// New sealed nickname.
    pub nickname: Option<Vec<u8>>,
    /// New sealed username, or clear.
    pub username: Option<Option<Vec<u8>>>,
    /// New sealed bio, or clear.
    pub bio: Option<Option<Vec<u8>>>,
    /// New sealed E2E public key.
    pub public_key: Option<Vec<u8>>,
    /// New bcrypt hash.
    pub password_hash: Option<String>,
}

impl ProfileChange {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Kind of device a session runs on, derived from its User-Agent (docs/protocol.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// Mobile phone.
    Phone,
    /// Tablet.
    Tablet,
    /// Desktop application.
    Pc,
    /// Anything else (browsers, scripts).
    Web,
}

impl DeviceType {
    /// Classifies a User-Agent string.
    pub fn from_user_agent(ua: &str) -> Self {
        let ua = ua.to_ascii_lowercase();
        if ["mobile", "android", "iphone"]
            .iter()
            .any(|k| ua.contains(k))
        {
            Self::Phone
        } else if ["tablet", "ipad"].iter().any(|k| ua.contains(k)) {
            Self::Tablet
        } else if ["electron", "desktop"].iter().any(|k| ua.contains(k)) {
            Self::Pc
        } else {
            Self::Web
        }
    }

    /// Stable text form, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Tablet => "tablet",
            Self::Pc => "pc",
            Self::Web => "web",
        }
    }

    /// Parses the stored value (unknown text reads as `web`).
    pub fn parse(s: &str) -> Self {
        match s {
            "phone" => Self::Phone,
            "tablet" => Self::Tablet,
            "pc" => Self::Pc,
            _ => Self::Web,
        }
    }
}

/// One logged-in device of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Session id (JWT `sid`).
    pub id: SessionId,
    /// Owner.
    pub user: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// Device kind from the last login's User-Agent.
    pub device_type: DeviceType,
    /// Sealed device name (first 100 chars of the User-Agent).
    pub device_name: Vec<u8>,
    /// Sealed client IP of the last login.
    pub ip: Vec<u8>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Sealed time of last activity (Unix millis as decimal text).
    pub last_activity: Vec<u8>,
    /// SHA-256 of the current device token, if one is issued.
    pub device_token_hash: Option<Vec<u8>>,
    /// Expiry of that device token.
    pub device_token_expires: Option<Timestamp>,
    /// False once revoked or logged out.
    pub active: bool,
}

/// What a login writes: create the session of (user, device) or refresh the active one.
#[derive(Clone, Debug)]
pub struct SessionUpsert {
    /// Owner.
    pub user: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// Device kind.
    pub device_type: DeviceType,
    /// Sealed device name.
    pub device_name: Vec<u8>,
    /// Sealed client IP.
    pub ip: Vec<u8>,
    /// Sealed last-activity time.
    pub last_activity: Vec<u8>,
    /// Hash of the new device token.
    pub device_token_hash: Vec<u8>,
    /// Its expiry.
    pub device_token_expires: Timestamp,
    /// Now (creation time for a new session).
    pub now: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_type_from_ua() {
        assert_eq!(
            DeviceType::from_user_agent("conf-A/2.0 (iPhone)"),
            DeviceType::Phone
        );
        assert_eq!(
            DeviceType::from_user_agent("Mozilla (iPad)"),
            DeviceType::Tablet
        );
        assert_eq!(DeviceType::from_user_agent("Melo Electron"), DeviceType::Pc);
        assert_eq!(DeviceType::from_user_agent("curl/8"), DeviceType::Web);
    }
}
