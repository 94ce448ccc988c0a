//! [`RouteLimit`]: one entry of `RATE_LIMIT_ROUTES` (`limits.routes`).

use serde::{Deserialize, Serialize};

/// A budget of its own for one route (`RATE_LIMIT_ROUTES="POST /register=5/3600/600"`): `calls`
/// per `period` seconds, then blocked `block` seconds (default: `BLOCK_PERIOD`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RouteLimit {
    /// HTTP method, upper case; `None` for every method of the path.
    pub method: Option<String>,
    /// The route's path template as docs/protocol.md writes it (`/messages/history`,
    /// `/sessions/{session_id}`).
    pub path: String,
    /// Requests per window.
    pub calls: u64,
    /// Window in seconds.
    pub period: u64,
    /// Block after exceeding, in seconds; `None` means `BLOCK_PERIOD`.
    pub block: Option<u64>,
}

impl std::str::FromStr for RouteLimit {
    type Err = String;

    /// `[METHOD ]PATH=CALLS/PERIOD[/BLOCK]`, e.g. `POST /register=5/3600/600`.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?} is not [METHOD ]/path=calls/period[/block]");
        let (route, budget) = s.split_once('=').ok_or_else(usage)?;
        let route = route.trim();
        let (method, path) = match route.split_once(' ') {
            Some((m, p)) => (Some(m.trim().to_ascii_uppercase()), p.trim()),
            None => (None, route),
        };
        if !path.starts_with('/') || method.as_deref().is_some_and(str::is_empty) {
            return Err(usage());
        }
        let nums: Vec<u64> = budget
            .trim()
            .split('/')
            .map(|n| n.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| usage())?;
        let (calls, period, block) = match nums.as_slice() {
            [c, p] => (*c, *p, None),
            [c, p, b] => (*c, *p, Some(*b)),
            _ => return Err(usage()),
        };
        Ok(Self {
            method,
            path: path.to_owned(),
            calls,
            period,
            block,
        })
    }
}

impl std::fmt::Display for RouteLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(m) = &self.method {
            write!(f, "{m} ")?;
        }
        write!(f, "{}={}/{}", self.path, self.calls, self.period)?;
        if let Some(b) = self.block {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}
