-- The trace of the request that wrote an outbox row (issue 17): sent on as the Cloud
-- Tasks task's trace headers and the Pub/Sub message's traceparent attribute, so the
-- notify function's log lines and the email join the booking's trace. NULL: none known.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

ALTER TABLE outbox ADD COLUMN trace text;
