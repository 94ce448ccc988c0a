//! The zero-knowledge audit (issue 7): one workload that touches every documented route with
//! distinctive PII, then dumps of everything the backends keep, searched for each plaintext.

#![allow(unreachable_pub)]

pub mod api;
pub mod backends;
pub mod dump;
pub mod monitor;
pub mod people;
pub mod realtime;
pub mod search;
pub mod workload;
