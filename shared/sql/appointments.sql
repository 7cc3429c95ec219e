-- name: book_appointment
-- The booking after authorisation, in one statement (one round trip): the caller's user
-- row and (booking for themself) their empty profile on first use, the patient's turn,
-- the caps, the appointment on the slot if it has not started, and its audit row. One
-- row back, always: the appointment's columns, or null and `refusal` naming the check
-- that refused, in this order: account_role (the caller's account has another role,
-- `account_role`), no_account (the email is another account's), too_many_changes
-- (:limited_actor at :max_changes this hour), no_slot, slot_started, slot_held (for the
-- waitlist), too_many_upcoming (the patient at :max_upcoming); with the counts taken in
-- the patient's turn. Races are decided as ever by appointments_one_booked_per_slot and
-- appointments_patient_no_overlap, whose violations the caller maps by name. The user
-- row is inserted as upsert_user does (every unique index an arbiter, so concurrent
-- first requests wait, not fail); an email of another account then leaves no user,
-- which the profile's or the audit row's foreign key to users reports.
WITH caller AS (
    INSERT INTO users (id, email, name, role)
    VALUES (:caller_id, :email, :name, CAST(:role AS user_role))
    ON CONFLICT DO NOTHING
    RETURNING id
), same_role AS (
    -- An existing account whose stored role is not the token's books nothing (the
    -- users row is the source of truth); a new one is created with the token's role.
    SELECT NOT EXISTS (
        SELECT FROM users WHERE id = :caller_id AND role <> CAST(:role AS user_role)
    ) AS ok
), profile AS (
    INSERT INTO patients_profiles (user_id)
    SELECT CAST(:patient_id AS uuid) FROM same_role WHERE CAST(:own_profile AS boolean) AND ok
    ON CONFLICT (user_id) DO NOTHING
    RETURNING user_id
), patient_turn AS (
    -- One booking or move of a patient at a time (migrations 0006, 0008), and their
    -- upcoming appointments and the actor's recent changes counted once it is their turn.
    SELECT t.upcoming, t.recent_changes
    FROM take_patients_turn(CAST(:patient_id AS uuid), CAST(:limited_actor AS uuid)) AS t
), slot_state AS (
    -- The subqueries run first (a one-time filter), so the caller's rows are written
    -- and the patient's turn taken before the slot is locked: an email that belongs to
    -- another account is reported ahead of a taken slot, and the lock order stays turn,
    -- then slot. FOR SHARE waits for a transaction freeing the slot (its hold, decision
    -- 0013, is an UPDATE of this row) and reads what it committed.
    SELECT id, doctor_id, start_time, end_time, start_time <= now() AS started,
           held_offer_id IS NOT NULL AS held
    FROM slots
    WHERE id = :slot_id
      AND (SELECT count(*) FROM caller) + (SELECT count(*) FROM profile) >= 0
      AND (SELECT upcoming FROM patient_turn) >= 0
    FOR SHARE
), slot AS (
    -- :max_upcoming, :max_changes NULL: no cap (an admin booking).
    SELECT id, doctor_id, start_time, end_time
    FROM slot_state
    WHERE NOT started AND NOT held
      AND (SELECT upcoming FROM patient_turn) < coalesce(CAST(:max_upcoming AS bigint), 9223372036854775807)
      AND (SELECT recent_changes FROM patient_turn) < coalesce(CAST(:max_changes AS bigint), 9223372036854775807)
      AND (SELECT ok FROM same_role)
), booked AS (
    INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time, reason)
    SELECT id, CAST(:patient_id AS uuid), doctor_id, start_time, end_time, CAST(:reason AS text)
    FROM slot
    RETURNING id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
              created_at, updated_at
), audit AS (
    INSERT INTO audit_appointment (appointment_id, action, from_status, to_status, actor_id, reason, details)
    SELECT id, CAST('BOOKED' AS audit_action), NULL, status, CAST(:caller_id AS uuid), CAST(:reason AS text),
           jsonb_build_object('slot_id', slot_id)
    FROM booked
    RETURNING id, occurred_at
)
SELECT CASE
           WHEN b.id IS NOT NULL THEN NULL
           WHEN NOT (SELECT ok FROM same_role) THEN 'account_role'
           WHEN NOT EXISTS (SELECT FROM caller) AND NOT EXISTS (SELECT FROM users WHERE id = :caller_id)
               THEN 'no_account'
           WHEN t.recent_changes >= coalesce(CAST(:max_changes AS bigint), 9223372036854775807)
               THEN 'too_many_changes'
           WHEN s.id IS NULL THEN 'no_slot'
           WHEN s.started THEN 'slot_started'
           WHEN s.held THEN 'slot_held'
           WHEN t.upcoming >= coalesce(CAST(:max_upcoming AS bigint), 9223372036854775807)
               THEN 'too_many_upcoming'
           ELSE 'no_slot'
       END AS refusal,
       CASE WHEN b.id IS NULL THEN (SELECT CAST(role AS text) FROM users WHERE id = :caller_id) END AS account_role,
       t.upcoming, t.recent_changes, b.id, b.slot_id, b.doctor_id, b.patient_id, b.start_time, b.end_time, b.status,
       b.reason, b.created_at, b.updated_at, a.id AS audit_id, a.occurred_at AS audit_occurred_at
FROM patient_turn AS t
LEFT JOIN slot_state AS s ON true
LEFT JOIN (booked AS b CROSS JOIN audit AS a) ON true

-- name: select_appointment
SELECT id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
       created_at, updated_at, start_time <= now() AS started
FROM appointments
WHERE id = :id

-- name: take_patients_turn
-- The patient's turn (migrations 0006, 0008, as book_appointment takes it) before a
-- move locks any row: a move and a booking of one patient,
-- checked against each other by appointments_patient_no_overlap, would otherwise each
-- wait for the other's uncommitted row. Taken first, so the lock order stays turn,
-- appointment, slots. Counts :limited_actor's changes of the last hour (none if NULL).
SELECT t.upcoming, t.recent_changes
FROM appointments AS a
CROSS JOIN LATERAL take_patients_turn(a.patient_id, CAST(:limited_actor AS uuid)) AS t
WHERE a.id = :id

-- name: seconds_until_changes_fall_below
-- When :actor's changes of the last hour fall below :max_changes again: once the one
-- :skip (their count less the limit) places after the oldest is an hour old.
SELECT CAST(ceil(extract(epoch FROM occurred_at + interval '1 hour' - now())) AS bigint) AS wait
FROM audit_appointment
WHERE actor_id = :actor AND occurred_at > now() - interval '1 hour'
ORDER BY occurred_at
OFFSET :skip
LIMIT 1

-- name: lock_appointment
SELECT id, slot_id, doctor_id, patient_id, start_time, end_time, status, reason,
       created_at, updated_at, start_time <= now() AS started
FROM appointments
WHERE id = :id
FOR UPDATE

-- name: lock_slots
-- Movers lock both slots in primary-key order, so two moves never deadlock.
-- NO KEY UPDATE leaves bookings' foreign-key checks (KEY SHARE) unblocked.
SELECT id, doctor_id, start_time, end_time, start_time <= now() AS started, held_offer_id
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
