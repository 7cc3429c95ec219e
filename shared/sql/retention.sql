-- What is kept only for a while. Each prune deletes one batch, oldest first, so a
-- backlog is worked off a batch per sweep without holding locks for long.

-- name: prune_idempotency_keys
-- A key answers retries for a day (claim_idempotency_key reclaims older ones).
DELETE FROM idempotency_keys
WHERE (caller_id, key) IN (
    SELECT caller_id, key
    FROM idempotency_keys
    WHERE created_at < now() - CAST(:ttl AS interval)
    ORDER BY created_at
    LIMIT :limit
)
RETURNING caller_id

-- name: prune_outbox
-- A dispatched row has done its work; notifications and audit_appointment are the
-- permanent record. Rows still waiting are never pruned, however old.
DELETE FROM outbox
WHERE id IN (
    SELECT id
    FROM outbox
    WHERE dispatched_at < now() - CAST(:kept AS interval)
    ORDER BY dispatched_at
    LIMIT :limit
)
RETURNING id
