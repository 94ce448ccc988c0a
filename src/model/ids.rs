use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A user's public handle: 8 decimal digits (docs/protocol.md §1.2).
///
/// New uids are drawn from `^[1-9][0-9]{7}$`. Accounts imported from the original server keep
/// their uid, and the original drew some with a leading zero (`01234567`), so any 8 digits
/// other than `00000000` parse, and the text form is always 8 digits, zero-padded.
///
/// On the wire it is always a JSON string; a JSON number is rejected on input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(u32);

impl UserId {
    /// Smallest uid the server draws for a new account.
    pub const MIN: u32 = 10_000_000;
    /// Largest valid uid.
    pub const MAX: u32 = 99_999_999;
    /// Smallest valid uid: `00000001`, an imported account's (see the type's docs).
    pub const MIN_IMPORTED: u32 = 1;
    /// The sender of system messages (`00000000`,
    /// [`Melo::send_system_message`](crate::Melo::send_system_message)). No account has it, and
    /// it never parses from input ([`UserId::new`] and `FromStr` refuse it): nobody can log in
    /// as it, write to it, or impersonate it.
    pub const SYSTEM: UserId = UserId(0);

    /// Wraps a number, checking the 8-digit range (leading zeros allowed, see the type's docs).
    pub fn new(n: u32) -> Option<Self> {
        (Self::MIN_IMPORTED..=Self::MAX)
            .contains(&n)
            .then_some(Self(n))
    }

    /// Draws a random uid (uniqueness is the store's job).
    pub fn random() -> Self {
        use rand::Rng;
        Self(rand::thread_rng().gen_range(Self::MIN..=Self::MAX))
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for UserId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        s.parse::<u32>().ok().and_then(Self::new).ok_or(())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:08})", self.0)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|()| serde::de::Error::custom("must be 8 digits"))
    }
}

/// A session id: integer ≥ 1; the JWT `sid` claim carries it as a decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub i64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client-chosen device id: 16 hex characters, stored lowercase.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses and lowercases; `None` unless exactly 16 hex characters.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(s.to_ascii_lowercase()))
    }

    /// The lowercase hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_rules() {
        assert!("12345678".parse::<UserId>().is_ok());
        assert!("80000000".parse::<UserId>().is_ok());
        // An imported account's uid keeps its leading zero, in and out.
        let padded = "02345678".parse::<UserId>().expect("leading zero");
        assert_eq!(padded.to_string(), "02345678");
        assert!("00000000".parse::<UserId>().is_err());
        assert_eq!(UserId::new(0), None);
        assert!("1234567".parse::<UserId>().is_err());
        assert!("123456789".parse::<UserId>().is_err());
        assert!("1234567a".parse::<UserId>().is_err());
        assert!("+1234567".parse::<UserId>().is_err());
        assert_eq!(
            serde_json::to_string(&UserId(12345678)).ok().as_deref(),
            Some("\"12345678\"")
        );
        assert!(serde_json::from_str::<UserId>("12345678").is_err());
    }

    #[test]
    fn device_id_rules() {
        assert_eq!(
            DeviceId::parse("A1B2c3d4e5f60718").map(|d| d.0),
            Some("a1b2c3d4e5f60718".into())
        );
        assert!(DeviceId::parse("xyz").is_none());
        assert!(DeviceId::parse("a1b2c3d4e5f6071g").is_none());
    }
}
