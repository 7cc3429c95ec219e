-- The one-argument take_patients_turn (migration 0006) has had no caller since the
-- two-argument one (migration 0008) took its place in every booking and move.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Nothing calls it: code since 0008 runs the two-argument function.
-- squawk-ignore ban-drop-function
DROP FUNCTION take_patients_turn(uuid);
