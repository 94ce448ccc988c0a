//! Handlers: decode, call one service method, encode. Grouped by domain; each group
//! registers its routes.

use super::router::Route;

mod account;
mod account_data;
mod avatars;
mod chats;
mod contacts;
mod devices;
#[cfg(feature = "fuzzing")]
mod fuzz;
mod manage;
mod messages;
mod meta;
mod paging;
mod presence;
mod profile;
mod push;
mod schedule;
mod sessions;

#[cfg(feature = "fuzzing")]
pub(crate) use fuzz::{fuzz_body, fuzz_multipart};

/// Every route Melo serves.
pub(crate) fn routes() -> Vec<Route> {
    let mut r = Vec::new();
    r.extend(meta::routes());
    r.extend(account::routes());
    r.extend(profile::routes());
    r.extend(contacts::routes());
    r.extend(messages::routes());
    r.extend(presence::routes());
    r.extend(sessions::routes());
    r.extend(devices::routes());
    r.extend(push::routes());
    r.extend(chats::routes());
    r.extend(manage::routes());
    r.extend(avatars::routes());
    r.extend(account_data::routes());
    r.extend(schedule::routes());
    r
}
