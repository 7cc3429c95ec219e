-- name: select_message_state
-- Before the relay is called: whether the message is still true, whether it went out
-- already, and to whom. Without a lock; deliver checks again under lock_message_context.
SELECT a.slot_id, a.start_time, a.status, a.start_time <= now() AS started,
       patient.email AS patient_email,
       EXISTS (SELECT FROM notifications AS n WHERE n.message_key = :message_key AND n.status = 'SENT') AS sent
FROM appointments AS a
JOIN users AS patient ON patient.id = a.patient_id
WHERE a.id = :appointment_id

-- name: lock_message_context
-- FOR SHARE: a cancel or move of this appointment waits until the message is sent
-- (or not), so a reminder never goes out for a change that already committed.
SELECT a.id, a.slot_id, a.start_time, a.end_time, a.status, a.start_time <= now() AS started,
       patient.email AS patient_email, patient.name AS patient_name,
       doctor.name AS doctor_name, profile.timezone AS doctor_timezone
FROM appointments AS a
JOIN users AS patient ON patient.id = a.patient_id
JOIN users AS doctor ON doctor.id = a.doctor_id
JOIN doctors_profiles AS profile ON profile.user_id = a.doctor_id
WHERE a.id = :appointment_id
FOR SHARE OF a

-- name: select_calendar_context
-- The .ics SEQUENCE (moves and cancellations up to the change the message is about) and,
-- for a move, the time and doctor it moved from, as its audit row recorded them.
SELECT (SELECT count(*)
        FROM audit_appointment
        WHERE appointment_id = :appointment_id
          AND action IN ('RESCHEDULED', 'CANCELLED')
          AND (CAST(:audit_id AS bigint) IS NULL OR id <= :audit_id)) AS changes,
       moved.from_start_time, moved.from_end_time,
       from_doctor.name AS from_doctor_name, from_profile.timezone AS from_doctor_timezone
FROM (SELECT) AS one
LEFT JOIN LATERAL (
    SELECT CAST(details->>'from_start_time' AS timestamptz) AS from_start_time,
           CAST(details->>'from_end_time' AS timestamptz) AS from_end_time,
           CAST(details->>'from_doctor_id' AS uuid) AS from_doctor_id
    FROM audit_appointment
    WHERE id = :audit_id AND appointment_id = :appointment_id AND action = 'RESCHEDULED'
) AS moved ON true
LEFT JOIN users AS from_doctor ON from_doctor.id = moved.from_doctor_id
LEFT JOIN doctors_profiles AS from_profile ON from_profile.user_id = moved.from_doctor_id

-- name: insert_notification
-- A second SENT row for one message_key is refused by notifications_one_sent_per_message;
-- a concurrent duplicate waits here until the first commits or rolls back.
INSERT INTO notifications (appointment_id, message_key, kind, channel, recipient, status, attempts, error)
VALUES (:appointment_id, :message_key, CAST(:kind AS notification_kind), 'email', :recipient,
        CAST(:status AS notification_status), :attempts, :error)
RETURNING id
