-- A patient's turn (migration 0006) that also counts the changes `actor` made in the
-- last hour (audit rows it is the actor of: bookings, cancellations, moves) and tells
-- when the oldest of them is an hour old. A patient changing their own appointments
-- passes themself as the actor and is refused past MAX_CHANGES_PER_HOUR; anyone else
-- passes NULL and counts nothing. VOLATILE, as the one-argument function: the counts,
-- made after the lock, see what the turn before committed.
-- The one-argument function stays for code still running while this deploys.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE FUNCTION take_patients_turn(
    patient uuid,
    actor uuid,
    OUT upcoming bigint,
    OUT recent_changes bigint,
    OUT oldest_change timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The same lock as the one-argument function: the two take turns with each other.
    PERFORM pg_advisory_xact_lock(1, hashtext(CAST(patient AS text)));
    SELECT count(*) INTO upcoming
    FROM appointments
    WHERE patient_id = patient AND status = 'BOOKED' AND start_time > now();
    SELECT count(*), min(occurred_at) INTO recent_changes, oldest_change
    FROM audit_appointment
    WHERE actor_id = actor AND occurred_at > now() - interval '1 hour';
END
$$;
