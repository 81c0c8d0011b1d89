-- set_state: pause, resume, close or open a queue.
-- KEYS: 1 meta, 2 line, 3 events
-- ARGV: 1 channel, 2 action ('pause' | 'resume' | 'close' | 'open')
-- Atomic so the state check and change are one step; a no-op (pausing a paused queue) records
-- no event. An archived queue stays closed (archive.lua).
local meta, line, events = KEYS[1], KEYS[2], KEYS[3]
local found = redis.call('HMGET', meta, 'state', 'archived')
local state = found[1]
if not state then return err('queue_not_found') end
local action = ARGV[2]
if found[2] and action ~= 'close' then return err('queue_archived') end
local target, kind
if action == 'pause' then
  if state == 'closed' then return err('queue_closed') end
  target, kind = 'paused', 'paused'
elseif action == 'resume' then
  if state == 'closed' then return err('queue_closed') end
  target, kind = 'open', 'resumed'
elseif action == 'close' then
  target, kind = 'closed', 'closed'
elseif action == 'open' then
  target, kind = 'open', 'opened'
else
  return err('bad_action')
end
local waiting = redis.call('ZCARD', line)
if state ~= target then
  redis.call('HSET', meta, 'state', target)
  emit(meta, events, ARGV[1], kind, nil, waiting, now_ms(), nil)
end
return cjson.encode({state = target, name = redis.call('HGET', meta, 'name'), waiting = waiting})
