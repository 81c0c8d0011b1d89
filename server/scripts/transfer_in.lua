-- transfer_in: the first half of a transfer, on the target queue: the ticket arrives, keeping
-- its name and priority, at position k (or the tail of its priority).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 transfer key (this transfer's answer, 24 h)
-- ARGV: 1 channel, 2 transfer id, 3 venue id, 4 from queue, 5 from number, 6 name ('' none),
--       7 new nonce, 8 priority, 9 position ('' for the tail of its priority), 10 ttl (s)
-- Atomic and idempotent on the transfer id: the server, or the recovery check completing a
-- half-done transfer, may run it again and gets the same ticket back. The source queue may live
-- in another hash slot, so the source's half is another script (transfer_out.lua).
local meta, line, tickets, events, xfer = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prior = redis.call('GET', xfer)
if prior then return prior end
local priority, k = tonumber(ARGV[8]), tonumber(ARGV[9])
if not priority or priority < 0 or priority > MAX_PRIORITY then return err('bad_priority') end
if ARGV[9] ~= '' and (not k or k < 1 or k ~= math.floor(k)) then return err('bad_position') end
local found = redis.call('HMGET', meta, 'state', 'venue', 'max_waiting')
if not found[1] then return err('queue_not_found') end
if found[2] ~= ARGV[3] then return err('forbidden') end
if found[1] == 'closed' then return err('queue_closed') end
local max_waiting = tonumber(found[3])
if max_waiting and redis.call('ZCARD', line) >= max_waiting then return err('queue_full') end

local at = now_ms()
local number = redis.call('HINCRBY', meta, 'next', 1)
local score, respaced = nil, false
if k then
  score, priority, respaced = place_at(line, k, priority)
else
  score = tail_score(line, priority)
end
redis.call('ZADD', line, fmt(score), number)
local ticket = {s = 'waiting', nc = ARGV[7], j = at, p = priority}
if ARGV[6] ~= '' then ticket.nm = ARGV[6] end
redis.call('HSET', tickets, number, cjson.encode(ticket))
local position = redis.call('ZRANK', line, number) + 1
local waiting = redis.call('ZCARD', line)
local extra = {nonce = ARGV[7], score = fmt(score), priority = priority, from_queue = ARGV[4],
               from_ticket = ARGV[5], transfer = ARGV[2]}
if ARGV[6] ~= '' then extra.name = ARGV[6] end
local note = {sc = fmt(score), p = priority, nm = ticket.nm}
if respaced then
  note.rs = 1
  extra.respaced = 1
end
local seq = emit(meta, events, ARGV[1], 'transfer_in', number, waiting, at, extra, note)
local result = cjson.encode({number = number, position = position, priority = priority,
                             waiting = waiting, seq = seq})
redis.call('SET', xfer, result, 'EX', ARGV[10])
return result
