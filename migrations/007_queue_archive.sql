-- An archived queue (DELETE /v1/queues/{queue}) keeps its row, so its slug stays taken and its
-- events and statistics stay readable; lists of the venue's queues leave it out.
ALTER TABLE queues ADD COLUMN IF NOT EXISTS archived_at timestamptz;
