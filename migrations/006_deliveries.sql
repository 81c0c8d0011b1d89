-- The notifier (server/notify/): venues' webhooks, and every delivery it owes (a webhook call,
-- an email, an SMS, a push), with its attempts. A delivery's id is stable across retries: it is
-- the email's Message-ID, the push's and the webhook's id, so a receiver can drop a repeat.
CREATE TABLE IF NOT EXISTS webhooks (
    id          uuid PRIMARY KEY,
    venue_id    uuid NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL,
    secret      text NOT NULL,                  -- whsec_ + base64 of the signing key
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhooks_venue ON webhooks (venue_id);

CREATE TABLE IF NOT EXISTS deliveries (
    id          text PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('webhook', 'email', 'sms', 'push')),
    webhook_id  uuid REFERENCES webhooks (id) ON DELETE CASCADE,
    queue       text NOT NULL,
    seq         bigint NOT NULL,                -- of the event it comes from: the order key
    number      bigint,                         -- the ticket, for notifications
    type        text NOT NULL,                  -- ticket.called..., or almost / turn
    chain       text NOT NULL,                  -- deliveries kept in order with each other
    target      text,                           -- address, number or subscription; null once done
    payload     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'dead', 'dropped')),
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_until timestamptz,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_chain ON deliveries (chain, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_of_webhook ON deliveries (webhook_id, status, seq);
CREATE INDEX IF NOT EXISTS deliveries_done ON deliveries (done_at) WHERE status <> 'pending';

CREATE TABLE IF NOT EXISTS delivery_attempts (
    delivery_id text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    node        text NOT NULL,
    ok          boolean NOT NULL,
    error       text,
    ms          integer NOT NULL,
    PRIMARY KEY (delivery_id, n)
);

-- A finished ticket's contacts wait a grace period before deletion, so that a call handled
-- late on another node (a claimed event) still reaches its customer: see server/notify/plan.py.
ALTER TABLE ticket_contacts ADD COLUMN IF NOT EXISTS finished_at timestamptz;
CREATE INDEX IF NOT EXISTS ticket_contacts_finished ON ticket_contacts (finished_at)
    WHERE finished_at IS NOT NULL;
