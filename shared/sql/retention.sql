-- What is kept only for a while. Each prune deletes one batch, oldest first, so a
-- backlog is worked off a batch per sweep without holding locks for long.

-- name: prune_idempotency_keys
-- A key answers retries for a day (claim_idempotency_key reclaims older ones). The age
-- is checked again on the row deleted: a request may have reclaimed the key since the
-- subquery saw it (the delete then waits for it, and must find it young again).
DELETE FROM idempotency_keys
WHERE (caller_id, key) IN (
    SELECT caller_id, key
    FROM idempotency_keys
    WHERE created_at < now() - CAST(:ttl AS interval)
    ORDER BY created_at
    LIMIT :limit
)
  AND created_at < now() - CAST(:ttl AS interval)
RETURNING caller_id

-- name: prune_outbox
-- A dispatched row has done its work once its message is due and past: notifications
-- and audit_appointment are the permanent record. A reminder goes to Cloud Tasks up to
-- 30 days before it is due, so the time kept counts from the later of the two (and
-- `clinic resend-failed` finds the row of a message that failed lately). Rows still
-- waiting are never pruned, however old.
DELETE FROM outbox
WHERE id IN (
    SELECT id
    FROM outbox
    WHERE dispatched_at < now() - CAST(:kept AS interval)
      AND deliver_at < now() - CAST(:kept AS interval)
    ORDER BY dispatched_at
    LIMIT :limit
)
RETURNING id
