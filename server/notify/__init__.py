"""The notifier: reaching customers whose page sleeps, and the venues' webhooks.

- `plan`: what each queue event owes (pure functions: ids, payloads, texts, signatures);
- `notifier`: reads the queues' Redis streams through its own consumer group, records the
  deliveries in PostgreSQL (`server.db.deliveries`), then sends them with leases so that no two
  nodes attempt one at once and a dead node's work is taken over;
- `channels`: email (SMTP), SMS (a signed webhook), Web Push, webhooks;
- `webhooks`: the admin routes.
"""
