-- name: select_slot
SELECT id, doctor_id, start_time, end_time, start_time <= now() AS started
FROM slots
WHERE id = :id

-- name: insert_appointment
INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time, reason)
VALUES (:slot_id, :patient_id, :doctor_id, :start_time, :end_time, :reason)
RETURNING id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
          created_at, updated_at

-- name: select_appointment
SELECT id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
       created_at, updated_at, start_time <= now() AS started
FROM appointments
WHERE id = :id

-- name: lock_appointment
SELECT id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
       created_at, updated_at, start_time <= now() AS started
FROM appointments
WHERE id = :id
FOR UPDATE

-- name: lock_slots
-- Movers lock both slots in primary-key order, so two moves never deadlock.
-- NO KEY UPDATE leaves bookings' foreign-key checks (KEY SHARE) unblocked.
SELECT id, doctor_id, start_time, end_time, start_time <= now() AS started
FROM slots
WHERE id = ANY(CAST(:ids AS uuid[]))
ORDER BY id
FOR NO KEY UPDATE

-- name: update_status
UPDATE appointments
SET status = CAST(:status AS appointment_status), updated_at = now()
WHERE id = :id
RETURNING id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
          created_at, updated_at

-- name: update_slot
UPDATE appointments
SET slot_id = :slot_id, doctor_id = :doctor_id, start_time = :start_time,
    end_time = :end_time, updated_at = now()
WHERE id = :id
RETURNING id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
          created_at, updated_at

-- name: list_appointments
SELECT id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
       created_at, updated_at
FROM appointments
WHERE (CAST(:patient_id AS uuid) IS NULL OR patient_id = :patient_id)
  AND (CAST(:doctor_id AS uuid) IS NULL OR doctor_id = :doctor_id)
  AND (CAST(:status AS appointment_status) IS NULL OR status = CAST(:status AS appointment_status))
  AND (CAST(:range_start AS timestamptz) IS NULL OR start_time >= :range_start)
  AND (CAST(:range_end AS timestamptz) IS NULL OR start_time < :range_end)
  AND (CAST(:after_start AS timestamptz) IS NULL
       OR (start_time, id) > (CAST(:after_start AS timestamptz), CAST(:after_id AS uuid)))
ORDER BY start_time, id
LIMIT :limit

-- name: insert_audit
INSERT INTO audit_appointment (appointment_id, action, from_status, to_status, actor_id, reason, details)
VALUES (:appointment_id, CAST(:action AS audit_action), CAST(:from_status AS appointment_status),
        CAST(:to_status AS appointment_status), :actor_id, :reason, CAST(:details AS jsonb))
RETURNING id, occurred_at

-- name: list_audit
SELECT id, appointment_id, action, from_status, to_status, actor_id, reason, details, occurred_at
FROM audit_appointment
WHERE appointment_id = :appointment_id
ORDER BY id

-- name: claim_idempotency_key
-- A concurrent request with the same key waits here until the first commits.
INSERT INTO idempotency_keys (caller_id, key, request_hash)
VALUES (:caller_id, :key, :request_hash)
ON CONFLICT (caller_id, key) DO NOTHING
RETURNING caller_id

-- name: select_idempotency_key
SELECT request_hash, status_code, response
FROM idempotency_keys
WHERE caller_id = :caller_id AND key = :key

-- name: store_idempotent_response
UPDATE idempotency_keys
SET status_code = :status_code, response = CAST(:response AS jsonb)
WHERE caller_id = :caller_id AND key = :key
