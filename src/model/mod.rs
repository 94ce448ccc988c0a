//! Identifiers and domain types shared by services, stores and transports.
//!
//! Nothing here depends on sqlx or hyper.

mod chat;
mod ids;
mod message;
mod time;
mod user;

pub use chat::{ChatKind, ChatMember, ChatRecord, ChatRole, InviteRecord};
pub use ids::{DeviceId, SessionId, UserId};
pub use message::{
    AckSelector, AckedEntry, Acks, Gap, Message, MessageId, NewEntry, NewMessage, QueueItem,
    QueueTarget, QueuedEntry, StoreOutcome,
};
pub use time::Timestamp;
pub use user::{DeviceType, NewUser, ProfileChange, Session, SessionUpsert, UserRecord};
