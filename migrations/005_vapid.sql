-- The deployment's VAPID key pair for Web Push (RFC 8292), when VQ_VAPID_PRIVATE_KEY is not set:
-- one row, written once by whichever node starts first (INSERT ... ON CONFLICT DO NOTHING, then
-- every node reads the row that won). Browsers subscribed with its public half, so it never
-- changes by itself: replacing it means every customer subscribes again.
CREATE TABLE IF NOT EXISTS vapid_key (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    private_key bytea NOT NULL CHECK (length(private_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
