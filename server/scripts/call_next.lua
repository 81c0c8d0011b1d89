-- call_next: take the first waiting ticket and mark it called at a counter.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 counters, 6 idempotency key, 7 called
-- ARGV: 1 channel, 2 counter ('' for none), 3 use idempotency, 4 idempotency ttl (s),
--       5 request fingerprint
-- Atomic so two staff calling at once never get the same ticket.
local meta, line, tickets, events, counters, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local called = KEYS[7]
if ARGV[3] == '1' then
  local prior = idem_replay(idem, ARGV[5])
  if prior then return prior end
end
local state = redis.call('HGET', meta, 'state')
if not state then return err('queue_not_found') end
if state == 'paused' then return err('queue_paused') end

local first = redis.call('ZRANGE', line, 0, 0)
local result
if #first == 0 then
  result = cjson.encode({empty = true})
else
  local number = tonumber(first[1])
  local raw = redis.call('HGET', tickets, number)
  if not raw then return err('ticket_not_found') end
  local ticket = cjson.decode(raw)
  local at = now_ms()
  redis.call('ZREM', line, number)
  redis.call('ZADD', called, at, number)
  ticket.s = 'called'
  ticket.c = at
  if ARGV[2] ~= '' then
    ticket.ct = ARGV[2]
    redis.call('HSET', counters, ARGV[2], number)
  end
  redis.call('HSET', tickets, number, cjson.encode(ticket))
  local waiting = redis.call('ZCARD', line)
  local extra = {waited_ms = at - ticket.j}
  if ARGV[2] ~= '' then extra.counter = ARGV[2] end
  local seq = emit(meta, events, ARGV[1], 'called', number, waiting, at, extra)
  result = cjson.encode({number = number, name = ticket.nm, counter = ticket.ct,
                         status = 'called', seq = seq})
end
if ARGV[3] == '1' then idem_store(idem, ARGV[5], result, ARGV[4]) end
return result
