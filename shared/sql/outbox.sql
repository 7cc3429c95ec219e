-- name: insert_outbox_rows
-- All the rows of a unit of work in one statement, sent with its COMMIT: a JSON array
-- of {appointment_id, target, name, payload, deliver_at, ordering_key, trace}
-- (appointment_id and ordering_key may be null: an event is then ordered by its
-- appointment; trace too: no trace known). The function scan yields the array in
-- order, so ids follow it.
INSERT INTO outbox (appointment_id, target, name, payload, deliver_at, ordering_key, trace)
SELECT r.appointment_id, r.target, r.name, r.payload, r.deliver_at, r.ordering_key, r.trace
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r (appointment_id uuid, target outbox_target, name text, payload jsonb, deliver_at timestamptz,
           ordering_key text, trace text)
ON CONFLICT (target, name) DO NOTHING
RETURNING id

-- name: drop_pending_tasks
-- A cancelled or moved appointment's messages that never left are dropped with the change.
-- Rows a sweep is sending right now (locked) are left to it, so a change never waits on
-- Cloud Tasks: notify re-checks each message and skips what the change made untrue.
DELETE FROM outbox
WHERE id IN (
    SELECT id FROM outbox
    WHERE appointment_id = :appointment_id AND target = 'TASK' AND dispatched_at IS NULL
    FOR UPDATE SKIP LOCKED
)
RETURNING id

-- name: select_outbox_ids
-- The rows a change just committed, read without a lock: the request sends them with
-- no connection held, and the sweep leaves fresh untried rows alone (claim_pending).
-- An event waits while an older event of its appointment is still pending, so the
-- sweep publishes an appointment's events in order.
SELECT o.id, o.appointment_id, o.target, o.name, o.payload, o.deliver_at, o.attempts, o.trace,
       coalesce(o.ordering_key, CAST(o.appointment_id AS text)) AS ordering_key
FROM outbox AS o
WHERE o.id = ANY(CAST(:ids AS bigint[]))
  AND o.dispatched_at IS NULL
  AND ((o.target = 'TASK' AND CAST(:tasks AS boolean) AND o.deliver_at <= :horizon)
       OR (o.target = 'EVENT' AND CAST(:events AS boolean) AND NOT EXISTS (
           SELECT 1 FROM outbox AS older
           WHERE (older.appointment_id = o.appointment_id OR older.ordering_key = o.ordering_key)
             AND older.target = 'EVENT' AND older.dispatched_at IS NULL AND older.id < o.id)))
ORDER BY o.id

-- name: claim_pending
-- The sweep: whatever is left (failed dispatches, tasks that came within Cloud Tasks'
-- horizon), oldest first; concurrent sweeps take disjoint rows. Events are due when
-- written, so the horizon only holds back far-off tasks. A row not tried yet and
-- younger than :settled belongs to the request that wrote it (after_commit).
SELECT o.id, o.appointment_id, o.target, o.name, o.payload, o.deliver_at, o.attempts, o.trace,
       coalesce(o.ordering_key, CAST(o.appointment_id AS text)) AS ordering_key
FROM outbox AS o
WHERE o.dispatched_at IS NULL
  AND o.deliver_at <= :horizon
  AND (o.attempts > 0 OR o.created_at <= :settled)
  AND ((o.target = 'TASK' AND CAST(:tasks AS boolean))
       OR (o.target = 'EVENT' AND CAST(:events AS boolean) AND NOT EXISTS (
           SELECT 1 FROM outbox AS older
           WHERE (older.appointment_id = o.appointment_id OR older.ordering_key = o.ordering_key)
             AND older.target = 'EVENT' AND older.dispatched_at IS NULL AND older.id < o.id)))
ORDER BY o.deliver_at, o.id
LIMIT :limit
FOR UPDATE OF o SKIP LOCKED

-- name: mark_dispatched
UPDATE outbox
SET dispatched_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY(CAST(:ids AS bigint[])) AND dispatched_at IS NULL

-- name: mark_failed
UPDATE outbox
SET attempts = attempts + 1, last_error = :error
WHERE id = :id AND dispatched_at IS NULL

-- name: count_pending
-- What the sweep leaves behind, for its log line (a log-based metric reads it): rows not
-- sent, those already due (an event at once, a task once within :horizon of :now), and
-- how many seconds the oldest due one has waited since it became due (0 if none).
SELECT count(*) FILTER (WHERE target = 'TASK') AS tasks,
       count(*) FILTER (WHERE target = 'EVENT') AS events,
       count(*) FILTER (WHERE due_since <= CAST(:now AS timestamptz)) AS due,
       CAST(COALESCE(floor(extract(epoch FROM CAST(:now AS timestamptz)
           - min(due_since) FILTER (WHERE due_since <= CAST(:now AS timestamptz)))), 0) AS bigint) AS oldest_due_age_s
FROM (
    SELECT target,
           CASE WHEN target = 'TASK'
                THEN greatest(created_at, deliver_at - (CAST(:horizon AS timestamptz) - CAST(:now AS timestamptz)))
                ELSE created_at
           END AS due_since
    FROM outbox
    WHERE dispatched_at IS NULL
) AS pending

-- name: select_failed_messages
-- Messages that FAILED for good since :since and have not gone out since, whose task
-- row is still kept (shared/retention.py): what an operator may send again. A failure
-- already queued again (requeue_message) is not listed; if that try fails too, its own
-- FAILED row is.
SELECT *
FROM (
    SELECT DISTINCT ON (n.message_key)
           n.id AS notification_id, n.message_key, n.kind, n.appointment_id, n.error, n.sent_at AS failed_at
    FROM notifications AS n
    JOIN outbox AS o ON o.target = 'TASK' AND o.name = n.message_key
    WHERE n.status = 'FAILED' AND n.sent_at >= :since
      AND NOT EXISTS (SELECT FROM notifications AS s WHERE s.message_key = n.message_key AND s.status = 'SENT')
    ORDER BY n.message_key, n.id DESC
) AS newest
WHERE NOT EXISTS (
    SELECT FROM outbox AS again
    WHERE again.target = 'TASK' AND again.name = newest.message_key || '-resend-' || newest.notification_id
)
ORDER BY failed_at, notification_id

-- name: requeue_message
-- The same message in a task of a new name (Cloud Tasks refuses a name it saw in the
-- last days): notify still sends it at most once, and only while it is true. It keeps
-- its due time (a reminder queued again before it is due still waits for it) and its
-- trace (the email sent again joins the change's trace).
INSERT INTO outbox (appointment_id, target, name, payload, deliver_at, trace)
SELECT o.appointment_id, o.target, o.name || '-resend-' || CAST(:suffix AS text), o.payload, o.deliver_at, o.trace
FROM outbox AS o
WHERE o.target = 'TASK' AND o.name = :message_key
ON CONFLICT (target, name) DO NOTHING
RETURNING id

-- name: select_kept_message
-- A task message still kept in the outbox (shared/retention.py), by its row's name,
-- whether it has left for Cloud Tasks, and whether it has been sent (under the key in
-- its payload, which a row queued again keeps): what `clinic resend` may queue again.
SELECT o.name AS message_key, o.payload ->> 'kind' AS kind, o.appointment_id,
       o.dispatched_at IS NOT NULL AS dispatched,
       EXISTS (
           SELECT FROM notifications AS s WHERE s.message_key = o.payload ->> 'message_key' AND s.status = 'SENT'
       ) AS sent
FROM outbox AS o
WHERE o.target = 'TASK' AND o.name = :message_key
