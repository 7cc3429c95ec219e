-- The waitlist (decision 0013): entries, offers (a hold on one slot), an append-only
-- event trail, and the hold itself as a column of the slot row, which a booking reads
-- FOR SHARE so that a hold committed while it waited is seen. Indexes are in 0011.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE TYPE waitlist_entry_status AS ENUM ('WAITING', 'OFFERED', 'BOOKED', 'LEFT');
CREATE TYPE waitlist_offer_status AS ENUM ('OFFERED', 'ACCEPTED', 'DECLINED', 'EXPIRED');
CREATE TYPE waitlist_action AS ENUM ('JOINED', 'OFFERED', 'ACCEPTED', 'DECLINED', 'EXPIRED', 'LEFT');

CREATE TABLE waitlist_entries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id uuid NOT NULL REFERENCES patients_profiles (user_id),
    doctor_id uuid NOT NULL REFERENCES doctors_profiles (user_id),
    -- Instants: the dates asked for, read in the doctor's zone.
    range_start timestamptz NOT NULL,
    range_end timestamptz NOT NULL,
    -- Times of day in the doctor's zone a slot must start within; both or neither.
    day_start time,
    day_end time,
    status waitlist_entry_status NOT NULL DEFAULT 'WAITING',
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT waitlist_entries_range CHECK (range_end > range_start),
    CONSTRAINT waitlist_entries_times CHECK (
        (day_start IS NULL AND day_end IS NULL) OR (day_start IS NOT NULL AND day_end > day_start)
    )
);

-- An offer is the hold of one slot for one entry until expires_at.
CREATE TABLE waitlist_offers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    entry_id uuid NOT NULL REFERENCES waitlist_entries (id),
    slot_id uuid NOT NULL REFERENCES slots (id),
    status waitlist_offer_status NOT NULL DEFAULT 'OFFERED',
    offered_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    appointment_id uuid REFERENCES appointments (id),
    -- An entry is offered a slot once: after a decline or an expiry the chain moves on.
    CONSTRAINT waitlist_offers_entry_slot_key UNIQUE (entry_id, slot_id),
    CONSTRAINT waitlist_offers_accepted_booked CHECK ((status = 'ACCEPTED') = (appointment_id IS NOT NULL))
);

-- Append-only: every step of an entry, written in the same transaction as the step.
CREATE TABLE waitlist_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id uuid NOT NULL REFERENCES waitlist_entries (id),
    offer_id uuid REFERENCES waitlist_offers (id),
    slot_id uuid REFERENCES slots (id),
    action waitlist_action NOT NULL,
    actor_id uuid REFERENCES users (id),
    details jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION refuse_trail_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER waitlist_events_append_only
    BEFORE UPDATE OR DELETE ON waitlist_events
    FOR EACH ROW EXECUTE FUNCTION refuse_trail_change();

CREATE TRIGGER waitlist_events_no_truncate
    BEFORE TRUNCATE ON waitlist_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_trail_change();

-- The hold: the open offer of the slot. An UPDATE of this column takes the row lock a
-- booking's FOR SHARE waits for (decision 0013). No foreign key: the offer row is
-- written in the same statement, and the column is only ever set from it.
ALTER TABLE slots ADD COLUMN held_offer_id uuid;

-- Waitlist events are published with the slot as ordering key; appointment events
-- keep their appointment's (NULL here).
ALTER TABLE outbox ADD COLUMN ordering_key text;

-- The functions' role writes the trail but never rewrites it (as audit_appointment).
REVOKE UPDATE, DELETE, TRUNCATE ON waitlist_events FROM clinic_app;

-- When the offer email went out: at most one per offer, however often its task comes.
ALTER TABLE waitlist_offers ADD COLUMN emailed_at timestamptz;
