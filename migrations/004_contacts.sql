-- How to reach a ticket's customer when their page sleeps (contract: "Reaching the customer").
-- Kept here only, never in the Redis stream or the event log; the notifier deletes the row once
-- it has handled the event that finishes the ticket, and a transfer moves it to the new ticket.
CREATE TABLE IF NOT EXISTS ticket_contacts (
    queue           text NOT NULL,
    number          bigint NOT NULL,
    email           text,
    phone           text,
    push            jsonb,                      -- a browser PushSubscription (endpoint, keys)
    almost_planned  boolean NOT NULL DEFAULT false, -- "almost your turn" planned (at most once)
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, number),
    CHECK (email IS NOT NULL OR phone IS NOT NULL OR push IS NOT NULL)
);
