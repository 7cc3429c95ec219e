-- Privileges of the functions' Cloud SQL IAM users (one per function), through one role.
-- Idempotent; locally, where no such users exist, it only creates the role.

SET lock_timeout = '5s';
SET statement_timeout = '60s';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'clinic_app') THEN
        CREATE ROLE clinic_app NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO clinic_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO clinic_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO clinic_app;
-- The audit trail is append-only for the application as well.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_appointment FROM clinic_app;
-- Tables and sequences created by later migrations (run by the same account).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO clinic_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO clinic_app;

-- Every function user that exists now ("<prefix>-fn-<function>@<project>.iam").
DO $$
DECLARE
    member record;
BEGIN
    FOR member IN SELECT rolname FROM pg_roles WHERE rolname LIKE '%-fn-%@%.iam' LOOP
        EXECUTE format('GRANT clinic_app TO %I', member.rolname);
    END LOOP;
END
$$;
