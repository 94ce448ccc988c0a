//! Read markers (`message_read_statuses`): the last message each user read in each chat, with
//! the original's message id as its text and time 0, so that any read in Melo moves it.

use futures_util::TryStreamExt;

use super::source::MarkerRow;
use super::{ImportError, Run};
use crate::model::Timestamp;
use crate::store::{ReadMarker, READ_MARKER_ID_MAX_BYTES};

/// Every marker row; one marker per (user, chat): the most recently updated row.
pub(crate) async fn import(run: &mut Run<'_>) -> Result<(), ImportError> {
    if !run.db.has_table("message_read_statuses") {
        return Ok(());
    }
    let db = run.db;
    let mut rows = std::pin::pin!(db.markers());
    let mut group: Vec<MarkerRow> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        run.report.counts("read_markers").read += 1;
        if group
            .first()
            .is_some_and(|g| (g.user, g.chat) != (row.user, row.chat))
        {
            let done = std::mem::take(&mut group);
            marker(run, done).await?;
        }
        group.push(row);
    }
    if !group.is_empty() {
        marker(run, group).await?;
    }
    Ok(())
}

async fn marker(run: &mut Run<'_>, rows: Vec<MarkerRow>) -> Result<(), ImportError> {
    let Some(newest) = rows.first() else {
        return Ok(());
    };
    let user = match newest.user.and_then(|u| run.users.get(&u).copied()) {
        Some(u) => u,
        None => {
            let reason = match newest.user {
                Some(u) if run.seen_users.contains(&u) => "user_not_imported",
                _ => "dangling_reference",
            };
            for r in &rows {
                run.report
                    .skip("read_markers", "message_read_statuses", r.id, reason);
            }
            return Ok(());
        }
    };
    let chat = match newest.chat.filter(|c| run.chats.contains_key(c)) {
        Some(c) => c,
        None => {
            let reason = match newest.chat {
                Some(c) if run.seen_chats.contains(&c) => "chat_not_imported",
                _ => "dangling_reference",
            };
            for r in &rows {
                run.report
                    .skip("read_markers", "message_read_statuses", r.id, reason);
            }
            return Ok(());
        }
    };
    // A marker of a chat the user is not a member of (left, removed) would never be read.
    let owner = run.chats.get(&chat).copied();
    let member = owner == Some(user)
        || match newest.user {
            Some(u) => run.db.is_member(chat, u).await?,
            None => false,
        };
    if !member {
        for r in &rows {
            run.report.skip(
                "read_markers",
                "message_read_statuses",
                r.id,
                "not_a_member",
            );
        }
        return Ok(());
    }
    let id = newest.message_id.trim();
    if id.is_empty() || id.len() > READ_MARKER_ID_MAX_BYTES {
        let reason = if id.is_empty() {
            "message_id_missing"
        } else {
            "message_id_too_long"
        };
        for r in &rows {
            run.report
                .skip("read_markers", "message_read_statuses", r.id, reason);
        }
        return Ok(());
    }
    run.report.counts("read_markers").merged_duplicates += rows.len() as u64 - 1;
    if run.member_done(user, chat) {
        // Imported by an earlier run (or the user left the chat in Melo since).
        run.report.counts("read_markers").already += 1;
        return Ok(());
    }
    let marker = ReadMarker {
        message_id: id.to_owned(),
        at: Timestamp::from_millis(0),
    };
    let moved = if run.opts.dry_run {
        // Reads show markers of chats the user is a member of only; a dry run wrote no
        // membership, so it counts the marker as new unless Melo shows it already.
        !run.store
            .read_markers(user, &[chat])
            .await?
            .iter()
            .any(|(_, m)| *m == marker || m.is_newer_than(&marker))
    } else {
        run.store.advance_read_marker(user, chat, &marker).await?
    };
    let c = run.report.counts("read_markers");
    if moved {
        c.imported += 1;
    } else {
        c.already += 1;
    }
    Ok(())
}
