-- A patient's own changes of the last hour are counted at each booking, cancel and
-- move they make (take_patients_turn, migration 0008): by actor and time that is a
-- range of a few index entries, not every change the actor ever made. The index
-- replaces the one on actor_id alone, which it covers (the foreign key's too).
-- Built CONCURRENTLY, outside a transaction: the runner applies it statement by statement.

SET lock_timeout = '5s';
SET statement_timeout = '60min';

CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_appointment_actor_time_idx
    ON audit_appointment (actor_id, occurred_at);
DROP INDEX CONCURRENTLY IF EXISTS audit_appointment_actor_id_idx;
