-- Built CONCURRENTLY, outside a transaction, so production never blocks writes.
-- The runner applies this file statement by statement.

SET lock_timeout = '5s';
-- Building an index over a large table takes minutes; it blocks no writes meanwhile.
SET statement_timeout = '60min';

-- Double booking is impossible by construction: one BOOKED appointment per slot.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS appointments_one_booked_per_slot
    ON appointments (slot_id) WHERE status = 'BOOKED';

-- An index on every foreign key column (PostgreSQL does not create them).
CREATE INDEX CONCURRENTLY IF NOT EXISTS appointments_slot_id_idx
    ON appointments (slot_id, doctor_id, start_time, end_time);
CREATE INDEX CONCURRENTLY IF NOT EXISTS appointments_patient_id_idx
    ON appointments (patient_id, start_time);
CREATE INDEX CONCURRENTLY IF NOT EXISTS appointments_doctor_id_idx
    ON appointments (doctor_id, start_time);
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_appointment_appointment_id_idx
    ON audit_appointment (appointment_id, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_appointment_actor_id_idx
    ON audit_appointment (actor_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_appointment_id_idx
    ON notifications (appointment_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_appointment_id_idx
    ON outbox (appointment_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_keys_created_at_idx
    ON idempotency_keys (created_at);

-- At most one SENT row per message, however often Cloud Tasks delivers it.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS notifications_one_sent_per_message
    ON notifications (message_key) WHERE status = 'SENT';

-- The sweep reads only what is still waiting.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_pending_idx
    ON outbox (deliver_at) WHERE dispatched_at IS NULL;

-- Listing appointments by creation for admins, newest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS appointments_start_time_idx
    ON appointments (start_time, id);
