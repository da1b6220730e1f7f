-- Append-only, hash-chained audit log of every read and write of patient data (audit.py).

CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY,          -- assigned by the writer under a lock: no gaps
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    subject     text NOT NULL,               -- table name
    subject_id  text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}', -- never patient data
    prev_hash   text NOT NULL,
    hash        text NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
