//! What the SQL backends share: row decoding ([`rows`]) and the embedded-migration runner.

pub(crate) mod rows;
