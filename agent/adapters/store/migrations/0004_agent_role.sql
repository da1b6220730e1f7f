-- The audit log becomes an HMAC chain (audit.py): the key lives outside the database, so the
-- columns are renamed to say what they hold. Pre-release: a log written before this migration no
-- longer verifies (start a new database).
ALTER TABLE audit_log RENAME COLUMN prev_hash TO prev_mac;
ALTER TABLE audit_log RENAME COLUMN hash TO mac;

-- The role the agent's data connections log in as (db.py, embedded PostgreSQL). It owns nothing:
-- it reads and writes the data tables, and may only SELECT and INSERT on audit_log, so it cannot
-- update, delete or truncate the log, alter the table, or disable its triggers (all need the
-- owner, or a superuser for session_replication_role). Tables are owned by the role that runs the
-- migrations. A table added by a later migration must GRANT to medagent_agent explicitly.
--
-- Creating a role needs CREATEROLE; a configured database.dsn whose user lacks it skips this (the
-- agent then warns at start that its role can rewrite the log, see db.py).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'medagent_agent') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE NOTICE 'role medagent_agent not created: % may not create roles', current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE medagent_agent LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database of the cluster migrating at the same moment made it
        END;
    END IF;
    GRANT SELECT, INSERT, UPDATE ON calls, turns, requests, call_summaries, patients, providers,
        provider_schedules, slots, appointments TO medagent_agent;
    GRANT USAGE ON SEQUENCE slots_id_seq TO medagent_agent;
    GRANT SELECT, INSERT ON audit_log TO medagent_agent;
END
$$;
