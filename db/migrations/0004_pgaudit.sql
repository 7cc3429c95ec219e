-- pgAudit on Cloud SQL: the instance flags (cloudsql.enable_pgaudit, pgaudit.log) load
-- it, but it audits nothing until the extension exists in the database. Local
-- PostgreSQL does not ship pgAudit, so the extension is created only where available.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pgaudit') THEN
        CREATE EXTENSION IF NOT EXISTS pgaudit;
    END IF;
END
$$;
