//! Query-string pagination (docs/protocol.md §1.4).

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::model::MessageId;
use crate::service::{FieldError, HistoryQuery};

fn int(
    c: &Ctx,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
    errs: &mut Vec<FieldError>,
) -> Option<u64> {
    let raw = c.query(name)?;
    match raw.parse::<u64>() {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            errs.push(FieldError::new(
                name,
                format!("must be an integer in {}..={}", range.start(), range.end()),
            ));
            None
        }
    }
}

/// `page` (≥ 1, default 1) and `per_page` (1–100, default `default`) → (offset, limit, page).
pub(super) fn page(c: &Ctx, default: u64) -> Result<(u64, u64, u64), ApiError> {
    let mut errs = Vec::new();
    let page = int(c, "page", 1..=1_000_000, &mut errs).unwrap_or(1);
    let per_page = int(c, "per_page", 1..=100, &mut errs).unwrap_or(default);
    if !errs.is_empty() {
        return Err(ApiError::validation(errs));
    }
    Ok(((page - 1) * per_page, per_page, page))
}

/// History query: page mode or cursor mode, never both.
pub(super) fn history(c: &Ctx) -> Result<HistoryQuery, ApiError> {
    let mut errs = Vec::new();
    let paged = c.query("page").is_some() || c.query("per_page").is_some();
    let cursor = c.query("before").is_some() || c.query("limit").is_some();
    if paged && cursor {
        return Err(ApiError::field(
            "before",
            "page/per_page and before/limit cannot be mixed",
        ));
    }
    if paged {
        let page = int(c, "page", 1..=1_000_000, &mut errs).unwrap_or(1);
        let per_page = int(c, "per_page", 1..=100, &mut errs).unwrap_or(50);
        if !errs.is_empty() {
            return Err(ApiError::validation(errs));
        }
        return Ok(HistoryQuery::Page { page, per_page });
    }
    let limit = int(c, "limit", 1..=100, &mut errs).unwrap_or(50);
    let before = match c.query("before") {
        None => None,
        Some(raw) => match raw.parse::<MessageId>() {
            Ok(id) => Some(id),
            Err(()) => {
                errs.push(FieldError::new(
                    "before",
                    "must be a message_id (32 hex characters)",
                ));
                None
            }
        },
    };
    if !errs.is_empty() {
        return Err(ApiError::validation(errs));
    }
    Ok(HistoryQuery::Cursor { before, limit })
}
