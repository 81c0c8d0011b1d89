-- Keys get a role (staff: operate the venue's queues; admin: also manage keys and queues), a
-- label and the time of their last use. Keys made before this migration become admin keys.
ALTER TABLE staff_keys ADD COLUMN IF NOT EXISTS role text NOT NULL DEFAULT 'admin'
    CHECK (role IN ('staff', 'admin'));
ALTER TABLE staff_keys ALTER COLUMN role SET DEFAULT 'staff';
ALTER TABLE staff_keys ADD COLUMN IF NOT EXISTS label text NOT NULL DEFAULT ''
    CHECK (length(label) <= 100);
ALTER TABLE staff_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz;
