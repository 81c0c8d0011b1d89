-- upsert_queue: create a queue's live state, or rename it.
-- KEYS: 1 meta, 2 line
-- ARGV: 1 venue id, 2 name, 3 epoch for a new queue
-- Atomic so two creators racing make one queue with one epoch; a queue of another venue is
-- refused (PostgreSQL owns the slug, this is the live copy of that ownership).
local meta, line = KEYS[1], KEYS[2]
local venue = redis.call('HGET', meta, 'venue')
local created = false
if not venue then
  redis.call('HSET', meta, 'venue', ARGV[1], 'name', ARGV[2], 'state', 'open',
             'epoch', ARGV[3], 'seq', 0, 'next', 0)
  created = true
elseif venue ~= ARGV[1] then
  return err('forbidden')
else
  redis.call('HSET', meta, 'name', ARGV[2])
end
return cjson.encode({created = created, state = redis.call('HGET', meta, 'state'),
                     name = ARGV[2], waiting = redis.call('ZCARD', line)})
