-- requeue: put a called ticket, or a no_show one finished less than 24 h ago, back in the line
-- at position k (past the end: last). It keeps its number and nonce, so its token still works;
-- it takes the priority of the ticket it lands before (the lowest, 0, at the end).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 number, 3 position k (>= 1)
-- Atomic so the place is computed against the line as it is when the ticket enters it.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local k = tonumber(ARGV[3])
if not k or k < 1 or k ~= math.floor(k) then return err('bad_position') end
local state = redis.call('HGET', meta, 'state')
if not state then return err('queue_not_found') end
local raw = redis.call('HGET', tickets, ARGV[2])
if not raw then return err('ticket_not_found') end
local ticket = cjson.decode(raw)
local at = now_ms()
if ticket.s == 'waiting' then return err('ticket_waiting') end
if ticket.s ~= 'called' and not (ticket.s == 'no_show' and at - ticket.f < FINISHED_KEEP_MS) then
  return err('ticket_finished')
end

local score, priority, respaced = place_at(line, k, 0)
local was = ticket.s
redis.call('ZREM', called, ARGV[2])
redis.call('ZREM', finished, ARGV[2])
redis.call('ZADD', line, fmt(score), ARGV[2])
ticket.s = 'waiting'
ticket.p = priority
ticket.c, ticket.ct, ticket.f = nil, nil, nil
redis.call('HSET', tickets, ARGV[2], cjson.encode(ticket))
local position = redis.call('ZRANK', line, ARGV[2]) + 1
local waiting = redis.call('ZCARD', line)
local extra = {score = fmt(score), priority = priority, was = was}
local note = {sc = fmt(score), p = priority, nm = ticket.nm}
if respaced then
  note.rs = 1
  extra.respaced = 1
end
local seq = emit(meta, events, ARGV[1], 'requeued', tonumber(ARGV[2]), waiting, at, extra, note)
return cjson.encode({number = tonumber(ARGV[2]), status = 'waiting', position = position,
                     priority = priority, seq = seq})
