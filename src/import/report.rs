//! What an import read, did and could not use: counts per kind, and every unusable row named
//! by the original's identifiers only (table and primary key, or Redis key), never by a
//! personal value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::source::UidColumn;

/// Problem rows kept in a report; past this only their number is (the counts stay exact).
pub const PROBLEMS_LISTED: usize = 100_000;

/// Counts of one kind of record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Source rows (or Redis keys) read.
    pub read: u64,
    /// Created in Melo (in a dry run: would be created).
    pub imported: u64,
    /// Already there from an earlier import, or merged into what Melo has.
    pub already: u64,
    /// Source rows folded into another row of the same record (duplicates).
    pub merged_duplicates: u64,
    /// Source rows not imported (see the problems).
    pub skipped: u64,
}

/// What became of a problem row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The row was not imported.
    Skipped,
    /// The row was imported without one of its values.
    FieldDropped,
    /// The row was imported with a replacement value (a new invite code).
    Replaced,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Skipped => "skipped",
            Action::FieldDropped => "field dropped",
            Action::Replaced => "replaced",
        }
    }
}

/// One row the import could not use as it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The original's table (`users`, `subscriptions`, …) or `redis`.
    pub table: &'static str,
    /// The row's primary key, or the Redis key.
    pub id: String,
    /// Why, as a stable code (`phone_undecryptable`, `dangling_reference`, …).
    pub reason: &'static str,
    /// What was done.
    pub action: Action,
}

/// A kind of the original's data that is not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotImported {
    /// What.
    pub what: &'static str,
    /// Why.
    pub why: &'static str,
}

/// The kinds of data the original holds that Melo does not take over.
pub const NOT_IMPORTED: &[NotImported] = &[
    NotImported {
        what: "message history (Redis history:*)",
        why: "the original kept bare payloads without message id, sender or time, and every DM twice; it cannot be reconstructed faithfully",
    },
    NotImported {
        what: "offline queues (Redis ws_message:*)",
        why: "undelivered frames in the original's wire format, without ids; clients resynchronize with Melo",
    },
    NotImported {
        what: "sessions and access tokens (user_sessions, JWTs, jwt_blacklist:*)",
        why: "Melo signs its own tokens; clients log in again (with their device token, which is imported)",
    },
    NotImported {
        what: "push subscriptions (Redis push:*)",
        why: "Melo keeps one per session, sealed; clients register again when they log in",
    },
    NotImported {
        what: "scheduled messages (Redis schedule:*)",
        why: "the original never delivered them",
    },
    NotImported {
        what: "rate-limit, CSRF, typing, presence and temporary invite keys",
        why: "short-lived state",
    },
    NotImported {
        what: "last activity (users.last_activity, user_statuses)",
        why: "Melo keeps presence only while a client is connected",
    },
];

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nothing was written.
    pub dry_run: bool,
    /// How the original's `users.unique_id` is typed.
    pub uid_column: UidColumn,
    /// Counts per kind: `users`, `contacts`, `chats`, `members`, `read_markers`,
    /// `device_tokens`, `avatars`, `public_keys`, `secret_key_backups`.
    pub kinds: BTreeMap<&'static str, KindCounts>,
    /// Problem rows per `table/reason`.
    pub reasons: BTreeMap<String, u64>,
    /// The problem rows (at most [`PROBLEMS_LISTED`]).
    pub problems: Vec<Problem>,
    /// Problem rows past [`PROBLEMS_LISTED`], counted only.
    pub problems_not_listed: u64,
    /// Notes on the run (e.g. a part that was skipped, and why).
    pub notes: Vec<String>,
    /// What is not imported, and why.
    pub not_imported: &'static [NotImported],
}

impl Report {
    pub(crate) fn new(dry_run: bool, uid_column: UidColumn) -> Self {
        let mut kinds = BTreeMap::new();
        for k in [
            "users",
            "avatars",
            "public_keys",
            "secret_key_backups",
            "contacts",
            "chats",
            "members",
            "read_markers",
            "device_tokens",
        ] {
            kinds.insert(k, KindCounts::default());
        }
        Self {
            dry_run,
            uid_column,
            kinds,
            reasons: BTreeMap::new(),
            problems: Vec::new(),
            problems_not_listed: 0,
            notes: Vec::new(),
            not_imported: NOT_IMPORTED,
        }
    }

    /// The counts of `kind`.
    pub fn kind(&self, kind: &str) -> KindCounts {
        self.kinds.get(kind).copied().unwrap_or_default()
    }

    pub(crate) fn counts(&mut self, kind: &'static str) -> &mut KindCounts {
        self.kinds.entry(kind).or_default()
    }

    pub(crate) fn problem(
        &mut self,
        table: &'static str,
        id: impl ToString,
        reason: &'static str,
        action: Action,
    ) {
        *self.reasons.entry(format!("{table}/{reason}")).or_default() += 1;
        if self.problems.len() < PROBLEMS_LISTED {
            self.problems.push(Problem {
                table,
                id: printable_id(&id.to_string()),
                reason,
                action,
            });
        } else {
            self.problems_not_listed += 1;
        }
    }

    /// A skipped row of `kind`, read from `table`.
    pub(crate) fn skip(
        &mut self,
        kind: &'static str,
        table: &'static str,
        id: impl ToString,
        reason: &'static str,
    ) {
        self.counts(kind).skipped += 1;
        self.problem(table, id, reason, Action::Skipped);
    }

    /// The report as text for an operator.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let verb = if self.dry_run {
            "dry run: nothing was written; \"imported\" counts what a run would create"
        } else {
            "import done"
        };
        let _ = writeln!(out, "melo import-original: {verb}");
        let _ = writeln!(
            out,
            "original uid column: {}",
            match self.uid_column {
                UidColumn::Text => "text",
                UidColumn::Integer => "integer (uids left-padded to 8 digits)",
            }
        );
        let _ = writeln!(
            out,
            "\n{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "kind", "read", "imported", "already", "merged", "skipped"
        );
        for (k, c) in &self.kinds {
            let _ = writeln!(
                out,
                "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}",
                k, c.read, c.imported, c.already, c.merged_duplicates, c.skipped
            );
        }
        if !self.reasons.is_empty() {
            let _ = writeln!(out, "\nproblems by reason:");
            for (r, n) in &self.reasons {
                let _ = writeln!(out, "  {r}: {n}");
            }
            let _ = writeln!(out, "\nproblem rows (original table and id):");
            for p in &self.problems {
                let _ = writeln!(
                    out,
                    "  {} {}: {} ({})",
                    p.table,
                    p.id,
                    p.reason,
                    p.action.as_str()
                );
            }
            if self.problems_not_listed > 0 {
                let _ = writeln!(out, "  … and {} more", self.problems_not_listed);
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "\nnote: {n}");
        }
        let _ = writeln!(out, "\nnot imported:");
        for n in self.not_imported {
            let _ = writeln!(out, "  {}: {}", n.what, n.why);
        }
        out
    }
}

/// Longest id kept in a problem row, characters (a Redis key name can be long).
const ID_MAX_CHARS: usize = 200;

/// An id as a report shows it: control, bidi and zero-width characters escaped (`\n`,
/// `\u{202e}`), so that a Redis key name cannot add lines to the report or reorder it;
/// at most [`ID_MAX_CHARS`] characters.
fn printable_id(raw: &str) -> String {
    let mut out = String::new();
    for (n, c) in raw.chars().enumerate() {
        if n == ID_MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || super::users::invisible(c) || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_inject_lines_or_controls() {
        let mut r = Report::new(false, UidColumn::Text);
        r.skip(
            "device_tokens",
            "redis",
            "device:1\nnote: forged line\r\u{1b}[31m\u{202e}x",
            "uid_invalid",
        );
        let text = r.to_text();
        assert!(!text.contains("\nnote: forged"), "{text}");
        for bad in ['\r', '\u{1b}', '\u{202e}'] {
            assert!(!text.contains(bad), "{text:?}");
        }
        assert!(text.contains("device:1\\nnote: forged line"), "{text}");
        let id = &r.problems[0].id;
        assert!(!id.chars().any(char::is_control), "{id:?}");
    }
}
