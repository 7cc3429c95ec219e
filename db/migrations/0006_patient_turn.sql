-- A patient's turn to book or move: an advisory lock held to the end of the
-- transaction, so two changes of one patient never wait for each other's uncommitted
-- rows in appointments_patient_no_overlap (a deadlock); the second meets the first's
-- committed row instead. Returns how many upcoming BOOKED appointments the patient
-- holds once it is their turn: VOLATILE, the count takes a snapshot of its own after
-- the lock, so it sees what the turn before committed while this one waited.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE FUNCTION take_patients_turn(patient uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The first key names this use of advisory locks.
    PERFORM pg_advisory_xact_lock(1, hashtext(CAST(patient AS text)));
    RETURN (
        SELECT count(*) FROM appointments
        WHERE patient_id = patient AND status = 'BOOKED' AND start_time > now()
    );
END
$$;
