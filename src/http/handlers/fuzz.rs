//! The JSON bodies of every route that reads one, for the `http_body` fuzz target (feature
//! `fuzzing`): the route's decode ([`decode_json`], what `Ctx::json` runs on the read body),
//! then the checks its handler and service make before any state is read. The checks are the
//! production functions the handlers and services call, not copies.

use super::{account_data, avatars, chats, contacts, devices, manage, messages, profile};
use crate::http::extract::decode_json;
use crate::service::chats::{new_chat, valid_code};
use crate::service::{
    validate, AuthorizeRequest, ContactRequest, LoginRequest, ProfileUpdate, RegisterPush,
    RegisterRequest,
};

/// Routes with a JSON body, in the order of the selector byte.
pub(crate) const ROUTES: [&str; 19] = [
    "POST /register",
    "POST /login",
    "PUT /profile",
    "POST /e2e/public_key",
    "POST /e2e/secret_key",
    "POST /subscribe, /confirm_subscribe, /reject_subscribe, /unsubscribe",
    "POST /messages/send",
    "POST /devices/register, /devices/refresh, /devices/revoke",
    "POST /devices/authorize",
    "POST /register_push",
    "POST /chats/create",
    "POST /chats/set_public",
    "POST /chats/set_slow_mode",
    "POST /chats/leave",
    "POST /chats/members/add, /chats/members/remove, /chats/members/role",
    "POST /invites/create",
    "POST /invites/join",
    "POST /messages/edit, /messages/delete, /messages/pin, /messages/react",
    "DELETE /account",
];

/// Decodes `body` as the route `route % ROUTES.len()` does, then validates it.
pub(crate) fn fuzz_body(route: u8, body: &[u8]) {
    match usize::from(route) % ROUTES.len() {
        0 => check(body, |r: RegisterRequest| r.check().map(drop)),
        1 => check(body, |r: LoginRequest| r.check().map(drop)),
        2 => check(body, |r: ProfileUpdate| r.check().map(drop)),
        3 => check(body, |b: profile::PublicKeyBody| {
            validate::rsa_public_key_pem(&b.public_e2e_key).map(drop)
        }),
        4 => check(body, |b: profile::SecretKeyBody| {
            validate::backup_ciphertext(&b.ciphertext)
        }),
        5 => {
            let _ = contacts::body_csrf_token(body);
            check(body, |_: ContactRequest| Ok::<(), ()>(()));
        }
        6 => check(body, |b: messages::SendBody| {
            b.into_request().map(|r| r.check())
        }),
        7 => check(body, |b: devices::DeviceBody| {
            validate::device_id(&b.device_id).map(drop)
        }),
        8 => check(body, |r: AuthorizeRequest| r.check().map(drop)),
        9 => {
            check(body, |r: RegisterPush| r.check(false).map(drop));
            check(body, |r: RegisterPush| r.check(true).map(drop));
        }
        10 => check(body, |b: chats::CreateBody| {
            new_chat(&b.name, b.kind.as_deref().unwrap_or("chat")).map(drop)
        }),
        11 => check(body, |b: chats::PublicBody| {
            chats::chat_id(b.chat_id, "chat_id").map(|_| b.is_public)
        }),
        12 => check(body, |b: chats::SlowBody| {
            chats::chat_id(b.chat_id, "chat_id").map(|_| b.seconds)
        }),
        13 => check(body, |b: chats::ChatBody| {
            chats::chat_id(b.chat_id, "chat_id")
        }),
        14 => check(body, |mut b: chats::MemberBody| chats::member_args(&mut b)),
        15 => check(body, |b: chats::InviteBody| {
            chats::chat_id(b.chat_id, "chat_id").map(|_| b.ttl_minutes)
        }),
        16 => check(body, |b: chats::JoinBody| Ok::<_, ()>(valid_code(&b.code))),
        17 => check(body, |b: manage::ManageBody| b.target().map(drop)),
        _ => {
            let _ = contacts::body_csrf_token(body);
            check(body, |b: account_data::DeleteBody| {
                crate::service::accounts::password_input(&b.password)
            });
        }
    }
}

/// Decodes `body` into `T` and, when that works, runs `validate` on it.
fn check<T: serde::de::DeserializeOwned, R, E>(
    body: &[u8],
    validate: impl FnOnce(T) -> Result<R, E>,
) {
    if let Ok(value) = decode_json::<T>(body) {
        let _ = validate(value);
    }
}

/// `POST /avatar/upload` without its state: the boundary of `content_type`, the part named
/// `file`, then the image type, as the handler and the avatar service check them.
pub(crate) fn fuzz_multipart(content_type: &str, body: bytes::Bytes) {
    let Ok(boundary) = avatars::upload_boundary(content_type) else {
        return;
    };
    if let Ok(file) = avatars::upload_file(&body, &boundary) {
        let _ = crate::service::avatars::ImageType::sniff(&file);
    }
}
