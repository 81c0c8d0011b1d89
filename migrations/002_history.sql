-- What the wait estimate told each customer, to measure it against the wait they really had.
-- One row per ticket: the first estimate it was shown (the one a customer plans around).
CREATE TABLE IF NOT EXISTS eta_quotes (
    queue       text NOT NULL,
    ticket      bigint NOT NULL,
    quoted_at   timestamptz NOT NULL,
    position    integer NOT NULL,
    eta_s       integer NOT NULL,
    PRIMARY KEY (queue, ticket)
);

-- Calls drive the wait estimate's history and most statistics: find them without a scan.
CREATE INDEX IF NOT EXISTS queue_events_calls ON queue_events (queue, seq) WHERE type = 'called';
