-- Calls, transcripts, staff requests and call summaries. Columns ending in _enc hold AES-GCM
-- sealed patient data (agent/adapters/store/crypto.py), bound to table/row/column.

CREATE TABLE calls (
    id              text PRIMARY KEY,
    channel_id      text NOT NULL,
    caller_number_enc bytea,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    outcome         text
);

CREATE TABLE turns (
    id          uuid PRIMARY KEY,            -- the record id: replaying the spool twice inserts once
    call_id     text NOT NULL REFERENCES calls (id),
    speaker     text NOT NULL CHECK (speaker IN ('caller', 'agent')),
    text_enc    bytea NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX turns_call_at ON turns (call_id, at);

CREATE TABLE requests (
    id          uuid PRIMARY KEY,
    call_id     text NOT NULL REFERENCES calls (id),
    kind        text NOT NULL
                CHECK (kind IN ('message', 'refill', 'appointment', 'transfer', 'emergency')),
    urgency     text NOT NULL CHECK (urgency IN ('routine', 'urgent')),
    status      text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'in_progress', 'done')),
    data_enc    bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- The staff work queue: open requests, urgent first.
CREATE INDEX requests_open ON requests (status, urgency, created_at);

CREATE TABLE call_summaries (
    call_id     text PRIMARY KEY REFERENCES calls (id),
    record_id   uuid NOT NULL UNIQUE,
    urgency     text NOT NULL,               -- routine / urgent / emergency: no patient data
    outcome     text,
    summary_enc bytea NOT NULL,              -- reasons, actions, open items (patient data)
    created_at  timestamptz NOT NULL
);
