-- join: add a customer at the tail of their priority (0 for customers; staff may give 0..9),
-- within the join rate limits and the queue's `max_waiting`.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 idempotency key (used when ARGV[4] == '1'),
--       6 joins-per-address counter, 7 joins-per-queue counter
-- ARGV: 1 channel, 2 name ('' for none), 3 nonce, 4 use idempotency, 5 idempotency ttl (s),
--       6 request fingerprint, 7 per-address limit (0: none), 8 its window (ms),
--       9 per-queue limit (0: none), 10 its window (ms), 11 priority (0..9)
-- Atomic so the ticket number, its place, the seq and the event are one change that no other
-- join or call can interleave with; the idempotency check and store are inside it for the same
-- reason (two retries racing still make one ticket), and so is the `max_waiting` check (two
-- joins racing for the last place cannot both get it). The rate limits are counted here, after
-- the replay and the queue check, so a retried join is not refused and an unknown queue leaves
-- no counter behind.
local meta, line, tickets, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ARGV[4] == '1' then
  local prior = idem_replay(idem, ARGV[6])
  if prior then return prior end
end
local priority = tonumber(ARGV[11])
if not priority or priority < 0 or priority > MAX_PRIORITY or priority ~= math.floor(priority) then
  return err('bad_priority')
end
local found = redis.call('HMGET', meta, 'state', 'max_waiting')
local state, max_waiting = found[1], tonumber(found[2])
if not state then return err('queue_not_found') end
if state == 'closed' then return err('queue_closed') end
if max_waiting and redis.call('ZCARD', line) >= max_waiting then return err('queue_full') end
local limits = {}
if ARGV[7] ~= '0' then table.insert(limits, {KEYS[6], tonumber(ARGV[7]), tonumber(ARGV[8])}) end
if ARGV[9] ~= '0' then table.insert(limits, {KEYS[7], tonumber(ARGV[9]), tonumber(ARGV[10])}) end
if #limits > 0 then
  local wait = rate_check(limits)
  if wait > 0 then return cjson.encode({error = 'rate_limited', retry_ms = wait}) end
end

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
if ARGV[4] == '1' then idem_store(idem, ARGV[6], result, ARGV[5]) end
return result
