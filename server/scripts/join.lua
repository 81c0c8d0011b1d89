-- join: add a customer at the tail of the line, within the join rate limits.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 idempotency key (used when ARGV[4] == '1'),
--       6 joins-per-address counter, 7 joins-per-queue counter
-- ARGV: 1 channel, 2 name ('' for none), 3 nonce, 4 use idempotency, 5 idempotency ttl (s),
--       6 request fingerprint, 7 per-address limit (0: none), 8 its window (ms),
--       9 per-queue limit (0: none), 10 its window (ms)
-- Atomic so the ticket number, its place, the seq and the event are one change that no other
-- join or call can interleave with; the idempotency check and store are inside it for the same
-- reason (two retries racing still make one ticket). The rate limits are counted here, after
-- the replay and the queue check, so a retried join is not refused and an unknown queue leaves
-- no counter behind.
local meta, line, tickets, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ARGV[4] == '1' then
  local prior = idem_replay(idem, ARGV[6])
  if prior then return prior end
end
local state = redis.call('HGET', meta, 'state')
if not state then return err('queue_not_found') end
if state == 'closed' then return err('queue_closed') end
local limits = {}
if ARGV[7] ~= '0' then table.insert(limits, {KEYS[6], tonumber(ARGV[7]), tonumber(ARGV[8])}) end
if ARGV[9] ~= '0' then table.insert(limits, {KEYS[7], tonumber(ARGV[9]), tonumber(ARGV[10])}) end
if #limits > 0 then
  local wait = rate_check(limits)
  if wait > 0 then return cjson.encode({error = 'rate_limited', retry_ms = wait}) end
end

local at = now_ms()
local number = redis.call('HINCRBY', meta, 'next', 1)
redis.call('ZADD', line, number, number)
local ticket = {s = 'waiting', nc = ARGV[3], j = at}
if ARGV[2] ~= '' then ticket.nm = ARGV[2] end
redis.call('HSET', tickets, number, cjson.encode(ticket))
local position = redis.call('ZRANK', line, number) + 1
local waiting = redis.call('ZCARD', line)
local extra = {nonce = ARGV[3]}  -- logged so a rebuild from the log keeps tokens valid
if ARGV[2] ~= '' then extra.name = ARGV[2] end
local seq = emit(meta, events, ARGV[1], 'joined', number, waiting, at, extra)
local result = cjson.encode({number = number, nonce = ARGV[3], position = position,
                            waiting = waiting, seq = seq, status = 'waiting'})
if ARGV[4] == '1' then idem_store(idem, ARGV[6], result, ARGV[5]) end
return result
