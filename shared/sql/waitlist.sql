-- name: select_doctor_zone
SELECT user_id AS id, timezone FROM doctors_profiles WHERE user_id = :doctor_id

-- name: count_active_entries
-- After the patient's waitlist turn, so two joins at once cannot both pass the cap.
SELECT count(*) AS active
FROM waitlist_entries AS e
WHERE e.patient_id = :patient_id AND e.status IN ('WAITING', 'OFFERED') AND e.range_end > now()
  AND NOT EXISTS (
      -- The entry ended when its patient booked that doctor in the range.
      SELECT 1 FROM appointments AS b
      WHERE b.patient_id = e.patient_id AND b.doctor_id = e.doctor_id AND b.status = 'BOOKED'
        AND b.start_time >= e.range_start AND b.start_time < e.range_end)

-- name: select_booked_in_range
-- A join is refused when the entry would be over at once (as count_active_entries and
-- the hold have it: the patient holds an appointment with that doctor in the range).
SELECT start_time FROM appointments
WHERE patient_id = :patient_id AND doctor_id = :doctor_id AND status = 'BOOKED'
  AND start_time >= :range_start AND start_time < :range_end
ORDER BY start_time
LIMIT 1

-- name: take_waitlist_turn
SELECT pg_advisory_xact_lock(2, hashtext(CAST(CAST(:patient_id AS uuid) AS text))) AS taken

-- name: insert_entry
WITH entry AS (
    INSERT INTO waitlist_entries (patient_id, doctor_id, range_start, range_end, day_start, day_end, created_by)
    VALUES (:patient_id, :doctor_id, :range_start, :range_end, CAST(:day_start AS time), CAST(:day_end AS time), :actor_id)
    RETURNING id, patient_id, doctor_id, range_start, range_end, day_start, day_end, status, created_at
), event AS (
    INSERT INTO waitlist_events (entry_id, action, actor_id, details)
    SELECT id, 'JOINED', CAST(:actor_id AS uuid), '{}' FROM entry
    RETURNING id, occurred_at
)
SELECT e.id, e.patient_id, e.doctor_id, e.range_start, e.range_end, e.day_start, e.day_end, e.status,
       e.created_at, ev.id AS event_id, ev.occurred_at
FROM entry AS e CROSS JOIN event AS ev

-- name: list_entries
-- With each entry's open offer (the hold), if any.
SELECT e.id, e.patient_id, e.doctor_id, e.range_start, e.range_end, e.day_start, e.day_end,
       e.status, e.created_at, e.range_end <= now() AS past,
       EXISTS (
           SELECT 1 FROM appointments AS b
           WHERE b.patient_id = e.patient_id AND b.doctor_id = e.doctor_id AND b.status = 'BOOKED'
             AND b.start_time >= e.range_start AND b.start_time < e.range_end
       ) AS booked_in_range,
       o.id AS offer_id, o.slot_id AS offer_slot_id, o.expires_at AS offer_expires_at,
       s.start_time AS offer_start_time, s.end_time AS offer_end_time
FROM waitlist_entries AS e
LEFT JOIN waitlist_offers AS o ON o.entry_id = e.id AND o.status = 'OFFERED'
LEFT JOIN slots AS s ON s.id = o.slot_id
WHERE (CAST(:patient_id AS uuid) IS NULL OR e.patient_id = :patient_id)
  AND (CAST(:doctor_id AS uuid) IS NULL OR e.doctor_id = :doctor_id)
  AND (CAST(:active AS boolean) IS NOT TRUE OR (e.status IN ('WAITING', 'OFFERED') AND e.range_end > now()))
  AND (CAST(:after_created AS timestamptz) IS NULL
       OR (e.created_at, e.id) > (CAST(:after_created AS timestamptz), CAST(:after_id AS uuid)))
ORDER BY e.created_at, e.id
LIMIT :limit

-- name: lock_entry
SELECT e.id, e.patient_id, e.doctor_id, e.range_start, e.range_end, e.day_start, e.day_end,
       e.status, e.created_at, e.range_end <= now() AS past
FROM waitlist_entries AS e
WHERE e.id = :id
FOR UPDATE

-- name: select_entry
SELECT id, patient_id, doctor_id, status FROM waitlist_entries WHERE id = :id

-- name: select_entry_offered
SELECT 1 AS offered FROM waitlist_entries WHERE id = :id AND status = 'OFFERED'

-- name: select_open_offer
-- At most one: an entry holds one offer at a time.
SELECT id FROM waitlist_offers WHERE entry_id = :entry_id AND status = 'OFFERED'

-- name: select_accepted_appointment
SELECT appointment_id FROM waitlist_offers
WHERE entry_id = :entry_id AND status = 'ACCEPTED'
  AND (CAST(:offer_id AS uuid) IS NULL OR id = :offer_id)
ORDER BY ended_at DESC
LIMIT 1

-- name: update_entry_status
UPDATE waitlist_entries
SET status = CAST(:status AS waitlist_entry_status), updated_at = now()
WHERE id = :id
RETURNING id, patient_id, doctor_id, range_start, range_end, day_start, day_end, status, created_at

-- name: insert_event
INSERT INTO waitlist_events (entry_id, offer_id, slot_id, action, actor_id, details)
VALUES (:entry_id, :offer_id, :slot_id, CAST(:action AS waitlist_action), :actor_id, CAST(:details AS jsonb))
RETURNING id, occurred_at

-- name: lock_slot_for_change
-- Every transaction that frees a slot locks it first, before it changes the appointment
-- on it (decision 0013): a booking holding FOR SHARE then fails on the still-BOOKED row
-- instead of the two waiting for each other.
SELECT id, doctor_id, start_time, end_time, held_offer_id
FROM slots
WHERE id = :id
FOR NO KEY UPDATE

-- name: hold_slot_for_next_entry
-- The hold, in one statement: the earliest-joined waiting entry that matches the free
-- slot (decision 0013) gets an offer, the slot row names it (the UPDATE a booking's
-- FOR SHARE waits for), the entry becomes OFFERED, the trail says so. The entry is
-- locked, and re-checked after a wait (a concurrent hold of another slot may have
-- offered it one: then the next entry). No row: no match, the slot stays free.
WITH slot AS (
    SELECT s.id, s.doctor_id, s.start_time, s.end_time, d.timezone
    FROM slots AS s
    JOIN doctors_profiles AS d ON d.user_id = s.doctor_id
    WHERE s.id = :slot_id
      AND s.held_offer_id IS NULL
      AND s.start_time > now() + make_interval(mins => CAST(:lead_minutes AS integer))
      AND NOT EXISTS (SELECT 1 FROM appointments AS a WHERE a.slot_id = s.id AND a.status = 'BOOKED')
), entry AS (
    SELECT e.id, e.patient_id
    FROM waitlist_entries AS e
    WHERE e.doctor_id = (SELECT doctor_id FROM slot)
      AND e.status = 'WAITING'
      AND e.range_start <= (SELECT start_time FROM slot)
      AND e.range_end > (SELECT start_time FROM slot)
      AND (e.day_start IS NULL OR (
          CAST((SELECT start_time AT TIME ZONE timezone FROM slot) AS time) >= e.day_start
          AND CAST((SELECT start_time AT TIME ZONE timezone FROM slot) AS time) < e.day_end))
      AND NOT EXISTS (
          SELECT 1 FROM waitlist_offers AS o WHERE o.entry_id = e.id AND o.slot_id = :slot_id)
      AND NOT EXISTS (
          SELECT 1 FROM appointments AS a
          WHERE a.patient_id = e.patient_id AND a.status = 'BOOKED'
            AND tstzrange(a.start_time, a.end_time) && (SELECT tstzrange(start_time, end_time) FROM slot))
      AND NOT EXISTS (
          -- The entry ended when its patient booked that doctor in the range.
          SELECT 1 FROM appointments AS b
          WHERE b.patient_id = e.patient_id AND b.doctor_id = e.doctor_id AND b.status = 'BOOKED'
            AND b.start_time >= e.range_start AND b.start_time < e.range_end)
    ORDER BY e.created_at, e.id
    LIMIT 1
    FOR UPDATE OF e
), offer AS (
    INSERT INTO waitlist_offers (entry_id, slot_id, expires_at)
    SELECT entry.id, slot.id, now() + make_interval(secs => CAST(:hold_seconds AS double precision))
    FROM entry CROSS JOIN slot
    RETURNING id, entry_id, slot_id, status, offered_at, expires_at
), held AS (
    UPDATE slots SET held_offer_id = offer.id
    FROM offer
    WHERE slots.id = offer.slot_id
    RETURNING slots.id
), offered_entry AS (
    UPDATE waitlist_entries SET status = 'OFFERED', updated_at = now()
    FROM offer
    WHERE waitlist_entries.id = offer.entry_id
    RETURNING waitlist_entries.id
), event AS (
    INSERT INTO waitlist_events (entry_id, offer_id, slot_id, action, actor_id, details)
    SELECT offer.entry_id, offer.id, offer.slot_id, 'OFFERED', CAST(:actor_id AS uuid),
           jsonb_build_object('expires_at', offer.expires_at, 'freed_by', CAST(:freed_by AS text))
    FROM offer
    RETURNING id, occurred_at
)
SELECT o.id, o.entry_id, o.slot_id, o.status, o.offered_at, o.expires_at, en.patient_id,
       s.doctor_id, s.start_time, s.end_time, ev.id AS event_id, ev.occurred_at,
       (SELECT count(*) FROM held) + (SELECT count(*) FROM offered_entry) AS written
FROM offer AS o
CROSS JOIN entry AS en
CROSS JOIN slot AS s
CROSS JOIN event AS ev

-- name: lock_offer
-- Accept, decline and expiry lock the offer first, then the slot: the first of them
-- ends it; the others find it no longer OFFERED.
SELECT o.id, o.entry_id, o.slot_id, o.status, o.offered_at, o.expires_at, o.appointment_id,
       o.expires_at <= now() AS expired, e.patient_id, e.doctor_id,
       s.start_time, s.end_time
FROM waitlist_offers AS o
JOIN waitlist_entries AS e ON e.id = o.entry_id
JOIN slots AS s ON s.id = o.slot_id
WHERE o.id = :id
FOR UPDATE OF o

-- name: release_hold
-- The slot is locked by the caller; the hold is cleared only if it is still this offer's.
UPDATE slots SET held_offer_id = NULL
WHERE id = :slot_id AND held_offer_id = :offer_id
RETURNING id

-- name: end_offer
UPDATE waitlist_offers
SET status = CAST(:status AS waitlist_offer_status), ended_at = now(), appointment_id = :appointment_id
WHERE id = :id AND status = 'OFFERED'
RETURNING id, entry_id, slot_id, status, offered_at, expires_at, ended_at, appointment_id

-- name: list_expired_offers
-- The sweep's safety net: open offers past their time (the expiry task was lost or late).
SELECT id FROM waitlist_offers
WHERE status = 'OFFERED' AND expires_at <= now()
ORDER BY expires_at
LIMIT :limit


-- name: count_overdue_holds
-- After the sweep's nets: offers still open past their time. Any left means a slot is
-- held that nobody can book or accept (the expiry failed).
SELECT count(*) AS overdue,
       CAST(coalesce(extract(epoch FROM now() - min(expires_at)), 0) AS bigint) AS oldest_overdue_s
FROM waitlist_offers
WHERE status = 'OFFERED' AND expires_at <= now()


-- name: list_entry_events
SELECT id, entry_id, offer_id, slot_id, action, actor_id, details, occurred_at
FROM waitlist_events
WHERE entry_id = :entry_id
ORDER BY id

-- name: lock_offer_message
SELECT o.id, o.status, o.emailed_at, o.expires_at, s.start_time, s.end_time, u.email, u.name,
       du.name AS doctor_name, d.timezone
FROM waitlist_offers AS o
JOIN waitlist_entries AS e ON e.id = o.entry_id
JOIN users AS u ON u.id = e.patient_id
JOIN slots AS s ON s.id = o.slot_id
JOIN doctors_profiles AS d ON d.user_id = s.doctor_id
JOIN users AS du ON du.id = s.doctor_id
WHERE o.id = :id
FOR UPDATE OF o

-- name: mark_offer_emailed
UPDATE waitlist_offers SET emailed_at = now() WHERE id = :id

-- name: lock_free_slot_for_entry
-- A free slot an entry that waits again matches (one freed while it held another offer):
-- the earliest, locked as a freeing change locks it, so no booking gets in before the
-- hold that the caller then writes with hold_slot_for_next_entry, whose own snapshot,
-- taken after this lock, sees every booking that committed before it. SKIP LOCKED: a
-- slot a booking holds FOR SHARE is being booked.
SELECT s.id
FROM waitlist_entries AS e
JOIN doctors_profiles AS d ON d.user_id = e.doctor_id
JOIN slots AS s ON s.doctor_id = e.doctor_id
WHERE e.id = :entry_id AND e.status = 'WAITING'
  AND s.start_time >= greatest(e.range_start, now() + make_interval(mins => CAST(:lead_minutes AS integer)))
  AND s.start_time < e.range_end
  AND s.held_offer_id IS NULL
  AND (e.day_start IS NULL OR (
      CAST(s.start_time AT TIME ZONE d.timezone AS time) >= e.day_start
      AND CAST(s.start_time AT TIME ZONE d.timezone AS time) < e.day_end))
  AND NOT EXISTS (SELECT 1 FROM appointments AS a WHERE a.slot_id = s.id AND a.status = 'BOOKED')
  AND NOT EXISTS (SELECT 1 FROM waitlist_offers AS o WHERE o.entry_id = e.id AND o.slot_id = s.id)
  AND NOT EXISTS (
      -- The entry ended when its patient booked that doctor in the range.
      SELECT 1 FROM appointments AS b
      WHERE b.patient_id = e.patient_id AND b.doctor_id = e.doctor_id AND b.status = 'BOOKED'
        AND b.start_time >= e.range_start AND b.start_time < e.range_end)
ORDER BY s.start_time
LIMIT 1
FOR NO KEY UPDATE OF s SKIP LOCKED

-- name: list_passed_over_entries
-- The sweep's second net: waiting entries with a free, unheld slot they match and were
-- never offered (a slot freed while the entry's row was being changed by the end of its
-- other offer, so neither transaction saw the other). Earliest-joined first.
SELECT DISTINCT e.id, e.created_at
FROM waitlist_entries AS e
JOIN doctors_profiles AS d ON d.user_id = e.doctor_id
JOIN slots AS s ON s.doctor_id = e.doctor_id
WHERE e.status = 'WAITING'
  AND s.start_time >= greatest(e.range_start, now() + make_interval(mins => CAST(:lead_minutes AS integer)))
  AND s.start_time < e.range_end
  AND s.held_offer_id IS NULL
  AND (e.day_start IS NULL OR (
      CAST(s.start_time AT TIME ZONE d.timezone AS time) >= e.day_start
      AND CAST(s.start_time AT TIME ZONE d.timezone AS time) < e.day_end))
  AND NOT EXISTS (SELECT 1 FROM appointments AS a WHERE a.slot_id = s.id AND a.status = 'BOOKED')
  AND NOT EXISTS (SELECT 1 FROM waitlist_offers AS o WHERE o.entry_id = e.id AND o.slot_id = s.id)
  AND NOT EXISTS (
      SELECT 1 FROM appointments AS a
      WHERE a.patient_id = e.patient_id AND a.status = 'BOOKED'
        AND tstzrange(a.start_time, a.end_time) && tstzrange(s.start_time, s.end_time))
  AND NOT EXISTS (
      -- The entry ended when its patient booked that doctor in the range.
      SELECT 1 FROM appointments AS b
      WHERE b.patient_id = e.patient_id AND b.doctor_id = e.doctor_id AND b.status = 'BOOKED'
        AND b.start_time >= e.range_start AND b.start_time < e.range_end)
ORDER BY e.created_at
LIMIT :limit
