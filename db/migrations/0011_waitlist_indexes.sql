-- Built CONCURRENTLY, outside a transaction (see 0002).

SET lock_timeout = '5s';
SET statement_timeout = '60min';

-- One open offer (hold) per slot, and per entry: the database refuses a second.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS waitlist_offers_one_open_per_slot
    ON waitlist_offers (slot_id) WHERE status = 'OFFERED';
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS waitlist_offers_one_open_per_entry
    ON waitlist_offers (entry_id) WHERE status = 'OFFERED';
-- The sweep's safety net: open offers past their time.
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_offers_open_expiry_idx
    ON waitlist_offers (expires_at) WHERE status = 'OFFERED';
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_offers_appointment_id_idx
    ON waitlist_offers (appointment_id);
-- Matching a freed slot: a doctor's waiting entries, earliest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_entries_doctor_waiting_idx
    ON waitlist_entries (doctor_id, created_at) WHERE status = 'WAITING';
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_entries_patient_id_idx
    ON waitlist_entries (patient_id, created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_entries_created_by_idx
    ON waitlist_entries (created_by);
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_events_entry_id_idx
    ON waitlist_events (entry_id, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_events_offer_id_idx
    ON waitlist_events (offer_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_events_slot_id_idx
    ON waitlist_events (slot_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_events_actor_id_idx
    ON waitlist_events (actor_id);
-- The sweep keeps a slot's waitlist events in order by their ordering key.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_pending_ordering_key_idx
    ON outbox (ordering_key, id) WHERE dispatched_at IS NULL;
-- Every foreign key column indexed (the partial unique ones cover open offers only).
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_offers_slot_id_idx
    ON waitlist_offers (slot_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS waitlist_entries_doctor_id_idx
    ON waitlist_entries (doctor_id);
