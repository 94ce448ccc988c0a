-- The delivery engine's queue (the logical schema of migrations/sqlite/0007_delivery.sql).
--
-- `status` holds a receipt (`msg_status` delivered/read) in the service's compact encoding: ids
-- and a time, nothing sealed (43 bytes today; room for a longer version). It is a column of its
-- own, not `event`, because the data-key rotation re-seals every `event` and a receipt is not
-- sealed. Each queue row is exactly one of: a message copy, an event, a receipt, a gap.
--
-- `queue_message` (message_id, session_id) goes. Acknowledgements no longer go by message id,
-- and the retention purge now finds the old messages that are still queued with one pass over
-- the queue per run (as the trim already makes), instead of one index probe per message. The
-- index cost every queued message copy a B-tree insert and a delete on the hot path, where
-- MariaDB is the bottleneck: about 8% of the server's CPU time per DM (199 against 217 us in
-- paired runs of the hot-path benchmark, `store::mysql::bench_tests`).

ALTER TABLE queue
    ADD COLUMN status VARBINARY(255) NULL AFTER event,
    DROP CONSTRAINT queue_one_kind,
    ADD CONSTRAINT queue_one_kind CHECK (
        (message_id IS NOT NULL) + (event IS NOT NULL) + (status IS NOT NULL)
            + (gap_from IS NOT NULL) = 1),
    DROP INDEX queue_message;
