//! What the SQL backends share: row decoding ([`rows`]), the operator tools' counts
//! ([`admin`]) and the embedded-migration runner.

pub(crate) mod admin;
pub(crate) mod rows;
pub(crate) mod schedule;
