-- join: add a customer at the tail of their priority (0 for customers; staff may give 0..9).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 idempotency key (used when ARGV[4] == '1')
-- ARGV: 1 channel, 2 name ('' for none), 3 nonce, 4 use idempotency, 5 idempotency ttl (s),
--       6 priority (0..9)
-- Atomic so the ticket number, its place, the seq and the event are one change that no other
-- join or call can interleave with; the idempotency check and store are inside it for the same
-- reason (two retries racing still make one ticket), and so is the `max_waiting` check (two
-- joins racing for the last place cannot both get it).
local meta, line, tickets, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ARGV[4] == '1' then
  local prior = redis.call('GET', idem)
  if prior then return prior end
end
local priority = tonumber(ARGV[6])
if not priority or priority < 0 or priority > MAX_PRIORITY or priority ~= math.floor(priority) then
  return err('bad_priority')
end
local found = redis.call('HMGET', meta, 'state', 'max_waiting')
local state, max_waiting = found[1], tonumber(found[2])
if not state then return err('queue_not_found') end
if state == 'closed' then return err('queue_closed') end
if max_waiting and redis.call('ZCARD', line) >= max_waiting then return err('queue_full') end

local at = now_ms()
local number = redis.call('HINCRBY', meta, 'next', 1)
local score = tail_score(line, priority)
redis.call('ZADD', line, fmt(score), number)
local ticket = {s = 'waiting', nc = ARGV[3], j = at, p = priority}
if ARGV[2] ~= '' then ticket.nm = ARGV[2] end
redis.call('HSET', tickets, number, cjson.encode(ticket))
local position = redis.call('ZRANK', line, number) + 1
local waiting = redis.call('ZCARD', line)
-- logged so a rebuild from the log keeps tokens valid and places
local extra = {nonce = ARGV[3], score = fmt(score), priority = priority}
if ARGV[2] ~= '' then extra.name = ARGV[2] end
local note = {sc = fmt(score), p = priority, nm = ticket.nm}
local seq = emit(meta, events, ARGV[1], 'joined', number, waiting, at, extra, note)
local result = cjson.encode({number = number, nonce = ARGV[3], position = position,
                            waiting = waiting, seq = seq, status = 'waiting',
                            priority = priority})
if ARGV[4] == '1' then redis.call('SET', idem, result, 'EX', ARGV[5]) end
return result
