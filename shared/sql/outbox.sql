-- name: insert_outbox
INSERT INTO outbox (appointment_id, target, name, payload, deliver_at)
VALUES (:appointment_id, CAST(:target AS outbox_target), :name, CAST(:payload AS jsonb), :deliver_at)
ON CONFLICT (target, name) DO NOTHING
RETURNING id

-- name: drop_pending_tasks
-- A cancelled or moved appointment's messages that never left are dropped with the change.
DELETE FROM outbox
WHERE appointment_id = :appointment_id AND target = 'TASK' AND dispatched_at IS NULL
RETURNING id
