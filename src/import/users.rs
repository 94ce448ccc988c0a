//! Users: the original's row, decrypted with its key, turned into Melo's sealed record the way
//! Melo's own paths seal it (`/register` for the phone and its keyed blind index, profile
//! updates for the optional fields, the avatar upload's type sniffing and entity tag, the
//! secret-key backup as the client sent it).

use zeroize::Zeroizing;

use super::report::Action;
use super::source::{UidColumn, UserRow};
use super::{secs_or, Run};
use crate::crypto::password::ORIGINAL_HASH_PREFIX;
use crate::crypto::{CryptoError, Pii};
use crate::model::{Timestamp, UserId, UserRecord};
use crate::service::avatars::{etag_of, ImageType, SEAL_COLUMN, SEAL_TABLE};
use crate::service::validate;
use crate::store::ImportOutcome;

/// The Melo uid of an original `unique_id`: 8 digits, an integer column's value left-padded.
pub(crate) fn melo_uid(raw: &str, column: UidColumn) -> Result<UserId, &'static str> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("uid_invalid");
    }
    let padded = match column {
        UidColumn::Integer => format!("{t:0>8}"),
        UidColumn::Text => t.to_owned(),
    };
    if padded.len() != 8 {
        return Err("uid_invalid");
    }
    validate::uid(&padded).map_err(|_| "uid_invalid")
}

/// The original's phone normalization (trim; a leading `8` becomes `+7`; then
/// `^\+?[1-9]\d{1,14}$`), then Melo's canonical E.164 form.
pub(crate) fn melo_phone(raw: &str) -> Option<String> {
    let t = raw.trim();
    let original = match t.strip_prefix('8') {
        Some(rest) => format!("+7{rest}"),
        None => t.to_owned(),
    };
    let digits = original.strip_prefix('+').unwrap_or(&original);
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !ok {
        return None;
    }
    validate::phone(&original).ok()
}

/// A bcrypt hash Melo's password check verifies (`$2a$`, `$2b$`, `$2y$`; 60 characters).
fn bcrypt_hash(h: &str) -> bool {
    h.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| h.starts_with(p)) && h.is_ascii()
}

/// A decrypted optional text field: `Ok(None)` when the column is NULL, `Err` when it does not
/// decrypt.
fn field(run: &Run<'_>, v: &Option<String>) -> Result<Option<Zeroizing<String>>, ()> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => run.key.decrypt_text(s).map(Some).ok_or(()),
    }
}

/// What a user row becomes.
pub(crate) struct Converted {
    pub(crate) record: UserRecord,
    pub(crate) avatar: Option<(String, Vec<u8>, String)>,
    pub(crate) secret: Option<(Vec<u8>, Timestamp)>,
    /// The phone's blind index, for the duplicate check.
    pub(crate) phone_tag: [u8; 16],
    /// The phone's blind indexes under the older data-key versions (rows a key rotation has
    /// not moved yet), checked for a Melo account with the phone as `/register` checks.
    pub(crate) older_phone_indexes: Vec<Vec<u8>>,
}

/// Turns one row into Melo's record, or (`Ok(Err)`) the reason it cannot be. Optional values
/// that do not decrypt or break Melo's rules are dropped (and reported); the user is imported
/// without them.
pub(crate) fn convert(
    run: &mut Run<'_>,
    u: &UserRow,
) -> Result<Result<Converted, &'static str>, CryptoError> {
    let uid = match melo_uid(u.unique_id.as_deref().unwrap_or(""), run.uid_column) {
        Ok(uid) => uid,
        Err(reason) => return Ok(Err(reason)),
    };
    let hash = u.password_hash.as_deref().map(str::trim).unwrap_or("");
    if !bcrypt_hash(hash) {
        return Ok(Err("password_hash_invalid"));
    }
    let phone = match field(run, &u.phone) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(Err("phone_missing")),
        Err(()) => return Ok(Err("phone_undecryptable")),
    };
    let Some(phone) = melo_phone(&phone).map(Zeroizing::new) else {
        return Ok(Err("phone_invalid"));
    };
    let pii: Pii = run.pii.clone();
    let phone_index = pii.blind_index("phone", phone.as_bytes());
    let older_phone_indexes: Vec<Vec<u8>> = pii
        .blind_indexes("phone", phone.as_bytes())
        .into_iter()
        .filter(|i| *i != phone_index)
        .collect();
    let mut phone_tag = [0u8; 16];
    phone_tag.copy_from_slice(&phone_index[..16]);

    let row = uid.to_string();
    let id = u.id;
    let mut dropped: Vec<&'static str> = Vec::new();
    let mut text = |v: &Option<String>, undecryptable: &'static str| match field(run, v) {
        Ok(v) => v,
        Err(()) => {
            dropped.push(undecryptable);
            None
        }
    };
    let name = text(&u.name, "name_undecryptable");
    let nickname = text(&u.nickname, "nickname_undecryptable");
    let username = text(&u.username, "username_undecryptable");
    let bio = text(&u.bio, "bio_undecryptable");
    let avatar = text(&u.avatar, "avatar_undecryptable");
    let public_key = text(&u.public_key, "public_key_undecryptable");

    // Names: Melo's rule (`/register`, profile updates) as they are, else cleaned to pass it
    // (reported), else dropped (reported).
    let mut cleaned: Vec<&'static str> = Vec::new();
    let mut short = |v: Option<Zeroizing<String>>,
                     (was_cleaned, invalid): (&'static str, &'static str)|
     -> String {
        let Some(v) = v else { return String::new() };
        if v.trim().is_empty() {
            return String::new();
        }
        if let Ok(clean) = validate::display_name(&v) {
            return clean;
        }
        match validate::display_name(&clean_name(&v)) {
            Ok(clean) => {
                cleaned.push(was_cleaned);
                clean
            }
            Err(_) => {
                dropped.push(invalid);
                String::new()
            }
        }
    };
    let name = short(name, ("name_cleaned", "name_invalid"));
    let nickname = short(nickname, ("nickname_cleaned", "nickname_invalid"));
    let username = username.filter(|v| {
        let ok = validate::username(v.trim()).is_ok();
        if !ok {
            dropped.push("username_invalid");
        }
        ok
    });
    let bio = bio.filter(|v| {
        let ok = validate::bio(v).is_ok();
        if !ok {
            dropped.push("bio_invalid");
        }
        ok
    });
    let public_key = public_key.and_then(|k| match validate::rsa_public_key_pem(&k) {
        Ok(pem) => Some(pem),
        Err(_) => {
            dropped.push("public_key_invalid");
            None
        }
    });
    let avatar = avatar.and_then(|a| {
        let Some(bytes) = super::original_crypto::latin1_bytes(&a) else {
            dropped.push("avatar_invalid");
            return None;
        };
        if bytes.len() > run.opts.avatar_max_bytes {
            dropped.push("avatar_too_large");
            return None;
        }
        match ImageType::sniff(&bytes) {
            Some(t) => Some((t, Zeroizing::new(bytes))),
            None => {
                dropped.push("avatar_unsupported_type");
                None
            }
        }
    });
    let secret = match u.secret.as_deref() {
        Some(s) if validate::backup_ciphertext(s).is_ok() => Some(s),
        Some(_) => {
            dropped.push("secret_key_backup_invalid");
            None
        }
        None => None,
    };
    for reason in dropped {
        run.report
            .problem("users", id, reason, Action::FieldDropped);
    }
    for reason in cleaned {
        run.report.problem("users", id, reason, Action::Replaced);
    }

    let seal = |col: &str, v: &str| pii.seal_str("users", col, &row, v);
    let now = Timestamp::now();
    let record = UserRecord {
        id: uid,
        phone_index,
        phone: seal("phone", &phone)?,
        name: seal("name", &name)?,
        nickname: seal("nickname", &nickname)?,
        username: username.map(|v| seal("username", v.trim())).transpose()?,
        bio: bio.map(|v| seal("bio", &v)).transpose()?,
        public_key: public_key.map(|v| seal("public_key", &v)).transpose()?,
        password_hash: format!("{ORIGINAL_HASH_PREFIX}{hash}"),
        created_at: secs_or(u.registered_secs.or(u.last_activity_secs), now),
    };
    let avatar = match avatar {
        Some((t, bytes)) => {
            let sealed = pii.seal(SEAL_TABLE, SEAL_COLUMN, &row, &bytes)?;
            let etag = etag_of(&sealed);
            Some((t.mime().to_owned(), sealed, etag))
        }
        None => None,
    };
    let secret = match secret {
        Some(s) => Some((
            pii.seal_str("secret_keys", "ciphertext", &row, s)?,
            secs_or(u.secret_secs, now),
        )),
        None => None,
    };
    Ok(Ok(Converted {
        record,
        avatar,
        secret,
        phone_tag,
        older_phone_indexes,
    }))
}

/// Whether `c` is a Unicode format character that reorders or hides text (bidi controls,
/// zero-width characters, the BOM), which names must not carry.
pub(crate) fn invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
        | '\u{061c}' | '\u{feff}' | '\u{00ad}')
}

/// A name the original accepted, made to pass Melo's `display_name` rule where it can: tags
/// removed, line breaks and tabs made spaces, control, bidi and other characters the rule
/// refuses removed, spaces collapsed, at most 50 characters.
fn clean_name(raw: &str) -> String {
    let stripped = validate::strip_tags(raw);
    let mut out = String::new();
    for c in stripped.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == ' ' || c == '-' {
            out.push(c);
        }
    }
    out.trim()
        .chars()
        .take(50)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Reads every user page by page and imports it. Fills `run.users` (original id → Melo uid of
/// every usable user).
pub(crate) async fn import(run: &mut Run<'_>) -> Result<(), super::ImportError> {
    let mut after = 0i64;
    loop {
        let page = run.db.users(after, run.opts.user_batch).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for u in &page {
            one(run, u).await?;
        }
    }
    Ok(())
}

/// Writes the avatar and the secret-key backup of a user the import created; with `missing_only`
/// (a user an earlier, stopped run created), only those Melo does not have.
async fn extras(
    run: &mut Run<'_>,
    converted: &Converted,
    missing_only: bool,
) -> Result<(), super::ImportError> {
    let uid = converted.record.id;
    if let Some((mime, sealed, etag)) = &converted.avatar {
        if !missing_only || run.store.avatar(uid).await?.is_none() {
            if !run.opts.dry_run {
                run.store
                    .put_avatar(uid, mime, sealed, etag, converted.record.created_at)
                    .await?;
            }
            run.report.counts("avatars").imported += 1;
        }
    }
    if let Some((sealed, at)) = &converted.secret {
        if !missing_only || run.store.secret_key(uid).await?.is_none() {
            if !run.opts.dry_run {
                run.store.put_secret_key(uid, sealed, *at).await?;
            }
            run.report.counts("secret_key_backups").imported += 1;
        }
    }
    Ok(())
}

async fn one(run: &mut Run<'_>, u: &UserRow) -> Result<(), super::ImportError> {
    run.report.counts("users").read += 1;
    run.seen_users.insert(u.id);
    let converted = match convert(run, u)? {
        Ok(c) => c,
        Err(reason) => {
            run.report.skip("users", "users", u.id, reason);
            return Ok(());
        }
    };
    let uid = converted.record.id;
    if !run.seen_uids.insert(uid) {
        run.report.skip("users", "users", u.id, "duplicate_uid");
        return Ok(());
    }
    if !run.seen_phones.insert(converted.phone_tag) {
        run.report.skip("users", "users", u.id, "duplicate_phone");
        return Ok(());
    }
    let outcome = if phone_under_older_key(run, &converted).await? {
        ImportOutcome::Conflict("phone")
    } else if run.opts.dry_run {
        predict(run, &converted.record).await?
    } else {
        run.store.import_user(&converted.record).await?
    };
    match outcome {
        ImportOutcome::Created => {
            run.report.counts("users").imported += 1;
            if converted.record.public_key.is_some() {
                run.report.counts("public_keys").imported += 1;
            }
            extras(run, &converted, false).await?;
        }
        ImportOutcome::AlreadyImported => {
            run.report.counts("users").already += 1;
            if !run.done.graph_users.contains(&uid) {
                // Created by a run that did not complete: it may have stopped before writing
                // the avatar and the backup (separate writes after the user's).
                extras(run, &converted, true).await?;
            }
        }
        ImportOutcome::Conflict(what) => {
            let reason = match what {
                "phone" => "conflict_phone_taken_in_melo",
                "retired" => "conflict_uid_erased_in_melo",
                _ => "conflict_uid_taken_in_melo",
            };
            run.report.skip("users", "users", u.id, reason);
            return Ok(());
        }
    }
    run.users.insert(u.id, uid);
    Ok(())
}

/// Whether another account holds the phone under an older data-key version's blind index (the
/// store's own check sees only the current one).
async fn phone_under_older_key(run: &Run<'_>, c: &Converted) -> Result<bool, super::ImportError> {
    for index in &c.older_phone_indexes {
        if let Some(other) = run.store.user_by_phone_index(index).await? {
            if other.id != c.record.id {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// What [`crate::store::ImportStore::import_user`] would answer, from reads only.
async fn predict(run: &Run<'_>, record: &UserRecord) -> Result<ImportOutcome, super::ImportError> {
    if run.store.is_imported_user(record.id).await? {
        return Ok(ImportOutcome::AlreadyImported);
    }
    if run.store.user(record.id).await?.is_some() {
        return Ok(ImportOutcome::Conflict("uid"));
    }
    if run
        .store
        .user_by_phone_index(&record.phone_index)
        .await?
        .is_some()
    {
        return Ok(ImportOutcome::Conflict("phone"));
    }
    Ok(ImportOutcome::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_of_both_column_types() {
        let ok = |raw, col| melo_uid(raw, col).map(|u| u.to_string());
        assert_eq!(ok("12345678", UidColumn::Text).as_deref(), Ok("12345678"));
        assert_eq!(
            ok(" 12345678 ", UidColumn::Integer).as_deref(),
            Ok("12345678")
        );
        // A leading zero is kept (padded back for an integer column).
        assert_eq!(ok("1234567", UidColumn::Integer).as_deref(), Ok("01234567"));
        assert_eq!(ok("01234567", UidColumn::Text).as_deref(), Ok("01234567"));
        assert_eq!(ok("0", UidColumn::Integer), Err("uid_invalid"));
        assert_eq!(ok("1234567", UidColumn::Text), Err("uid_invalid"));
        assert_eq!(ok("123456789", UidColumn::Integer), Err("uid_invalid"));
        assert_eq!(ok("1234a678", UidColumn::Text), Err("uid_invalid"));
        assert_eq!(ok("", UidColumn::Text), Err("uid_invalid"));
    }

    #[test]
    fn phones_normalize_as_the_original_then_as_melo() {
        assert_eq!(melo_phone(" 89990000001 ").as_deref(), Some("+79990000001"));
        assert_eq!(melo_phone("+79990000001").as_deref(), Some("+79990000001"));
        assert_eq!(melo_phone("79990000001").as_deref(), Some("+79990000001"));
        assert_eq!(
            melo_phone("+1 555 0100"),
            None,
            "the original refused spaces"
        );
        assert_eq!(melo_phone("+0123"), None);
        assert_eq!(melo_phone("12345678901234567"), None);
        assert_eq!(melo_phone("not a phone"), None);
    }

    #[test]
    fn bcrypt_hashes() {
        let h = "$2b$12$abcdefghijklmnopqrstuuJ0nBq3oHj7ufY1m2.Xk0BOaJQvFRZ6W";
        assert_eq!(h.len(), 60);
        assert!(bcrypt_hash(h));
        assert!(!bcrypt_hash("plaintext-password"));
        assert!(!bcrypt_hash(&h.replace("$2b$", "$1$x")));
    }
}
