//! The statements of one batch of the group-commit writer (`writer.rs`), run inside its
//! transaction. Every statement has ONE shape whatever the batch holds: its rows travel as one
//! JSON parameter read with `JSON_TABLE` (see `json.rs`), so the writer's connection prepares
//! each statement once, and the server joins the rows by key instead of analysing long `IN` and
//! `OR` lists. A batch runs at most these, each only when it has something to do:
//!
//! 1. a probe of the batch's message ids and `(sender_session, client_id)` pairs (one row
//!    per message, two primary/unique key lookups each);
//! 2. the message INSERT (one per 4 MiB of rows);
//! 3. the `queue_seq` upsert and 4. the read of the new counters;
//! 5. the queue INSERT (one per 4 MiB of rows);
//! 6. the delivery flags' UPDATE;
//! 7. the DELETE of the acknowledged entries.
//!
//! Seqs: each session's counter row in `queue_seq` is bumped with `INSERT … ON DUPLICATE KEY
//! UPDATE` (which keeps the row locked until COMMIT) in ascending session order, and read back
//! locked, so the appends to one session are serialized across every node sharing the database
//! and their seqs are gap-free and increasing. Acknowledgements are ranges of one session's
//! entries (`seq <= upto`, runs of `seqs`), deleted by one statement that range-scans the
//! primary key for each (spelling the session as `q.session_id >= j.s AND q.session_id <= j.s`
//! makes MariaDB plan "range checked for each record" instead of a `ref` scan of the whole
//! session); nothing is read first: the caller knows what it acked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::MySqlConnection;

use super::json::{self, B64, ID_TABLE};
use super::writer::{Req, Resp};
use super::TxResult;
use crate::model::{MessageId, NewEntry, NewMessage, StoreOutcome, Timestamp};
use crate::store::sql::rows::{uid, Cells};
use crate::store::{StoreError, StoreResult};

/// JSON bytes per statement of message or queue rows: well under the server's default
/// `max_allowed_packet` (16 MiB), escaping and base64 included.
const CHUNK_BYTES: usize = 4 << 20;

/// Longest `client_id` the column holds: a longer one matches nothing (and fails its INSERT).
const CLIENT_ID_MAX: usize = 255;

const PROBE: &str = "SELECT j.n AS n, a.id IS NOT NULL AS taken, b.id AS first \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, \
       i VARCHAR(32) CHARACTER SET ascii PATH '$[0]', s BIGINT PATH '$[1]', \
       k VARBINARY(255) PATH '$[2]')) j \
     LEFT JOIN messages a ON a.id = UNHEX(j.i) \
     LEFT JOIN messages b ON b.sender_session = j.s AND b.client_id = j.k \
     WHERE a.id IS NOT NULL OR b.id IS NOT NULL";

const INSERT_MESSAGES: &str = "INSERT INTO messages (id, from_uid, to_uid, chat_id, payload, \
     signature, created_at, sender_session, client_id) \
     SELECT UNHEX(j.i), j.f, j.t, j.c, j.p, j.g, j.a, j.s, j.k \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (i VARCHAR(32) CHARACTER SET ascii PATH '$[0]', \
       f BIGINT PATH '$[1]', t BIGINT PATH '$[2]', c BIGINT PATH '$[3]', \
       p LONGTEXT CHARACTER SET utf8mb4 PATH '$[4]', g LONGTEXT CHARACTER SET utf8mb4 PATH '$[5]', \
       a BIGINT PATH '$[6]', s BIGINT PATH '$[7]', \
       k LONGTEXT CHARACTER SET utf8mb4 PATH '$[8]')) j";

const BUMP_SEQS: &str = "INSERT INTO queue_seq (session_id, last_seq) SELECT j.s, j.n \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (s BIGINT PATH '$[0]', n BIGINT PATH '$[1]')) j \
     ORDER BY j.s ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)";

const READ_SEQS: &str = "SELECT q.session_id AS session_id, q.last_seq AS last_seq \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (s BIGINT PATH '$[0]')) j \
     JOIN queue_seq q ON q.session_id = j.s FOR UPDATE";

const INSERT_QUEUE: &str = "INSERT INTO queue (session_id, seq, message_id, self_copy, event, \
     status, created_at) \
     SELECT j.s, j.q, UNHEX(j.m), j.c, FROM_BASE64(j.e), FROM_BASE64(j.t), ? \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (s BIGINT PATH '$[0]', q BIGINT PATH '$[1]', \
       m VARCHAR(32) CHARACTER SET ascii PATH '$[2]', c TINYINT PATH '$[3]', \
       e LONGTEXT CHARACTER SET ascii PATH '$[4]', t LONGTEXT CHARACTER SET ascii PATH '$[5]')) j";

const DELETE_ACKED: &str = "DELETE q FROM JSON_TABLE(?, '$[*]' COLUMNS (s BIGINT PATH '$[0]', \
       lo BIGINT PATH '$[1]', hi BIGINT PATH '$[2]')) j \
     JOIN queue q ON q.session_id >= j.s AND q.session_id <= j.s \
       AND q.seq >= j.lo AND q.seq <= j.hi";

/// The answers of a batch's operations, by position, as the batch decides them.
type Answers = [Option<StoreResult<Resp>>];

/// Runs the batch `reqs` inside the caller's transaction; the answer of each operation.
pub(super) async fn execute(
    conn: &mut MySqlConnection,
    reqs: &[Req],
) -> TxResult<Vec<StoreResult<Resp>>> {
    let mut out: Vec<Option<StoreResult<Resp>>> = reqs.iter().map(|_| None).collect();
    let accepted = store_messages(conn, reqs, &mut out).await?;

    // Queue entries of the stored messages, the enqueued entries and the receipts of the acks,
    // in operation order, with the range of them each operation owns.
    let mut slots: Vec<Slot<'_>> = Vec::new();
    let mut owned: Vec<(usize, usize, usize)> = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let start = slots.len();
        match r {
            Req::Store(m, targets) if accepted[i] => {
                slots.extend(targets.iter().map(|t| Slot {
                    session: t.session.0,
                    message: Some(m.message.id),
                    self_copy: t.self_copy,
                    entry: None,
                }));
            }
            Req::Store(..) => continue,
            Req::Enqueue(entries) => slots.extend(entries.iter().map(Slot::entry)),
            Req::Ack(_, acks) => slots.extend(acks.receipts.iter().map(Slot::entry)),
        }
        owned.push((i, start, slots.len()));
    }
    // Queue time is now: `trim_queues` expires entries by it.
    let seqs = append(conn, &slots, Timestamp::now()).await?;
    for (i, start, end) in owned {
        let mine = seqs
            .get(start..end)
            .map(<[i64]>::to_vec)
            .unwrap_or_default();
        out[i] = Some(Ok(match &reqs[i] {
            Req::Store(..) => Resp::Store(StoreOutcome::Stored(mine)),
            _ => Resp::Seqs(mine),
        }));
    }
    flag_delivered(conn, reqs).await?;
    remove_acked(conn, reqs).await?;
    out.into_iter()
        .map(|r| r.ok_or_else(|| StoreError::Backend("an operation went unanswered".into())))
        .map(|r| r.map_err(Into::into))
        .collect::<TxResult<Vec<_>>>()
}

/// Decides duplicates and id conflicts of the batch's messages, then inserts the others;
/// which operations were inserted.
async fn store_messages(
    conn: &mut MySqlConnection,
    reqs: &[Req],
    out: &mut Answers,
) -> TxResult<Vec<bool>> {
    let mut accepted = vec![false; reqs.len()];
    let stores: Vec<(usize, &NewMessage)> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Req::Store(m, _) => Some((i, m)),
            _ => None,
        })
        .collect();
    if stores.is_empty() {
        return Ok(accepted);
    }
    // Committed messages with the same id, or the same (sender_session, client_id).
    let probe: Vec<(MessageId, i64, Option<&str>)> = stores
        .iter()
        .map(|(_, m)| {
            let cid = m.client_id.as_deref().filter(|c| c.len() <= CLIENT_ID_MAX);
            (m.message.id, m.sender_session.0, cid)
        })
        .collect();
    let mut taken = vec![false; stores.len()];
    let mut first: Vec<Option<MessageId>> = vec![None; stores.len()];
    for r in sqlx::query(PROBE)
        .bind(json::array(&probe)?)
        .fetch_all(&mut *conn)
        .await?
    {
        let n = usize::try_from(r.int("n")? - 1).map_err(|_| corrupt_probe())?;
        *taken.get_mut(n).ok_or_else(corrupt_probe)? = r.flag("taken")?;
        first[n] = r.opt_bytes("first")?.map(|b| id_from(&b)).transpose()?;
    }
    let mut by_client: HashMap<(i64, &str), MessageId> = HashMap::new();
    let mut ids: BTreeSet<MessageId> = BTreeSet::new();
    let mut rows = Vec::with_capacity(stores.len());
    for (k, &(i, msg)) in stores.iter().enumerate() {
        let key = msg.client_id.as_deref().map(|c| (msg.sender_session.0, c));
        let earlier = key.and_then(|k| by_client.get(&k).copied());
        if let Some(first) = first[k].or(earlier) {
            out[i] = Some(Ok(Resp::Store(StoreOutcome::Duplicate(first))));
            continue;
        }
        if taken[k] || !ids.insert(msg.message.id) {
            out[i] = Some(Err(StoreError::Conflict("message_id")));
            continue;
        }
        if let Some(key) = key {
            // A later operation of this batch with the same key is its duplicate.
            by_client.insert(key, msg.message.id);
        }
        accepted[i] = true;
        let m = &msg.message;
        rows.push((
            m.id,
            uid(m.from),
            m.to.map(uid),
            m.chat_id,
            m.payload.as_str(),
            m.signature.as_deref(),
            m.created_at.millis(),
            msg.sender_session.0,
            msg.client_id.as_deref(),
        ));
    }
    let sizes: Vec<usize> = rows
        .iter()
        .map(|r| 160 + 2 * (r.4.len() + r.5.map_or(0, str::len)))
        .collect();
    for chunk in chunks(&rows, &sizes) {
        sqlx::query(INSERT_MESSAGES)
            .bind(json::array(chunk)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(accepted)
}

fn corrupt_probe() -> StoreError {
    StoreError::Backend("the message probe answered an unknown row".into())
}

fn id_from(b: &[u8]) -> StoreResult<MessageId> {
    crate::store::sql::rows::id_from(b)
}

/// Consecutive runs of `rows` of at most [`CHUNK_BYTES`] by `sizes` (at least one row each).
fn chunks<'a, T>(rows: &'a [T], sizes: &'a [usize]) -> impl Iterator<Item = &'a [T]> + 'a {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= rows.len() {
            return None;
        }
        let mut end = start + 1;
        let mut bytes = sizes.get(start).copied().unwrap_or(0);
        while let Some(size) = sizes.get(end) {
            bytes += size;
            if bytes > CHUNK_BYTES {
                break;
            }
            end += 1;
        }
        let chunk = &rows[start..end];
        start = end;
        Some(chunk)
    })
}

/// One queue entry to append.
struct Slot<'a> {
    session: i64,
    message: Option<MessageId>,
    self_copy: bool,
    entry: Option<&'a NewEntry>,
}

impl<'a> Slot<'a> {
    fn entry((session, entry): &'a (crate::model::SessionId, NewEntry)) -> Self {
        Slot {
            session: session.0,
            message: None,
            self_copy: false,
            entry: Some(entry),
        }
    }
}

/// Appends `slots`; returns the seq of each, in order.
async fn append(
    conn: &mut MySqlConnection,
    slots: &[Slot<'_>],
    at: Timestamp,
) -> TxResult<Vec<i64>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    // Ascending session order: concurrent appends lock counters in one order.
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for s in slots {
        *counts.entry(s.session).or_default() += 1;
    }
    let counts_json = json::array(&counts.iter().collect::<Vec<_>>())?;
    sqlx::query(BUMP_SEQS)
        .bind(&counts_json)
        .execute(&mut *conn)
        .await?;
    // Per session, the next seq of this append: the new last_seq minus the count, plus one.
    let mut next: HashMap<i64, i64> = HashMap::with_capacity(counts.len());
    for r in sqlx::query(READ_SEQS)
        .bind(&counts_json)
        .fetch_all(&mut *conn)
        .await?
    {
        let session = r.int("session_id")?;
        let n = counts.get(&session).copied().unwrap_or(0);
        next.insert(session, r.int("last_seq")? - n + 1);
    }
    let mut seqs = Vec::with_capacity(slots.len());
    for s in slots {
        let seq = next
            .get_mut(&s.session)
            .ok_or_else(|| StoreError::Backend("queue_seq upsert skipped a session".into()))?;
        seqs.push(*seq);
        *seq += 1;
    }
    let rows: Vec<_> = slots
        .iter()
        .zip(&seqs)
        .map(|(s, seq)| {
            let (event, status) = match s.entry {
                Some(NewEntry::Event(b)) => (Some(B64(b)), None),
                Some(NewEntry::Status(b)) => (None, Some(B64(b))),
                None => (None, None),
            };
            (
                s.session,
                *seq,
                s.message,
                u8::from(s.self_copy),
                event,
                status,
            )
        })
        .collect();
    let sizes: Vec<usize> = slots
        .iter()
        .map(|s| 96 + s.entry.map_or(0, |e| e.body().len() * 4 / 3))
        .collect();
    for chunk in chunks(&rows, &sizes) {
        sqlx::query(INSERT_QUEUE)
            .bind(at.millis())
            .bind(json::array(chunk)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(seqs)
}

/// Flags the messages of every acknowledgement delivered: one UPDATE, ids in ascending order.
async fn flag_delivered(conn: &mut MySqlConnection, reqs: &[Req]) -> TxResult<()> {
    let ids: Vec<MessageId> = reqs
        .iter()
        .filter_map(|r| match r {
            Req::Ack(_, acks) => Some(acks.delivered.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "UPDATE messages m JOIN {ID_TABLE} j ON m.id = UNHEX(j.i) \
         SET m.delivered = 1 WHERE m.delivered = 0"
    ))
    .bind(json::ids(&ids)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes what every acknowledgement of the batch removes: one DELETE of seq ranges, merged
/// per session and in ascending order.
async fn remove_acked(conn: &mut MySqlConnection, reqs: &[Req]) -> TxResult<()> {
    let mut ranges: Vec<(i64, i64, i64)> = Vec::new();
    for r in reqs {
        let Req::Ack(session, acks) = r else { continue };
        if acks.upto > 0 {
            ranges.push((session.0, i64::MIN, acks.upto));
        }
        ranges.extend(acks.seqs.iter().map(|&q| (session.0, q, q)));
    }
    if ranges.is_empty() {
        return Ok(());
    }
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64, i64)> = Vec::with_capacity(ranges.len());
    for (s, lo, hi) in ranges {
        match merged.last_mut() {
            Some((ls, _, lhi)) if *ls == s && lo <= lhi.saturating_add(1) => *lhi = (*lhi).max(hi),
            _ => merged.push((s, lo, hi)),
        }
    }
    sqlx::query(DELETE_ACKED)
        .bind(json::array(&merged)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
