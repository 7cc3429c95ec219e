-- name: claim_key
-- A concurrent request with the same key waits here until the first commits. A key
-- older than its time to live is the caller's to use afresh (shared/retention.py).
INSERT INTO idempotency_keys (caller_id, key, request_hash)
VALUES (:caller_id, :key, :request_hash)
ON CONFLICT (caller_id, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, status_code = NULL, response = NULL, created_at = now()
WHERE idempotency_keys.created_at < now() - CAST(:ttl AS interval)
RETURNING caller_id

-- name: select_key
SELECT request_hash, status_code, response
FROM idempotency_keys
WHERE caller_id = :caller_id AND key = :key

-- name: store_answer
-- The answer as sent (a JSON string holding the body's text): a replay is byte for byte the first.
UPDATE idempotency_keys
SET status_code = :status_code, response = CAST(:response AS jsonb)
WHERE caller_id = :caller_id AND key = :key
