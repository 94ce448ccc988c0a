use super::*;

fn id(n: u128) -> MessageId {
    MessageId::from_u128(n)
}

/// A recipient copy of message `seq` with a frame of `bytes` bytes.
fn msg(seq: i64, bytes: usize) -> Ready {
    Ready {
        seq,
        frame: Bytes::from(vec![b'x'; bytes]),
        meta: EntryMeta {
            message: Some(id(seq as u128)),
            receipt: true,
        },
    }
}

fn event(seq: i64) -> Ready {
    Ready {
        seq,
        frame: Bytes::from_static(b"{}"),
        meta: EntryMeta::default(),
    }
}

/// The seqs of the frames released (frames are `msg`s: their length tells nothing, so the test
/// tracks seqs through `sent_upto` and the in-flight count instead).
fn frames(out: &[Out]) -> usize {
    out.iter().filter(|o| matches!(o, Out::Frame(_))).count()
}

fn sync_done(out: &[Out]) -> Option<(u64, i64)> {
    out.iter().find_map(|o| match o {
        Out::SyncDone { count, last_seq } => Some((*count, *last_seq)),
        Out::Frame(_) => None,
    })
}

/// Backlog of `n` entries read in one complete read.
fn synced_with_backlog(n: i64) -> Window {
    let mut w = Window::new(n);
    let req = w.read_request().expect("backlog read");
    let mut out = Vec::new();
    w.on_read(req, (1..=n).map(|s| msg(s, 10)).collect(), true, &mut out);
    assert_eq!(sync_done(&out), Some((n as u64, n)));
    // The first read after sync_done looks for entries appended meanwhile.
    let req = w.read_request().expect("catch-up read");
    assert_eq!(req.upto, None);
    w.on_read(req, Vec::new(), true, &mut out);
    assert!(w.read_request().is_none());
    w
}

#[test]
fn empty_queue_gives_sync_done_at_once() {
    let mut w = Window::new(0);
    let req = w.read_request().expect("read");
    assert_eq!(
        req,
        ReadRequest {
            after: 0,
            upto: Some(0),
            limit: MAX_FRAMES as u64,
            max_bytes: MAX_BYTES as u64
        }
    );
    let mut out = Vec::new();
    w.on_read(req, Vec::new(), true, &mut out);
    assert_eq!(
        out,
        vec![Out::SyncDone {
            count: 0,
            last_seq: 0
        }]
    );
    assert!(w.synced());
}

#[test]
fn backlog_is_windowed_by_frames_then_sync_done() {
    let h = MAX_FRAMES as i64 + 10;
    let mut w = Window::new(h);
    let req = w.read_request().expect("read");
    let mut out = Vec::new();
    // A full window's worth, not complete.
    w.on_read(
        req,
        (1..=MAX_FRAMES as i64).map(|s| msg(s, 10)).collect(),
        false,
        &mut out,
    );
    assert_eq!(frames(&out), MAX_FRAMES);
    assert_eq!(sync_done(&out), None);
    assert!(w.read_request().is_none(), "window full");
    // Live frames before sync_done are left to the store.
    w.on_live(msg(h + 1, 10), &mut out);
    assert_eq!(frames(&out), MAX_FRAMES);
    // Acks free room; the rest of the backlog follows, then sync_done.
    assert!(w.ack(AckSelector::UpTo(10), Instant::now()));
    let req = w.read_request().expect("rest");
    assert_eq!(
        (req.after, req.upto, req.limit),
        (MAX_FRAMES as i64, Some(h), 10)
    );
    let mut out = Vec::new();
    w.on_read(
        req,
        ((MAX_FRAMES as i64 + 1)..=h).map(|s| msg(s, 10)).collect(),
        true,
        &mut out,
    );
    assert_eq!(frames(&out), 10);
    assert_eq!(sync_done(&out), Some((h as u64, h)));
    // Then the entries appended after admission come from the store (the live one was
    // dropped), once there is room.
    assert!(w.read_request().is_none(), "window full again");
    assert!(w.ack(AckSelector::UpTo(h), Instant::now()));
    let req = w.read_request().expect("catch-up");
    assert_eq!((req.after, req.upto), (h, None));
}

#[test]
fn byte_bound_holds_a_large_entry_until_room() {
    let mut w = Window::new(3);
    let req = w.read_request().expect("read");
    let mut out = Vec::new();
    let big = MAX_BYTES / 2 + 1;
    w.on_read(
        req,
        vec![msg(1, big), msg(2, big), msg(3, 10)],
        true,
        &mut out,
    );
    // The first fits (nothing in flight), the second would pass 4 MiB: held, no sync_done yet.
    assert_eq!(frames(&out), 1);
    assert_eq!(sync_done(&out), None);
    assert!(w.read_request().is_none(), "an entry waits for room");
    let mut out = Vec::new();
    w.release(&mut out);
    assert!(out.is_empty());
    assert!(w.ack(AckSelector::Seq(1), Instant::now()));
    w.release(&mut out);
    assert_eq!(frames(&out), 1);
    // The third is read again.
    let req = w.read_request().expect("read on");
    assert_eq!(req.after, 2);
    w.on_read(req, vec![msg(3, 10)], true, &mut out);
    assert_eq!(sync_done(&out), Some((3, 3)));
}

#[test]
fn a_frame_larger_than_the_byte_window_goes_out_alone() {
    let mut w = Window::new(2);
    let req = w.read_request().expect("read");
    let mut out = Vec::new();
    w.on_read(
        req,
        vec![msg(1, MAX_BYTES + 100), msg(2, 10)],
        true,
        &mut out,
    );
    assert_eq!(frames(&out), 1);
    assert_eq!(w.in_flight(), 1);
    assert!(w.ack(AckSelector::UpTo(1), Instant::now()));
    let mut out = Vec::new();
    w.release(&mut out);
    assert_eq!(frames(&out), 1);
}

#[test]
fn live_frames_in_order_go_out_directly() {
    let mut w = synced_with_backlog(2);
    let mut out = Vec::new();
    w.on_live(msg(3, 10), &mut out);
    w.on_live(msg(4, 10), &mut out);
    assert_eq!(frames(&out), 2);
    // A duplicate (already sent) is ignored.
    w.on_live(msg(4, 10), &mut out);
    assert_eq!(frames(&out), 2);
    assert!(w.read_request().is_none());
}

#[test]
fn a_live_gap_falls_back_to_the_store() {
    let mut w = synced_with_backlog(2);
    let mut out = Vec::new();
    // Seq 3 was lost on the way (another node's note): 4 is not taken live.
    w.on_live(msg(4, 10), &mut out);
    assert!(out.is_empty());
    let req = w.read_request().expect("dirty read");
    assert_eq!((req.after, req.upto), (2, None));
    w.on_read(req, vec![msg(3, 10), msg(4, 10)], true, &mut out);
    assert_eq!(frames(&out), 2);
    assert!(w.read_request().is_none());
    w.on_live(msg(5, 10), &mut out);
    assert_eq!(frames(&out), 3);
}

#[test]
fn a_full_window_holds_live_frames_then_releases_them_in_order() {
    let mut w = synced_with_backlog(0);
    let mut out = Vec::new();
    for s in 1..=(MAX_FRAMES as i64 + 3) {
        w.on_live(msg(s, 10), &mut out);
    }
    assert_eq!(frames(&out), MAX_FRAMES);
    assert!(w.read_request().is_none(), "held frames need no store read");
    assert!(w.ack(AckSelector::UpTo(2), Instant::now()));
    let mut out = Vec::new();
    w.release(&mut out);
    assert_eq!(frames(&out), 2);
    assert!(w.ack(AckSelector::UpTo(10), Instant::now()));
    let mut out = Vec::new();
    w.release(&mut out);
    assert_eq!(frames(&out), 1, "only the one still held");
}

#[test]
fn too_many_held_frames_are_dropped_for_the_store() {
    let mut w = synced_with_backlog(0);
    let mut out = Vec::new();
    for s in 1..=(MAX_FRAMES + MAX_HELD + 1) as i64 {
        w.on_live(msg(s, 10), &mut out);
    }
    assert_eq!(frames(&out), MAX_FRAMES);
    // Over the hold limit: the window reads the store once room comes.
    assert!(w.read_request().is_none(), "window full");
    assert!(w.ack(AckSelector::UpTo(MAX_FRAMES as i64), Instant::now()));
    let req = w.read_request().expect("read after the drop");
    assert_eq!((req.after, req.upto), (MAX_FRAMES as i64, None));
}

#[test]
fn acks_remove_only_what_was_sent_and_gather_receipts() {
    let mut w = synced_with_backlog(0);
    let mut out = Vec::new();
    for s in 1..=5 {
        w.on_live(msg(s, 10), &mut out);
    }
    w.on_live(event(6), &mut out);
    let now = Instant::now();
    // Beyond the highest seq sent: counts as 6; nothing unsent is acked.
    assert!(!w.ack(AckSelector::Seq(9), now));
    assert!(w.ack(AckSelector::Message(id(4)), now));
    assert!(!w.ack(AckSelector::Message(id(4)), now), "already removed");
    assert!(w.ack(AckSelector::UpTo(2), now));
    assert!(
        !w.ack(AckSelector::UpTo(1), now),
        "removes nothing: no write"
    );
    let (acks, receipts) = w.take_acks().expect("acks");
    assert_eq!(
        acks,
        Acks {
            upto: 2,
            seqs: vec![4],
            ..Acks::default()
        }
    );
    let seqs: Vec<i64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![4, 1, 2]);
    assert!(w.take_acks().is_none());
    assert!(w.ack(AckSelector::UpTo(100), now));
    let (acks, receipts) = w.take_acks().expect("acks");
    assert_eq!(acks.upto, 6);
    assert!(acks.seqs.is_empty());
    // The event makes no receipt.
    assert_eq!(receipts.len(), 2);
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn self_copies_ack_by_message_id_without_receipt() {
    let mut w = synced_with_backlog(0);
    let mut out = Vec::new();
    let mut copy = msg(1, 10);
    copy.meta.receipt = false;
    w.on_live(copy, &mut out);
    assert!(w.ack(AckSelector::Message(id(1)), Instant::now()));
    let (acks, receipts) = w.take_acks().expect("acks");
    assert_eq!(acks.seqs, vec![1]);
    assert!(receipts.is_empty());
}

#[tokio::test(start_paused = true)]
async fn acks_are_due_after_the_delay_or_a_full_batch() {
    let mut w = synced_with_backlog(0);
    let mut out = Vec::new();
    for s in 1..=MAX_FRAMES as i64 {
        w.on_live(msg(s, 10), &mut out);
    }
    assert!(w.ack_deadline().is_none());
    assert!(w.ack(AckSelector::Seq(1), Instant::now()));
    let deadline = w.ack_deadline().expect("deadline");
    assert!(!w.acks_due(Instant::now()));
    tokio::time::advance(ACK_DELAY / 2).await;
    assert!(!w.acks_due(Instant::now()));
    // Another ack does not move the deadline.
    assert!(w.ack(AckSelector::Seq(2), Instant::now()));
    assert_eq!(w.ack_deadline(), Some(deadline));
    tokio::time::advance(ACK_DELAY).await;
    assert!(w.acks_due(Instant::now()));
    assert!(w.take_acks().is_some());
    assert!(w.ack_deadline().is_none());
    // A full batch is due at once.
    // Seqs 1 and 2 went above: up to ACK_BATCH + 1 is one entry short of a batch.
    assert!(w.ack(AckSelector::UpTo(ACK_BATCH as i64 + 1), Instant::now()));
    assert!(!w.acks_due(Instant::now()), "one short of a batch");
    assert!(w.ack(AckSelector::Seq(ACK_BATCH as i64 + 2), Instant::now()));
    assert!(w.acks_due(Instant::now()));
}

#[test]
fn a_full_window_of_dropped_entries_is_reconciled_once_per_move() {
    let mut w = synced_with_backlog(0);
    let mut out = Vec::new();
    for s in 1..=(MAX_FRAMES as i64 + 2) {
        w.on_live(msg(s, 10), &mut out);
    }
    assert_eq!(w.in_flight(), MAX_FRAMES);
    assert_eq!(w.reconcile_request(), Some((0, MAX_FRAMES as i64)));
    // The sweep kept only the last two in-flight entries.
    let n = MAX_FRAMES as i64;
    w.on_reconcile(&[n - 1, n]);
    assert_eq!(w.in_flight(), 2);
    assert!(w.reconcile_request().is_none(), "checked once");
    // The dropped entries may have left a gap: the store is read before live frames again.
    let req = w.read_request().expect("dirty read");
    assert_eq!((req.after, req.upto), (n, None));
    // Nothing dropped: nothing changes, and no second check until the window moves.
    let mut w = synced_with_backlog(0);
    for s in 1..=n {
        w.on_live(msg(s, 10), &mut out);
    }
    let all: Vec<i64> = (1..=n).collect();
    w.on_reconcile(&all);
    assert_eq!(w.in_flight(), MAX_FRAMES);
    assert!(w.reconcile_request().is_none());
    assert!(w.ack(AckSelector::Seq(1), Instant::now()));
    assert!(
        w.reconcile_request().is_none(),
        "room again: nothing to check"
    );
    w.on_live(msg(n + 1, 10), &mut out);
    assert_eq!(
        w.reconcile_request(),
        Some((1, n + 1)),
        "full again after a move"
    );
}

/// A loss suspected from outside (another node's notes went missing, a node died) makes a synced,
/// clean window read the store once from where it stands; before `sync_done` it changes nothing
/// (the backlog read covers it).
#[test]
fn a_suspected_loss_reads_the_store_once() {
    let mut fresh = Window::new(3);
    let before = fresh.read_request();
    fresh.suspect_loss();
    assert_eq!(fresh.read_request(), before);

    let mut w = synced_with_backlog(2);
    assert_eq!(w.read_request(), None, "clean: live frames are trusted");
    w.suspect_loss();
    let req = w.read_request().expect("a read after the suspected loss");
    assert_eq!((req.after, req.upto), (2, None));
    let mut out = Vec::new();
    w.on_read(req, vec![msg(3, 10)], true, &mut out);
    assert_eq!(frames(&out), 1, "the lost entry");
    assert_eq!(w.read_request(), None, "clean again");
}
