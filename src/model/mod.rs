//! Identifiers and domain types shared by services, stores and transports.
//!
//! Nothing here depends on sqlx or hyper.

mod ids;
mod time;
mod user;

pub use ids::{DeviceId, SessionId, UserId};
pub use time::Timestamp;
pub use user::{DeviceType, NewUser, ProfileChange, Session, SessionUpsert, UserRecord};
