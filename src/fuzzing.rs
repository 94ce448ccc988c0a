//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, off by default; not
//! part of the API). Each function feeds arbitrary bytes to the production code path of one
//! input the server accepts from the network or from storage, and drops the result: the
//! targets only look for panics, hangs and runaway allocations. A few cheap invariants are
//! asserted on top (a sealed value round-trips), so a broken invariant shows as a crash too.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::crypto::{DataKeys, Pii};
use crate::service::frames::{ClientFrame, Incoming};
use crate::service::validate;
use crate::store::SealedTable;
use crate::StaticKeys;

/// One WebSocket text frame from a client: `Incoming::decode` as `ws/client.rs` calls it,
/// then the stateless checks of the service call a `relay` / `chat_message` makes. (Binary
/// frames are refused before decoding, and the socket layer only passes valid UTF-8.)
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let incoming = Incoming::decode(text);
    let request = match incoming.frame {
        Ok(ClientFrame::Relay(f)) => f.into_request(),
        Ok(ClientFrame::ChatMessage(f)) => f.into_request(),
        _ => return,
    };
    let _ = request.check();
}

/// The JSON body of an HTTP route: the first byte picks the route (modulo the number of routes
/// with a body), the rest is the body. Runs the route's decode (`Ctx::json`) and every check
/// the handler and its service make before touching any state.
pub fn http_body(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    crate::http::fuzz_body(route, body);
}

/// `POST /avatar/upload`: the bytes up to the first `\n` are the `Content-Type` header, the
/// rest is the body; then the boundary, the part named `file` and the image sniffing, as the
/// handler does.
pub fn multipart(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return;
    };
    crate::http::fuzz_multipart(content_type, Bytes::copy_from_slice(body));
}

/// A `public_e2e_key` (register, login, device authorization, `POST /e2e/public_key`).
pub fn public_key_pem(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pem) = validate::rsa_public_key_pem(text) {
        assert_eq!(
            pem,
            text.trim(),
            "an accepted key is stored as its trimmed text"
        );
    }
}

/// The row every sealed value of the targets is bound to.
const ROW: &str = "10000001";

fn pii() -> Option<&'static Pii> {
    static PII: OnceLock<Option<Pii>> = OnceLock::new();
    PII.get_or_init(|| {
        let keys = StaticKeys::generate().ok()?;
        // Fixed data keys, two versions, so a corpus entry means the same thing every run.
        let data = DataKeys::new(1, BTreeMap::from([(1, [7; 32]), (2, [9; 32])]), [5; 32])
            .ok()?
            .with_blind_key(2, [6; 32])
            .ok()?;
        Some(Pii::new(Arc::new(keys.with_data_keys(data))))
    })
    .as_ref()
}

/// A sealed value read back from storage: the first byte picks a (table, column) of the sealed
/// tables, the rest is the stored bytes. Opening must fail cleanly (never panic) unless the
/// bytes are a real sealed value; sealing the same bytes must round-trip; blind indexes of the
/// bytes must be stable.
pub fn sealed_value(data: &[u8]) {
    let Some(pii) = pii() else {
        return;
    };
    let Some((&pick, sealed)) = data.split_first() else {
        return;
    };
    let columns: Vec<(&str, &str)> = SealedTable::ALL
        .iter()
        .flat_map(|t| t.columns().iter().map(move |c| (t.name(), *c)))
        .collect();
    let Some(&(table, column)) = columns.get(usize::from(pick) % columns.len().max(1)) else {
        return;
    };
    let _ = Pii::key_version(sealed);
    let _ = pii.open(table, column, ROW, sealed);
    let _ = pii.open_string(table, column, ROW, sealed);
    if let Ok(resealed) = pii.seal(table, column, ROW, sealed) {
        let opened = pii.open(table, column, ROW, &resealed).ok();
        assert_eq!(
            opened.as_deref(),
            Some(sealed),
            "seal then open round-trips"
        );
        assert!(
            pii.open(table, column, "10000002", &resealed).is_err(),
            "row is bound"
        );
    }
    let index = pii.blind_index(column, sealed);
    let all = pii.blind_indexes(column, sealed);
    assert_eq!(
        all.first(),
        Some(&index),
        "the current blind index comes first"
    );
    let _ = pii.blind_tag(column, sealed);
}
