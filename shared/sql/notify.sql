-- name: select_message_state
-- Before the relay is called: whether the message is still true, whether it went out
-- already, and to whom. Without a lock; deliver checks again under lock_message_context.
-- The patient_* contacts are what each channel (shared.channels) picks its address from.
SELECT a.slot_id, a.start_time, a.status, a.start_time <= now() AS started,
       patient.email AS patient_email, contact.phone AS patient_phone,
       EXISTS (SELECT FROM notifications AS n WHERE n.message_key = :message_key AND n.status = 'SENT') AS sent
FROM appointments AS a
JOIN users AS patient ON patient.id = a.patient_id
JOIN patients_profiles AS contact ON contact.user_id = a.patient_id
WHERE a.id = :appointment_id

-- name: lock_message_context
-- A cancel or move of this appointment waits until the message is sent (or not), so a
-- reminder never goes out for a change that already committed. NO KEY UPDATE rather
-- than SHARE: the appointment's other messages wait too, so each decides what the
-- patient has heard (select_told_notices) after the one before it has been sent.
-- (Foreign-key checks, KEY SHARE, are not held up.)
SELECT a.id, a.slot_id, a.doctor_id, a.start_time, a.end_time, a.status, a.start_time <= now() AS started,
       patient.email AS patient_email, contact.phone AS patient_phone, patient.name AS patient_name,
       doctor.name AS doctor_name, profile.timezone AS doctor_timezone
FROM appointments AS a
JOIN users AS patient ON patient.id = a.patient_id
JOIN patients_profiles AS contact ON contact.user_id = a.patient_id
JOIN users AS doctor ON doctor.id = a.doctor_id
JOIN doctors_profiles AS profile ON profile.user_id = a.doctor_id
WHERE a.id = :appointment_id
FOR NO KEY UPDATE OF a

-- name: select_told_notices
-- The confirmation and move notices this appointment's patient was sent on this channel:
-- what they know from it.
SELECT message_key, kind
FROM notifications
WHERE appointment_id = :appointment_id AND channel = :channel AND status = 'SENT'
  AND kind IN ('CONFIRMATION', 'RESCHEDULED')

-- name: select_calendar_context
-- The .ics SEQUENCE (moves and cancellations up to the change the message is about) and,
-- for a move, the time and doctor the patient last heard of: what the newest move notice
-- they were sent announced (:told_audit_id, its audit row's to_*), or else what they
-- booked (the first move's from_*). Not simply this move's from_*: a move notice skipped
-- because the appointment moved again at once named a time the patient never saw.
SELECT (SELECT count(*)
        FROM audit_appointment
        WHERE appointment_id = :appointment_id
          AND action IN ('RESCHEDULED', 'CANCELLED')
          AND (CAST(:audit_id AS bigint) IS NULL OR id <= :audit_id)) AS changes,
       CAST(CASE WHEN told.id IS NULL THEN first_move.details->>'from_start_time'
                 ELSE told.details->>'to_start_time' END AS timestamptz) AS was_start_time,
       CAST(CASE WHEN told.id IS NULL THEN first_move.details->>'from_end_time'
                 ELSE told.details->>'to_end_time' END AS timestamptz) AS was_end_time,
       was_doctor.id AS was_doctor_id, was_doctor.name AS was_doctor_name,
       was_profile.timezone AS was_doctor_timezone
FROM (SELECT) AS one
LEFT JOIN audit_appointment AS told
       ON told.id = :told_audit_id AND told.appointment_id = :appointment_id AND told.action = 'RESCHEDULED'
LEFT JOIN LATERAL (
    SELECT details
    FROM audit_appointment
    WHERE appointment_id = :appointment_id AND action = 'RESCHEDULED'
    ORDER BY id
    LIMIT 1
) AS first_move ON true
LEFT JOIN users AS was_doctor
       ON was_doctor.id = CAST(CASE WHEN told.id IS NULL THEN first_move.details->>'from_doctor_id'
                                    ELSE told.details->>'to_doctor_id' END AS uuid)
LEFT JOIN doctors_profiles AS was_profile ON was_profile.user_id = was_doctor.id

-- name: insert_notification
-- A second SENT row for one message_key is refused by notifications_one_sent_per_message;
-- a concurrent duplicate waits here until the first commits or rolls back.
INSERT INTO notifications (appointment_id, message_key, kind, channel, recipient, status, attempts, error)
VALUES (:appointment_id, :message_key, CAST(:kind AS notification_kind), :channel, :recipient,
        CAST(:status AS notification_status), :attempts, :error)
RETURNING id
