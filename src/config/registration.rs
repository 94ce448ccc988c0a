//! [`Registration`]: who may create an account (`REGISTRATION`, `auth.registration`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who may create an account through `POST /register`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Registration {
    /// Anyone (the default).
    #[default]
    Open,
    /// No one: `POST /register` answers 403 `registration_closed`.
    Closed,
    /// Whoever brings an unused, unexpired registration invite code (`invite_code`), made by an
    /// operator (`melo::admin::Admin::create_invite`). Each code makes one account.
    Invite,
}

impl Registration {
    /// The spelling of `REGISTRATION`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Invite => "invite",
        }
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Registration {
    type Err = String;

    /// `open`, `closed` or `invite` (any case).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            "invite" => Ok(Self::Invite),
            _ => Err(format!("{s:?} is not open, closed or invite")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Registration;

    #[test]
    fn parses_and_prints() {
        for r in [
            Registration::Open,
            Registration::Closed,
            Registration::Invite,
        ] {
            assert_eq!(r.as_str().parse::<Registration>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).expect("json"), format!("\"{r}\""));
        }
        assert_eq!(" Invite ".parse::<Registration>(), Ok(Registration::Invite));
        assert!("invites".parse::<Registration>().is_err());
        assert_eq!(Registration::default(), Registration::Open);
    }
}
