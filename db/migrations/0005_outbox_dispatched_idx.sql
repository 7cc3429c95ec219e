-- Built CONCURRENTLY, outside a transaction, so production never blocks writes.
-- The runner applies this file statement by statement.

SET lock_timeout = '5s';
-- Building an index over a large table takes minutes; it blocks no writes meanwhile.
SET statement_timeout = '60min';

-- Dispatched outbox rows are pruned after a while (shared/sql/retention.sql), oldest
-- first; this finds them without reading the whole table every minute.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_dispatched_at_idx
    ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;
