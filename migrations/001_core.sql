-- Venues, their staff keys (hashes only) and the queues they own.
CREATE TABLE IF NOT EXISTS venues (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staff_keys (
    id          text PRIMARY KEY,               -- the public part of the key, used to look it up
    venue_id    uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL,                 -- sha256 of the whole key; the key itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS staff_keys_venue ON staff_keys (venue_id);

CREATE TABLE IF NOT EXISTS queues (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    venue_id    uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS queues_venue ON queues (venue_id);

-- The durable history of every queue: one row per event, written by the persister from each
-- queue's Redis stream. (queue, seq) is unique, so a redelivered batch adds nothing.
CREATE TABLE IF NOT EXISTS queue_events (
    queue       text NOT NULL,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    ticket      bigint,
    at          timestamptz NOT NULL,
    epoch       text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (queue, seq)
);
CREATE INDEX IF NOT EXISTS queue_events_at ON queue_events (queue, at);
