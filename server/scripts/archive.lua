-- archive: an admin retires a queue for good (DELETE /v1/queues/{queue}).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 '1' to remove the waiting tickets first (force), else '0'
-- Atomic so no join slips in between the emptiness check (or the forced removal) and the
-- archiving. A forced archive removes the waiting tickets with the bulk removal's code (one
-- `removed` event, reason 'archived', so their watchers are told) before the `archived` event.
-- An archived queue is closed (`state` closed, `archived` the time in ms): joins and transfers
-- in get `queue_closed`, set_state and settings refuse it; called tickets can still finish.
-- Archiving an archived queue again records nothing.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local found = redis.call('HMGET', meta, 'state', 'archived')
if not found[1] then return err('queue_not_found') end
if found[2] then return cjson.encode({archived = tonumber(found[2]), removed = 0, changed = false}) end
local waiting = redis.call('ZCARD', line)
if waiting > 0 and ARGV[2] ~= '1' then return err('queue_not_empty') end

local at = now_ms()
local removed = {}
if waiting > 0 then
  removed = remove_tickets(line, tickets, finished, called, redis.call('ZRANGE', line, 0, -1), at)
  emit_removed(meta, events, ARGV[1], removed, redis.call('ZCARD', line), 'archived', at)
end
redis.call('HSET', meta, 'state', 'closed', 'archived', at)
redis.call('HDEL', meta, 'hours')
local seq = emit(meta, events, ARGV[1], 'archived', nil, 0, at, {was = found[1]}, nil)
return cjson.encode({archived = at, removed = #removed, changed = true, seq = seq})
