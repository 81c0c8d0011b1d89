-- boundary: the opening-hours schedule opens or closes a queue at one boundary instant.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 boundary instant (ms), 3 'open' | 'close', 4 '1' to clear the line at close
-- Every node's scheduler runs this for the same boundary; the script acts once: it records the
-- last boundary acted on (`hours_ms`) and refuses one that is not newer. Closing with clear
-- removes the waiting tickets (called ones stay) in one `removed` event before `closed`. A queue
-- already in the target state gets no state event (a manual change held until this boundary).
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local boundary = tonumber(ARGV[2])
if not boundary or (ARGV[3] ~= 'open' and ARGV[3] ~= 'close') then return err('bad_boundary') end
local found = redis.call('HMGET', meta, 'state', 'hours_ms', 'archived')
if not found[1] then return err('queue_not_found') end
if found[3] then return cjson.encode({acted = false}) end  -- archived: closed for good
if boundary <= (tonumber(found[2]) or 0) then return cjson.encode({acted = false}) end

redis.call('HSET', meta, 'hours_ms', ARGV[2])
local at = now_ms()
local removed = {}
if ARGV[3] == 'close' and ARGV[4] == '1' then
  removed = remove_tickets(line, tickets, finished, called, redis.call('ZRANGE', line, 0, -1), at)
  if #removed > 0 then
    emit_removed(meta, events, ARGV[1], removed, redis.call('ZCARD', line), 'closing', at)
  end
end
local target = ARGV[3] == 'open' and 'open' or 'closed'
local changed = found[1] ~= target
if changed then
  redis.call('HSET', meta, 'state', target)
  local kind = target == 'open' and 'opened' or 'closed'
  emit(meta, events, ARGV[1], kind, nil, redis.call('ZCARD', line), at, {boundary = ARGV[2]}, nil)
end
return cjson.encode({acted = true, changed = changed, removed = #removed, state = target})
