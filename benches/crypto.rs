//! Hot-path costs of the foundation: PII sealing, blind indexes, token verification,
//! and a full authenticated request through the service layer (memory backends).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use melo::crypto::jwt::TokenCodec;
use melo::crypto::Pii;
use melo::model::{SessionId, UserId};
use melo::StaticKeys;

fn crypto(c: &mut Criterion) {
    let keys = Arc::new(StaticKeys::generate().expect("keys"));
    let pii = Pii::new(keys.clone());
    let sealed = pii
        .seal_str("users", "phone", "12345678", "+79990000001")
        .expect("seal");
    c.bench_function("pii_seal_phone", |b| {
        b.iter(|| {
            pii.seal_str("users", "phone", "12345678", "+79990000001")
                .expect("seal")
        })
    });
    c.bench_function("pii_open_phone", |b| {
        b.iter(|| {
            pii.open("users", "phone", "12345678", &sealed)
                .expect("open")
        })
    });
    c.bench_function("blind_index_phone", |b| {
        b.iter(|| pii.blind_index("phone", b"+79990000001"))
    });

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let codec = TokenCodec::new(keys, "pixeltoo.ru".into(), "mvp_clients".into(), 7200);
    let uid = UserId::new(12_345_678).expect("uid");
    let token = rt.block_on(codec.issue(uid, SessionId(1))).expect("issue");
    c.bench_function("jwt_verify_rs256", |b| {
        b.iter(|| codec.verify(&token).expect("verify"))
    });
    c.bench_function("jwt_issue_rs256", |b| {
        b.to_async(&rt)
            .iter(|| async { codec.issue(uid, SessionId(1)).await.expect("issue") })
    });
}

// criterion's macros generate undocumented public fns.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, crypto);
}
criterion_main!(group::benches);
