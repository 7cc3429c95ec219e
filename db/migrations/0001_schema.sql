-- The whole schema of DESIGN.md. Indexes on foreign keys are in 0002 (CONCURRENTLY).
-- The runner applies this file in one transaction.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TYPE user_role AS ENUM ('patient', 'doctor', 'admin');
CREATE TYPE appointment_status AS ENUM ('BOOKED', 'CANCELLED', 'COMPLETED', 'NO_SHOW');
CREATE TYPE audit_action AS ENUM ('BOOKED', 'CANCELLED', 'COMPLETED', 'NO_SHOW', 'RESCHEDULED');
CREATE TYPE notification_kind AS ENUM ('CONFIRMATION', 'REMINDER', 'CANCELLATION', 'RESCHEDULED');
CREATE TYPE notification_status AS ENUM ('SENT', 'FAILED');
CREATE TYPE outbox_target AS ENUM ('TASK', 'EVENT');

-- Identity: the id is the identity provider's subject (the token's `sub`).
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    role user_role NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 200)
);

CREATE TABLE doctors_profiles (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    specialty text NOT NULL,
    -- An IANA zone name; validated by the application (zoneinfo) on write.
    timezone text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT doctors_specialty_length CHECK (char_length(specialty) BETWEEN 1 AND 100)
);

CREATE TABLE patients_profiles (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    phone text,
    date_of_birth date,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE slots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    doctor_id uuid NOT NULL REFERENCES doctors_profiles (user_id),
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT slots_positive_length CHECK (end_time > start_time),
    -- INCLUDE lets the free-slot listing run as an index-only scan.
    CONSTRAINT slots_doctor_start_key UNIQUE (doctor_id, start_time) INCLUDE (id, end_time),
    -- Lets appointments carry a verified copy of the slot's doctor and times.
    CONSTRAINT slots_identity_key UNIQUE (id, doctor_id, start_time, end_time),
    -- No two slots of one doctor overlap: decided by the database, not by a check in code.
    CONSTRAINT slots_no_overlap EXCLUDE USING gist (
        doctor_id WITH =, tstzrange(start_time, end_time) WITH &&
    )
);

CREATE TABLE appointments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slot_id uuid NOT NULL,
    patient_id uuid NOT NULL REFERENCES patients_profiles (user_id),
    -- Copies of the slot's columns (kept equal by the foreign key below) so that a
    -- patient's overlapping bookings can be refused by an exclusion constraint.
    doctor_id uuid NOT NULL,
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    status appointment_status NOT NULL DEFAULT 'BOOKED',
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_slot_fkey FOREIGN KEY (slot_id, doctor_id, start_time, end_time)
        REFERENCES slots (id, doctor_id, start_time, end_time) ON UPDATE CASCADE,
    CONSTRAINT appointments_reason_length CHECK (char_length(reason) <= 1000),
    -- A patient cannot hold two BOOKED appointments that overlap in time.
    CONSTRAINT appointments_patient_no_overlap EXCLUDE USING gist (
        patient_id WITH =, tstzrange(start_time, end_time) WITH &&
    ) WHERE (status = 'BOOKED')
);

-- Append-only: every state change of an appointment, written in the same transaction.
CREATE TABLE audit_appointment (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id uuid NOT NULL REFERENCES appointments (id),
    action audit_action NOT NULL,
    from_status appointment_status,
    to_status appointment_status NOT NULL,
    actor_id uuid REFERENCES users (id),
    reason text,
    details jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_appointment is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_appointment_append_only
    BEFORE UPDATE OR DELETE ON audit_appointment
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();

CREATE TRIGGER audit_appointment_no_truncate
    BEFORE TRUNCATE ON audit_appointment
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

-- The permanent log of messages SENT or permanently FAILED; not a queue.
CREATE TABLE notifications (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id uuid NOT NULL REFERENCES appointments (id),
    -- The message's deterministic name (the Cloud Tasks task name).
    message_key text NOT NULL,
    kind notification_kind NOT NULL,
    channel text NOT NULL DEFAULT 'email',
    recipient text NOT NULL,
    status notification_status NOT NULL,
    attempts bigint NOT NULL DEFAULT 1,
    error text,
    sent_at timestamptz NOT NULL DEFAULT now()
);

-- Messages a change must cause, committed with the change, dispatched after commit.
CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id uuid REFERENCES appointments (id),
    target outbox_target NOT NULL,
    -- TASK: the deterministic task name; EVENT: the event id.
    name text NOT NULL,
    payload jsonb NOT NULL,
    deliver_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    attempts bigint NOT NULL DEFAULT 0,
    last_error text,
    CONSTRAINT outbox_name_key UNIQUE (target, name)
);

-- (caller, key) -> the first response, so a retried POST changes nothing.
CREATE TABLE idempotency_keys (
    caller_id uuid NOT NULL REFERENCES users (id),
    key text NOT NULL,
    request_hash text NOT NULL,
    status_code bigint,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller_id, key)
);
