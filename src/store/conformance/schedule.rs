//! Conformance cases of [`ScheduleStore`](crate::store::ScheduleStore): pending schedules,
//! idempotency, the per-owner bound, claims and their leases, erasure.

use std::collections::HashSet;
use std::sync::Arc;

use super::{uid, user, Store};
use crate::model::{SessionId, Timestamp, UserId};
use crate::store::{Claim, ScheduleId, ScheduleOutcome, ScheduledMessage};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

fn sched(owner: UserId, session: i64, due: i64, cid: Option<&str>) -> ScheduledMessage {
    ScheduledMessage {
        id: ScheduleId::new(),
        owner,
        session: SessionId(session),
        target: Some(uid(22_222_222)),
        chat_id: None,
        payload: format!("ciphertext due at {due}"),
        signature: Some("sig".into()),
        client_id: cid.map(str::to_owned),
        due_at: t(due),
        created_at: t(0),
    }
}

async fn owner(s: &Arc<dyn Store>, n: u32, idx: &[u8]) -> UserId {
    let u = user(n, idx);
    s.create_user(&u).await.expect("create user");
    u.id
}

async fn create(s: &Arc<dyn Store>, m: &ScheduledMessage) {
    assert_eq!(
        s.create_schedule(m, 100).await.expect("create"),
        ScheduleOutcome::Created
    );
}

fn claim(token: u64, now: i64, lease: i64) -> Claim {
    Claim {
        token,
        now: t(now),
        until: t(now + lease),
    }
}

pub(crate) async fn schedule_create_list_cancel(s: Arc<dyn Store>) {
    let a = owner(&s, 11_111_111, b"idx-a").await;
    let b = owner(&s, 33_333_333, b"idx-b").await;
    let late = sched(a, 1, 3_000, None);
    let early = sched(a, 1, 1_000, Some("c-1"));
    let mut chat = sched(a, 2, 2_000, None);
    chat.target = None;
    chat.chat_id = Some(7);
    chat.signature = None;
    let theirs = sched(b, 3, 500, None);
    for m in [&late, &early, &chat, &theirs] {
        create(&s, m).await;
    }
    let (list, total) = s.schedules_of(a, 0, 10).await.expect("list");
    assert_eq!(total, 3);
    assert_eq!(
        list,
        vec![early.clone(), chat.clone(), late.clone()],
        "by due time, every field kept"
    );
    let (page, total) = s.schedules_of(a, 1, 1).await.expect("page");
    assert_eq!((page, total), (vec![chat.clone()], 3));
    assert_eq!(
        s.schedules_of(uid(44_444_444), 0, 10).await.expect("none"),
        (vec![], 0)
    );

    // Only the owner cancels, once.
    assert!(!s.cancel_schedule(b, early.id, t(0)).await.expect("cancel"));
    assert!(s.cancel_schedule(a, early.id, t(0)).await.expect("cancel"));
    assert!(!s.cancel_schedule(a, early.id, t(0)).await.expect("again"));
    assert!(!s
        .cancel_schedule(a, ScheduleId::new(), t(0))
        .await
        .expect("unknown"));
    let (list, total) = s.schedules_of(a, 0, 10).await.expect("list");
    assert_eq!((list, total), (vec![chat, late], 2));
    assert_eq!(s.schedules_of(b, 0, 10).await.expect("b").1, 1);

    // The id is the key.
    let mut dup = sched(a, 1, 9_000, None);
    dup.id = theirs.id;
    assert!(s.create_schedule(&dup, 100).await.is_err());
}

pub(crate) async fn schedule_client_id_and_bound(s: Arc<dyn Store>) {
    let a = owner(&s, 11_111_111, b"idx-a").await;
    let first = sched(a, 1, 5_000, Some("same"));
    create(&s, &first).await;
    assert_eq!(
        s.create_schedule(&sched(a, 1, 6_000, Some("same")), 100)
            .await
            .expect("repeat"),
        ScheduleOutcome::Duplicate(first.id),
        "same device, same client_id: the first id"
    );
    create(&s, &sched(a, 2, 4_000, Some("same"))).await;
    assert_eq!(s.schedules_of(a, 0, 10).await.expect("list").1, 2);

    // The bound counts the owner's pending schedules; it reports the earliest due time.
    assert_eq!(
        s.create_schedule(&sched(a, 1, 1_000, None), 2)
            .await
            .expect("full"),
        ScheduleOutcome::Full(t(4_000))
    );
    assert_eq!(s.schedules_of(a, 0, 10).await.expect("list").1, 2);
    create(&s, &sched(a, 1, 1_000, None)).await;
    // A duplicate is answered even at the bound.
    assert_eq!(
        s.create_schedule(&sched(a, 1, 7_000, Some("same")), 1)
            .await
            .expect("dup at bound"),
        ScheduleOutcome::Duplicate(first.id)
    );

    // Unknown (or erased) owner: nothing stored.
    let ghost = uid(55_555_555);
    assert_eq!(
        s.create_schedule(&sched(ghost, 9, 1_000, None), 100)
            .await
            .expect("ghost"),
        ScheduleOutcome::NoUser
    );
    assert_eq!(s.schedules_of(ghost, 0, 10).await.expect("none").1, 0);

    // Once cancelled, the client_id is free again.
    assert!(s.cancel_schedule(a, first.id, t(0)).await.expect("cancel"));
    create(&s, &sched(a, 1, 6_000, Some("same"))).await;
}

pub(crate) async fn schedule_claims_and_leases(s: Arc<dyn Store>) {
    let a = owner(&s, 11_111_111, b"idx-a").await;
    let m1 = sched(a, 1, 1_000, None);
    let m2 = sched(a, 1, 2_000, None);
    let m3 = sched(a, 1, 10_000, None);
    for m in [&m2, &m3, &m1] {
        create(&s, m).await;
    }
    assert_eq!(s.next_due_after(t(0)).await.expect("next"), Some(t(1_000)));
    assert_eq!(
        s.next_due_after(t(1_000)).await.expect("next"),
        Some(t(2_000))
    );
    assert_eq!(s.next_due_after(t(10_000)).await.expect("next"), None);

    // Nothing is due yet.
    assert!(s
        .claim_due(claim(1, 500, 30_000), 10)
        .await
        .expect("claim")
        .is_empty());
    // Due rows, earliest first, at most `limit`.
    let got = s
        .claim_due(claim(1, 2_500, 30_000), 1)
        .await
        .expect("claim");
    assert_eq!(got, vec![m1.clone()]);
    let got = s
        .claim_due(claim(2, 2_500, 30_000), 10)
        .await
        .expect("claim");
    assert_eq!(got, vec![m2.clone()], "m1 is held by claim 1");
    assert!(s
        .claim_due(claim(3, 2_600, 30_000), 10)
        .await
        .expect("claim")
        .is_empty());

    // A held row is not cancelled (it is being sent); only its holder finishes it.
    assert!(!s.cancel_schedule(a, m1.id, t(2_600)).await.expect("cancel"));
    assert!(!s.finish_schedule(m1.id, 2).await.expect("wrong token"));

    // The lease of claim 1 ends: another claim takes m1, and claim 1 has lost it.
    let got = s
        .claim_due(claim(4, 32_500, 30_000), 10)
        .await
        .expect("claim");
    let ids: Vec<ScheduleId> = got.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![m1.id, m2.id, m3.id], "every lease ended, m3 due");
    assert!(!s.finish_schedule(m1.id, 1).await.expect("old token"));
    assert!(s.finish_schedule(m1.id, 4).await.expect("finish"));
    assert!(!s.finish_schedule(m1.id, 4).await.expect("twice"));

    // Deferred: free of any claim, claimable again from `not_before` on, cancellable.
    assert!(s.defer_schedule(m2.id, 4, t(40_000)).await.expect("defer"));
    assert!(!s.defer_schedule(m2.id, 4, t(40_000)).await.expect("gone"));
    assert!(s
        .claim_due(claim(5, 39_999, 30_000), 10)
        .await
        .expect("claim")
        .is_empty());
    let got = s
        .claim_due(claim(6, 40_000, 30_000), 10)
        .await
        .expect("claim");
    assert_eq!(got, vec![m2.clone()]);
    assert!(s.defer_schedule(m2.id, 6, t(90_000)).await.expect("defer"));
    assert!(s
        .cancel_schedule(a, m2.id, t(41_000))
        .await
        .expect("cancel"));
    assert!(!s.finish_schedule(m2.id, 6).await.expect("cancelled"));

    // m3 is held by claim 4 until 62 500; cancel after the lease ended succeeds.
    assert!(!s.cancel_schedule(a, m3.id, t(62_499)).await.expect("held"));
    assert!(s.cancel_schedule(a, m3.id, t(62_500)).await.expect("free"));
    assert_eq!(s.schedules_of(a, 0, 10).await.expect("list").1, 0);
}

pub(crate) async fn schedule_concurrent_claims_take_each_row_once(s: Arc<dyn Store>) {
    let a = owner(&s, 11_111_111, b"idx-a").await;
    let mut ids = HashSet::new();
    for i in 0..40 {
        let m = sched(a, 1, i, None);
        ids.insert(m.id);
        create(&s, &m).await;
    }
    let mut tasks = Vec::new();
    for token in 1..=8u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_due(claim(token, 1_000, 60_000), 3)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                for m in got {
                    assert!(s.finish_schedule(m.id, token).await.expect("finish"));
                    mine.push(m.id);
                }
            }
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.expect("task"));
    }
    let unique: HashSet<ScheduleId> = seen.iter().copied().collect();
    assert_eq!(seen.len(), 40, "every row claimed exactly once");
    assert_eq!(unique, ids);
}

pub(crate) async fn erase_removes_schedules(s: Arc<dyn Store>) {
    let a = owner(&s, 11_111_111, b"idx-a").await;
    let b = owner(&s, 33_333_333, b"idx-b").await;
    create(&s, &sched(a, 1, 1_000, Some("x"))).await;
    create(&s, &sched(a, 2, 2_000, None)).await;
    let keep = sched(b, 3, 1_500, None);
    create(&s, &keep).await;
    assert!(s.erase_user(a).await.expect("erase").is_some());
    assert_eq!(s.schedules_of(a, 0, 10).await.expect("a"), (vec![], 0));
    assert_eq!(s.schedules_of(b, 0, 10).await.expect("b"), (vec![keep], 1));
    let got = s
        .claim_due(claim(1, 10_000, 30_000), 10)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "only the other user's row is left");
    assert_eq!(
        s.create_schedule(&sched(a, 1, 5_000, None), 100)
            .await
            .expect("after erase"),
        ScheduleOutcome::NoUser
    );
}
