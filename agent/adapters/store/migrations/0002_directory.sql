-- Patients, providers, schedules, slots and appointments.

CREATE TABLE patients (
    id              uuid PRIMARY KEY,
    blind_index     bytea NOT NULL,          -- keyed HMAC of normalised name + DOB (crypto.py)
    name_enc        bytea NOT NULL,
    dob_enc         bytea NOT NULL,
    phone_enc       bytea,
    medications_enc bytea,
    created_at      timestamptz NOT NULL
);
CREATE INDEX patients_blind_index ON patients (blind_index);

CREATE TABLE providers (
    id                  text PRIMARY KEY,
    name                text NOT NULL,
    appointment_types   text[] NOT NULL
);

-- Weekly template: provider works [start_time, end_time) on weekday (0 = Monday), in the
-- practice's time zone, in slots of slot_minutes.
CREATE TABLE provider_schedules (
    provider_id     text NOT NULL REFERENCES providers (id),
    weekday         smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_time      time NOT NULL,
    end_time        time NOT NULL CHECK (end_time > start_time),
    slot_minutes    smallint NOT NULL CHECK (slot_minutes > 0),
    PRIMARY KEY (provider_id, weekday, start_time)
);

CREATE TABLE slots (
    id          bigserial PRIMARY KEY,
    provider_id text NOT NULL REFERENCES providers (id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    UNIQUE (provider_id, starts_at)
);

CREATE TABLE appointments (
    id          uuid PRIMARY KEY,
    slot_id     bigint NOT NULL REFERENCES slots (id),
    patient_id  uuid NOT NULL REFERENCES patients (id),
    type        text NOT NULL,
    status      text NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    created_at  timestamptz NOT NULL
);
-- No double booking: at most one live appointment per slot. Two calls racing for the same slot
-- both try to insert; the database lets exactly one commit.
CREATE UNIQUE INDEX appointments_one_per_slot ON appointments (slot_id) WHERE status = 'booked';
CREATE INDEX appointments_patient ON appointments (patient_id);
