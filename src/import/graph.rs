//! Contacts, chats and their members: the original's rows merged where it let duplicates in
//! (it had no unique key on either) and written with Melo's store calls.

use futures_util::TryStreamExt;

use super::source::{ChatRow, EdgeRow, MemberRow};
use super::{secs_or, ImportError, Run};
use crate::model::{ChatKind, ChatRole, Timestamp, UserId};
use crate::service::chats::{new_chat, new_code, valid_code};
use crate::store::{ContactState, ImportOutcome, ImportedChat, StoreError};

/// Longest slow-mode interval Melo accepts (`/chats/set_slow_mode`), seconds.
const SLOW_MODE_MAX: i64 = 86_400;
/// Longest chat name Melo accepts (`/chats/create`), characters.
const CHAT_NAME_MAX_CHARS: usize = 128;

/// A user reference of an original row: the Melo uid, or why there is none.
fn user_ref(run: &Run<'_>, id: Option<i64>) -> Result<UserId, &'static str> {
    let id = id.ok_or("dangling_reference")?;
    match run.users.get(&id) {
        Some(uid) => Ok(*uid),
        None if run.seen_users.contains(&id) => Err("user_not_imported"),
        None => Err("dangling_reference"),
    }
}

/// Contact edges: one relationship per pair whatever the duplicates and directions; accepted
/// when any of its rows is.
pub(crate) async fn contacts(run: &mut Run<'_>) -> Result<(), ImportError> {
    let db = run.db;
    let mut rows = std::pin::pin!(db.edges());
    let mut group: Vec<EdgeRow> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        run.report.counts("contacts").read += 1;
        let key = pair_key(&row);
        if group.first().is_some_and(|g| pair_key(g) != key) {
            let done = std::mem::take(&mut group);
            contact(run, done).await?;
        }
        group.push(row);
    }
    if !group.is_empty() {
        contact(run, group).await?;
    }
    Ok(())
}

fn pair_key(e: &EdgeRow) -> (i64, i64) {
    let (a, b) = (e.user.unwrap_or(0), e.target.unwrap_or(0));
    (a.min(b), a.max(b))
}

/// One pair's rows.
async fn contact(run: &mut Run<'_>, rows: Vec<EdgeRow>) -> Result<(), ImportError> {
    let mut usable: Vec<(UserId, UserId, bool, i64)> = Vec::new();
    for r in &rows {
        let from = user_ref(run, r.user);
        let to = user_ref(run, r.target);
        let accepted = match r.status.trim() {
            "accepted" => true,
            "pending" => false,
            _ => {
                run.report
                    .skip("contacts", "subscriptions", r.id, "status_unknown");
                continue;
            }
        };
        match (from, to) {
            (Ok(a), Ok(b)) if a == b => {
                run.report
                    .skip("contacts", "subscriptions", r.id, "self_reference")
            }
            (Ok(a), Ok(b)) => usable.push((a, b, accepted, r.id)),
            (Err(reason), _) | (_, Err(reason)) => {
                run.report.skip("contacts", "subscriptions", r.id, reason)
            }
        }
    }
    // The earliest row names the requester; accepted when any row is.
    let Some(&(requester, target, _, _)) = usable.first() else {
        return Ok(());
    };
    let accepted = usable.iter().any(|u| u.2);
    run.report.counts("contacts").merged_duplicates += usable.len() as u64 - 1;
    if run.done.graph_users.contains(&requester) && run.done.graph_users.contains(&target) {
        // Imported by an earlier run; what the users did since (a contact removed) stands.
        run.report.counts("contacts").already += 1;
        return Ok(());
    }
    let existing = run.store.relationship(requester, target).await?;
    let counts_as = match existing {
        None => {
            if !run.opts.dry_run {
                match run
                    .store
                    .request_contact(requester, target, false, Timestamp::now())
                    .await
                {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                if accepted {
                    run.store.accept_contact(requester, target).await?;
                }
            }
            Counted::Imported
        }
        Some(c) if accepted && c.state == ContactState::Pending => {
            // Melo has the pair pending (a request made there, or an earlier import of a
            // request accepted since on the original): accepted wins.
            if !run.opts.dry_run {
                run.store.accept_contact(c.requester, c.target).await?;
            }
            Counted::Already
        }
        Some(_) => Counted::Already,
    };
    let c = run.report.counts("contacts");
    match counts_as {
        Counted::Imported => c.imported += 1,
        Counted::Already => c.already += 1,
    }
    Ok(())
}

enum Counted {
    Imported,
    Already,
}

/// Chats page by page, with their original ids.
pub(crate) async fn chats(run: &mut Run<'_>) -> Result<(), ImportError> {
    let mut after = 0i64;
    loop {
        let page = run.db.chats(after, run.opts.chat_batch).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for c in &page {
            chat(run, c).await?;
        }
    }
    Ok(())
}

/// The chat's name by Melo's rule (`/chats/create`: 2 to 128 characters once trimmed), without
/// control, bidi or zero-width characters: cleaned (reported) when it breaks it, replaced by
/// "Chat <id>" (reported) when nothing usable is left.
fn chat_name(run: &mut Run<'_>, c: &ChatRow) -> String {
    let cleaned: String = c
        .name
        .chars()
        .map(|ch| if ch.is_whitespace() { ' ' } else { ch })
        .filter(|ch| !ch.is_control() && !super::users::invisible(*ch))
        .collect();
    let cleaned: String = cleaned
        .trim()
        .chars()
        .take(CHAT_NAME_MAX_CHARS)
        .collect::<String>()
        .trim()
        .to_owned();
    if new_chat(&cleaned, "chat").is_err() {
        run.report.problem(
            "chats",
            c.id,
            "name_replaced",
            super::report::Action::Replaced,
        );
        return format!("Chat {}", c.id);
    }
    if cleaned != c.name.trim() {
        run.report.problem(
            "chats",
            c.id,
            "name_cleaned",
            super::report::Action::Replaced,
        );
    }
    cleaned
}

async fn chat(run: &mut Run<'_>, c: &ChatRow) -> Result<(), ImportError> {
    run.report.counts("chats").read += 1;
    run.seen_chats.insert(c.id);
    let kind = match c.kind.trim() {
        "chat" | "" => ChatKind::Chat,
        "channel" => ChatKind::Channel,
        _ => {
            run.report.skip("chats", "chats", c.id, "type_unknown");
            return Ok(());
        }
    };
    let owner = match user_ref(run, c.owner) {
        Ok(o) => o,
        Err(reason) => {
            let reason = if reason == "user_not_imported" {
                "owner_not_imported"
            } else {
                reason
            };
            run.report.skip("chats", "chats", c.id, reason);
            return Ok(());
        }
    };
    if c.id < 1 {
        run.report.skip("chats", "chats", c.id, "id_invalid");
        return Ok(());
    }
    let name = chat_name(run, c);
    let row = c.id.to_string();
    let pii = run.pii.clone();
    let code = match c.invite_code.as_deref().map(str::trim) {
        Some(code) if valid_code(code) => Some(code.to_owned()),
        Some("") | None if !c.is_public => None,
        other => {
            // A public chat needs a code Melo accepts (14 URL-safe characters): an original
            // code of another shape cannot be typed into a Melo client, so a new one is made.
            if other.is_some_and(|s| !s.is_empty()) || c.is_public {
                run.report.problem(
                    "chats",
                    c.id,
                    "invite_code_replaced",
                    super::report::Action::Replaced,
                );
            }
            Some(new_code())
        }
    };
    let code = match code {
        Some(code) => Some((
            pii.seal_str("chats", "invite_code", &row, &code)?,
            pii.blind_index("invite", code.as_bytes()),
        )),
        None => None,
    };
    let record = ImportedChat {
        id: c.id,
        kind,
        sealed_name: pii.seal_str("chats", "name", &row, &name)?,
        owner,
        created_at: secs_or(c.created_secs, Timestamp::now()),
        is_public: c.is_public,
        code,
        slow_mode_secs: c.slow_mode.clamp(0, SLOW_MODE_MAX) as u32,
    };
    let outcome = if run.opts.dry_run {
        if run.store.chat(c.id).await?.is_some() {
            // Reads cannot tell an earlier import's chat from Melo's own; the run can.
            ImportOutcome::AlreadyImported
        } else {
            ImportOutcome::Created
        }
    } else {
        run.store.import_chat(&record).await?
    };
    match outcome {
        ImportOutcome::Created => run.report.counts("chats").imported += 1,
        ImportOutcome::AlreadyImported => run.report.counts("chats").already += 1,
        ImportOutcome::Conflict(what) => {
            let reason = if what == "invite" {
                "conflict_invite_code_taken_in_melo"
            } else {
                "conflict_chat_id_taken_in_melo"
            };
            run.report.skip("chats", "chats", c.id, reason);
            return Ok(());
        }
    }
    run.chats.insert(c.id, owner);
    Ok(())
}

fn role_rank(r: ChatRole) -> u8 {
    match r {
        ChatRole::Owner => 3,
        ChatRole::Admin => 2,
        ChatRole::Member => 1,
    }
}

/// Memberships: one per (chat, user) with the highest role of its rows and the earliest join.
pub(crate) async fn members(run: &mut Run<'_>) -> Result<(), ImportError> {
    let db = run.db;
    let mut rows = std::pin::pin!(db.members());
    let mut group: Vec<MemberRow> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        run.report.counts("members").read += 1;
        if group
            .first()
            .is_some_and(|g| (g.chat, g.user) != (row.chat, row.user))
        {
            let done = std::mem::take(&mut group);
            member(run, done).await?;
        }
        group.push(row);
    }
    if !group.is_empty() {
        member(run, group).await?;
    }
    Ok(())
}

async fn member(run: &mut Run<'_>, rows: Vec<MemberRow>) -> Result<(), ImportError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let (first_id, chat_id) = (first.id, first.chat);
    let owner = match chat_id.and_then(|c| run.chats.get(&c).copied()) {
        Some(o) => o,
        None => {
            let reason = match chat_id {
                Some(c) if run.seen_chats.contains(&c) => "chat_not_imported",
                _ => "dangling_reference",
            };
            for r in &rows {
                run.report.skip("members", "chat_members", r.id, reason);
            }
            return Ok(());
        }
    };
    let chat = chat_id.unwrap_or_default();
    let user = match user_ref(run, first.user) {
        Ok(u) => u,
        Err(reason) => {
            for r in &rows {
                run.report.skip("members", "chat_members", r.id, reason);
            }
            return Ok(());
        }
    };
    let mut role = ChatRole::Member;
    let mut joined: Option<i64> = None;
    for r in &rows {
        let this = match r.role.trim() {
            "owner" => ChatRole::Owner,
            "admin" => ChatRole::Admin,
            "member" | "" => ChatRole::Member,
            _ => {
                run.report.problem(
                    "chat_members",
                    r.id,
                    "role_unknown_read_as_member",
                    super::report::Action::Replaced,
                );
                ChatRole::Member
            }
        };
        if role_rank(this) > role_rank(role) {
            role = this;
        }
        if let Some(j) = r.joined_secs {
            joined = Some(joined.map_or(j, |x: i64| x.min(j)));
        }
    }
    run.report.counts("members").merged_duplicates += rows.len() as u64 - 1;
    if user == owner {
        // The chat's import made its owner a member already (role owner), whatever the rows.
        run.report.counts("members").already += 1;
        return Ok(());
    }
    if role == ChatRole::Owner {
        // One owner per chat in Melo: the chat's `owner_id`. Another "owner" row is an admin.
        role = ChatRole::Admin;
        run.report.problem(
            "chat_members",
            first_id,
            "second_owner_made_admin",
            super::report::Action::Replaced,
        );
    }
    if run.member_done(user, chat) {
        // Imported by an earlier run; a member who left or was removed since stays out.
        run.report.counts("members").already += 1;
        return Ok(());
    }
    let at = secs_or(joined, Timestamp::now());
    let added = if run.opts.dry_run {
        run.store.member(chat, user).await?.is_none()
    } else {
        match run.store.add_member(chat, user, role, at).await {
            Ok(added) => added,
            // The chat was imported earlier and deleted in Melo since.
            Err(StoreError::NotFound) => {
                run.report
                    .skip("members", "chat_members", first_id, "chat_deleted_in_melo");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    };
    let c = run.report.counts("members");
    if added {
        c.imported += 1;
    } else {
        c.already += 1;
    }
    Ok(())
}
