//! Row decoding shared by the SQL backends: both dialects name their columns alike, so one
//! decoder per record reads a row of either through [`Cells`], which each backend implements
//! for its own row type.

use crate::model::{
    ChatKind, ChatMember, ChatRecord, ChatRole, DeviceId, DeviceType, Gap, InviteRecord, Message,
    MessageId, Session, SessionId, Timestamp, UserId, UserRecord,
};
use crate::store::{Contact, ContactState, StoreError, StoreResult, StoredAvatar};

/// Typed access to the columns of one row, by name.
pub(crate) trait Cells {
    /// An integer column.
    fn int(&self, col: &str) -> StoreResult<i64>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    /// A binary column.
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;
    /// A nullable binary column.
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A text column.
    fn text(&self, col: &str) -> StoreResult<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;

    /// A boolean stored as an integer.
    fn flag(&self, col: &str) -> StoreResult<bool> {
        Ok(self.int(col)? != 0)
    }
    /// A uid.
    fn uid(&self, col: &str) -> StoreResult<UserId> {
        uid_from(self.int(col)?, col)
    }
    /// A nullable uid.
    fn opt_uid(&self, col: &str) -> StoreResult<Option<UserId>> {
        self.opt_int(col)?.map(|n| uid_from(n, col)).transpose()
    }
    /// A time in milliseconds.
    fn time(&self, col: &str) -> StoreResult<Timestamp> {
        Ok(Timestamp::from_millis(self.int(col)?))
    }
    /// A message id (16 big-endian bytes).
    fn message_id(&self, col: &str) -> StoreResult<MessageId> {
        id_from(&self.bytes(col)?)
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what}").into())
}

fn uid_from(n: i64, col: &str) -> StoreResult<UserId> {
    u32::try_from(n)
        .ok()
        .and_then(UserId::new)
        .ok_or_else(|| StoreError::Backend(format!("corrupt uid in column {col}").into()))
}

/// A message's sender: a uid, or 0 for [`UserId::SYSTEM`].
fn sender(n: i64) -> StoreResult<UserId> {
    if n == i64::from(UserId::SYSTEM.get()) {
        return Ok(UserId::SYSTEM);
    }
    uid_from(n, "from_uid")
}

/// A uid as a SQL integer.
pub(crate) fn uid(u: UserId) -> i64 {
    i64::from(u.get())
}

/// A pair of uids as `(smaller, larger)`: the key of contacts and DM conversations.
pub(crate) fn pair(a: UserId, b: UserId) -> (i64, i64) {
    let (a, b) = (uid(a), uid(b));
    (a.min(b), a.max(b))
}

/// A count or offset as a SQL integer.
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A message id as its 16 big-endian bytes: byte order is numeric order, so `ORDER BY id` is
/// time order.
pub(crate) fn id_blob(id: MessageId) -> [u8; 16] {
    id.as_u128().to_be_bytes()
}

/// The inverse of [`id_blob`].
pub(crate) fn id_from(b: &[u8]) -> StoreResult<MessageId> {
    <[u8; 16]>::try_from(b)
        .map(|a| MessageId::from_u128(u128::from_be_bytes(a)))
        .map_err(|_| corrupt("message id"))
}

/// Columns of a user row.
pub(crate) const USER_COLS: &str =
    "uid, phone_index, phone, name, nickname, username, bio, public_key, password_hash, created_at";

pub(crate) fn user(r: &impl Cells) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: r.uid("uid")?,
        phone_index: r.bytes("phone_index")?,
        phone: r.bytes("phone")?,
        name: r.bytes("name")?,
        nickname: r.bytes("nickname")?,
        username: r.opt_bytes("username")?,
        bio: r.opt_bytes("bio")?,
        public_key: r.opt_bytes("public_key")?,
        password_hash: r.text("password_hash")?,
        created_at: r.time("created_at")?,
    })
}

/// Columns of a session row.
pub(crate) const SESSION_COLS: &str = "id, uid, device_id, device_type, device_name, ip, \
     created_at, last_activity, device_token_hash, device_token_expires, active";

pub(crate) fn session(r: &impl Cells) -> StoreResult<Session> {
    Ok(Session {
        id: SessionId(r.int("id")?),
        user: r.uid("uid")?,
        device_id: DeviceId::parse(&r.text("device_id")?).ok_or_else(|| corrupt("device_id"))?,
        device_type: DeviceType::parse(&r.text("device_type")?),
        device_name: r.bytes("device_name")?,
        ip: r.bytes("ip")?,
        created_at: r.time("created_at")?,
        last_activity: r.bytes("last_activity")?,
        device_token_hash: r.opt_bytes("device_token_hash")?,
        device_token_expires: r
            .opt_int("device_token_expires")?
            .map(Timestamp::from_millis),
        active: r.flag("active")?,
    })
}

/// Columns of a contact row.
pub(crate) const CONTACT_COLS: &str = "user_lo, user_hi, requester, accepted, secret, requested_at";

pub(crate) fn contact(r: &impl Cells) -> StoreResult<Contact> {
    let (lo, hi, requester) = (r.uid("user_lo")?, r.uid("user_hi")?, r.uid("requester")?);
    Ok(Contact {
        requester,
        target: if requester == lo { hi } else { lo },
        state: if r.flag("accepted")? {
            ContactState::Accepted
        } else {
            ContactState::Pending
        },
        secret: r.flag("secret")?,
        requested_at: r.time("requested_at")?,
    })
}

/// Columns of a chat row, qualified by the alias `c`.
pub(crate) const CHAT_COLS: &str = "c.id AS id, c.kind AS kind, c.name AS name, \
     c.owner AS owner, c.created_at AS created_at, c.is_public AS is_public, \
     c.invite_code AS invite_code, c.slow_mode_secs AS slow_mode_secs";

pub(crate) fn role(r: &impl Cells, col: &str) -> StoreResult<ChatRole> {
    r.text(col)?.parse().map_err(|()| corrupt("chat role"))
}

pub(crate) fn chat(r: &impl Cells) -> StoreResult<ChatRecord> {
    Ok(ChatRecord {
        id: r.int("id")?,
        kind: r
            .text("kind")?
            .parse::<ChatKind>()
            .map_err(|()| corrupt("chat kind"))?,
        name: r.bytes("name")?,
        owner: r.uid("owner")?,
        created_at: r.time("created_at")?,
        is_public: r.flag("is_public")?,
        invite_code: r.opt_bytes("invite_code")?,
        slow_mode_secs: u32::try_from(r.int("slow_mode_secs")?)
            .map_err(|_| corrupt("slow_mode_secs"))?,
    })
}

pub(crate) fn member(r: &impl Cells) -> StoreResult<ChatMember> {
    Ok(ChatMember {
        user: r.uid("uid")?,
        role: role(r, "role")?,
        joined_at: r.time("joined_at")?,
    })
}

pub(crate) fn invite(r: &impl Cells) -> StoreResult<InviteRecord> {
    Ok(InviteRecord {
        chat_id: r.int("chat_id")?,
        code: r.bytes("code")?,
        created_by: r.uid("created_by")?,
        expires_at: r.time("expires_at")?,
    })
}

pub(crate) fn avatar(r: &impl Cells) -> StoreResult<StoredAvatar> {
    Ok(StoredAvatar {
        mime: r.text("mime")?,
        sealed: r.bytes("sealed")?,
        etag: r.text("etag")?,
        updated_at: r.time("updated_at")?,
    })
}

/// Columns of a message row, qualified by the alias `m`; `is_read` is the read flag (`read` is
/// reserved in MySQL).
pub(crate) const MESSAGE_COLS: &str = "m.id AS id, m.from_uid AS from_uid, m.to_uid AS to_uid, \
     m.chat_id AS chat_id, m.payload AS payload, m.signature AS signature, \
     m.created_at AS created_at, m.delivered AS delivered, m.is_read AS is_read, \
     m.edited_at AS edited_at, m.deleted AS deleted, m.pinned AS pinned";

/// A message from [`MESSAGE_COLS`], without its reactions.
pub(crate) fn message(r: &impl Cells) -> StoreResult<Message> {
    Ok(Message {
        id: r.message_id("id")?,
        from: sender(r.int("from_uid")?)?,
        to: r.opt_uid("to_uid")?,
        chat_id: r.opt_int("chat_id")?,
        payload: r.text("payload")?,
        signature: r.opt_text("signature")?,
        created_at: r.time("created_at")?,
        delivered: r.flag("delivered")?,
        read: r.flag("is_read")?,
        edited_at: r.opt_int("edited_at")?.map(Timestamp::from_millis),
        deleted: r.flag("deleted")?,
        pinned: r.flag("pinned")?,
        reactions: Default::default(),
    })
}

/// A gap entry of the queue (`gap_*` columns) at seq `from_seq`.
pub(crate) fn gap(r: &impl Cells, from_seq: i64) -> StoreResult<Gap> {
    Ok(Gap {
        from_seq,
        count: r.int("gap_count")?.max(0) as u64,
        overflow: r.flag("gap_overflow")?,
        at: r.time("gap_at")?,
    })
}
