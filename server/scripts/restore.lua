-- restore: replace a queue's live state by one rebuilt from its event log (server/recovery.py).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 called, 5 counters, 6 finished
-- ARGV: 1 channel, 2 payload JSON: {venue, name, state, epoch, seq, next, expect_epoch,
--       expect_seq, tickets: [[number, ticket JSON]...], line: [[number, score text]...] in
--       order, called: [[number, called ms]...], finished: [[number, finished ms]...],
--       counters: [[counter, number]...], settings: [[meta field, value]...]}
--       expect_epoch '' means "the queue must be missing"; otherwise meta must still hold
--       exactly (expect_epoch, expect_seq), the state the rebuild was computed against.
-- Atomic so no node or request ever sees a half-rebuilt queue (a join on a line with no meta
-- would reuse a ticket number), and so the compare-and-set cannot be split from the writes: a
-- change made after the log was read, or a rebuild by another node, is never overwritten.
-- The events stream is left alone: what it still holds is not persisted yet. The new epoch is
-- announced with a notice carrying it, so every node's mirror sees another epoch and resyncs
-- at once (the notice's seq equals the restored seq, so after that resync it is stale).
local meta, line, tickets, called, counters, finished =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ok, p = pcall(cjson.decode, ARGV[2])
if not ok or type(p) ~= 'table' then return err('bad_payload') end

local STATE_EVENT = {open = 'opened', paused = 'paused', closed = 'closed'}
local function is_count(v) return type(v) == 'number' and v >= 0 and v == math.floor(v) end
local function is_text(v) return type(v) == 'string' and v ~= '' end

-- Validate everything before the first write: a script that fails half-way keeps its writes.
if not (is_text(p.venue) and type(p.name) == 'string' and STATE_EVENT[p.state]) then
  return err('bad_payload')
end
if not (is_text(p.epoch) and is_count(p.seq) and is_count(p.next)) then return err('bad_payload') end
if type(p.expect_epoch) ~= 'string' or not is_count(p.expect_seq) then return err('bad_payload') end
if p.settings == nil then p.settings = {} end
for _, list in ipairs({p.tickets, p.line, p.called, p.finished, p.counters, p.settings}) do
  if type(list) ~= 'table' then return err('bad_payload') end
end
local known = {}
for _, t in ipairs(p.tickets) do
  if not (is_count(t[1]) and t[1] >= 1 and t[1] <= p.next and is_text(t[2])) then
    return err('bad_payload')
  end
  known[t[1]] = true
end
for _, item in ipairs(p.line) do
  if type(item) ~= 'table' or not known[item[1]] or not tonumber(item[2]) then
    return err('bad_payload')
  end
end
local SETTINGS = {max_waiting = true, board_names = true, notify_ahead = true, channels = true,
                  hours = true, hours_ms = true, archived = true}
for _, item in ipairs(p.settings) do
  if not (SETTINGS[item[1]] and is_text(item[2])) then return err('bad_payload') end
end
for _, list in ipairs({p.called, p.finished}) do
  for _, item in ipairs(list) do
    if not (known[item[1]] and is_count(item[2])) then return err('bad_payload') end
  end
end
for _, c in ipairs(p.counters) do
  if not (is_text(c[1]) and is_count(c[2])) then return err('bad_payload') end
end

local current = redis.call('HMGET', meta, 'epoch', 'seq')
if p.expect_epoch == '' then
  if current[1] then return cjson.encode({restored = false, epoch = current[1]}) end
elseif current[1] ~= p.expect_epoch or tonumber(current[2]) ~= p.expect_seq then
  return cjson.encode({restored = false, epoch = current[1] or ''})
end

redis.call('DEL', meta, line, tickets, called, counters, finished)
redis.call('HSET', meta, 'venue', p.venue, 'name', p.name, 'state', p.state,
           'epoch', p.epoch, 'seq', p.seq, 'next', p.next)
for _, t in ipairs(p.tickets) do redis.call('HSET', tickets, t[1], t[2]) end
for _, item in ipairs(p.line) do redis.call('ZADD', line, item[2], item[1]) end
for _, item in ipairs(p.settings) do redis.call('HSET', meta, item[1], item[2]) end
for _, item in ipairs(p.called) do redis.call('ZADD', called, item[2], item[1]) end
for _, item in ipairs(p.finished) do redis.call('ZADD', finished, item[2], item[1]) end
for _, c in ipairs(p.counters) do redis.call('HSET', counters, c[1], c[2]) end

local waiting = #p.line
redis.call('SPUBLISH', ARGV[1], cjson.encode({e = p.epoch, s = p.seq, k = STATE_EVENT[p.state],
                                              w = waiting, at = now_ms()}))
return cjson.encode({restored = true, epoch = p.epoch, seq = p.seq, waiting = waiting})
