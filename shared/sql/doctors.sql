-- name: list_doctors
SELECT u.id, u.name, d.specialty, d.timezone
FROM doctors_profiles AS d
JOIN users AS u ON u.id = d.user_id
WHERE (CAST(:specialty AS text) IS NULL OR lower(d.specialty) = lower(:specialty))
  AND (CAST(:after_name AS text) IS NULL OR (u.name, u.id) > (:after_name, CAST(:after_id AS uuid)))
ORDER BY u.name, u.id
LIMIT :limit

-- name: select_doctor
SELECT u.id, u.name, d.specialty, d.timezone
FROM doctors_profiles AS d
JOIN users AS u ON u.id = d.user_id
WHERE d.user_id = :id

-- name: insert_doctor_profile
INSERT INTO doctors_profiles (user_id, specialty, timezone)
VALUES (:user_id, :specialty, :timezone)
RETURNING user_id

-- name: insert_slots
-- One statement for the whole window; slots that already exist or overlap
-- an existing slot are skipped (ON CONFLICT covers the exclusion constraint too).
INSERT INTO slots (doctor_id, start_time, end_time)
SELECT :doctor_id, s.start_time, s.end_time
FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) AS s (start_time, end_time)
ON CONFLICT DO NOTHING
RETURNING id, doctor_id, start_time, end_time

-- name: list_free_slots
-- Index-only: slots_doctor_start_key (doctor_id, start_time) INCLUDE (id, end_time),
-- and the anti-join probes appointments_one_booked_per_slot.
SELECT s.id, s.doctor_id, s.start_time, s.end_time
FROM slots AS s
WHERE s.doctor_id = :doctor_id
  AND s.start_time >= greatest(CAST(:range_start AS timestamptz), now())
  AND s.start_time < :range_end
  AND (CAST(:after AS timestamptz) IS NULL OR s.start_time > :after)
  AND NOT EXISTS (
      SELECT 1 FROM appointments AS a
      WHERE a.slot_id = s.id AND a.status = 'BOOKED'
  )
  -- Held for a waiting patient (probes waitlist_offers_one_open_per_slot).
  AND NOT EXISTS (
      SELECT 1 FROM waitlist_offers AS o
      WHERE o.slot_id = s.id AND o.status = 'OFFERED'
  )
ORDER BY s.start_time
LIMIT :limit
