//! Scheduled-message routes (docs/protocol.md §4.6 `POST /schedule/message`; `GET /schedule` and
//! `DELETE /schedule/{schedule_id}`, docs/scheduled-messages.md).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::messages::SendBody;
use super::paging;
use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::model::{Timestamp, UserId};
use crate::service::{Error, ScheduleRequest};
use crate::store::ScheduleId;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::POST,
            "/schedule/message",
            Token,
            "Schedule a message to be sent later",
            |c| Box::pin(schedule(c)),
        ),
        Route::new(
            Method::GET,
            "/schedule",
            Token,
            "The caller's pending scheduled messages",
            |c| Box::pin(list(c)),
        ),
        Route::new(
            Method::DELETE,
            "/schedule/{schedule_id}",
            Token,
            "Cancel a pending scheduled message",
            |c| Box::pin(cancel(c)),
        ),
    ]
}

#[derive(Deserialize)]
struct ScheduleBody {
    #[serde(default)]
    target_id: Option<UserId>,
    #[serde(default)]
    chat_id: Option<serde_json::Value>,
    when: String,
    /// Kept as written: an object becomes the payload exactly as the client sent it.
    data: Box<serde_json::value::RawValue>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

/// # POST /schedule/message
async fn schedule(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: ScheduleBody = c.json().await?;
    let when = Some(body.when.as_str())
        .filter(|w| has_offset(w))
        .and_then(Timestamp::parse)
        .ok_or_else(|| {
            ApiError::field(
                "when",
                "must be an RFC 3339 date-time with an offset (Z or ±HH:MM)",
            )
        })?;
    // A string is the payload; an object is sent as its JSON text, exactly as written (key
    // order, spacing and number text kept: a client may have signed it).
    let raw = body.data.get();
    let data = match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw)
            .map_err(|_| ApiError::field("data", "must be a string or a JSON object"))?,
        Some(b'{') => raw.to_owned(),
        _ => return Err(ApiError::field("data", "must be a string or a JSON object")),
    };
    let send = SendBody {
        target_id: body.target_id,
        chat_id: body.chat_id,
        data,
        client_id: body.client_id,
        signature: body.signature,
    }
    .into_request()?;
    let id = c
        .app
        .services
        .schedule
        .schedule(&auth, ScheduleRequest { send, when })
        .await
        .map_err(|e| match e {
            // The service names the payload as the send path does; on the wire it is `data`.
            Error::Validation(mut fields) => {
                for f in &mut fields {
                    if f.field == "payload" {
                        f.field = "data".into();
                    }
                }
                Error::Validation(fields)
            }
            other => other,
        })?;
    Ok(ok(&json!({"status": "ok", "schedule_id": id})))
}

/// # GET /schedule
async fn list(c: Ctx) -> Res {
    let auth = c.auth()?;
    let (_, per_page, page) = paging::page(&c, 50)?;
    let out = c.app.services.schedule.list(&auth, page, per_page).await?;
    Ok(ok(&out))
}

/// # DELETE /schedule/{schedule_id}
async fn cancel(c: Ctx) -> Res {
    let auth = c.auth()?;
    let id: ScheduleId = c
        .param("schedule_id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::field("schedule_id", "must be 32 hexadecimal characters"))?;
    c.app.services.schedule.cancel(&auth, id).await?;
    Ok(ok(&json!({"status": "ok"})))
}

/// Whether an RFC 3339 date-time ends with its offset (`Z` or `±HH:MM`), which RFC 3339
/// requires: a local time without one would be read as UTC and sent hours off.
fn has_offset(when: &str) -> bool {
    if when.ends_with(['Z', 'z']) {
        return true;
    }
    // `±HH:MM` after the time.
    let tail = when
        .len()
        .checked_sub(6)
        .and_then(|start| when.get(start..))
        .map(str::as_bytes);
    matches!(
        tail,
        Some([b'+' | b'-', h1, h2, b':', m1, m2])
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
    ) && when.len() > 6
}

#[cfg(test)]
mod tests {
    use super::has_offset;

    #[test]
    fn offsets() {
        assert!(has_offset("2026-12-07T09:00:00Z"));
        assert!(has_offset("2026-12-07T09:00:00.123+03:00"));
        assert!(has_offset("2026-12-07T09:00:00-05:30"));
        assert!(!has_offset("2026-12-07T09:00:00"));
        assert!(!has_offset("2026-12-07T09:00:00.123"));
        assert!(!has_offset("2026-12-07"));
        assert!(!has_offset(""));
    }
}
