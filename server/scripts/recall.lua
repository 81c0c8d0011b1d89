-- recall: call a called ticket again (the customer did not come), optionally at another counter.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 counters
-- ARGV: 1 channel, 2 number, 3 counter ('' keeps the ticket's counter)
-- Atomic so a recall racing served / no-show / leave sees the ticket still called or not at all.
local meta, line, tickets, events, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ticket, refusal = called_ticket(meta, tickets, ARGV[2])
if not ticket then return refusal end

local at = now_ms()
if ARGV[3] ~= '' then
  ticket.ct = ARGV[3]
  redis.call('HSET', counters, ARGV[3], ARGV[2])
end
redis.call('HSET', tickets, ARGV[2], cjson.encode(ticket))
local waiting = redis.call('ZCARD', line)
local extra = {}
if ticket.ct then extra.counter = ticket.ct end
local seq = emit(meta, events, ARGV[1], 'recalled', tonumber(ARGV[2]), waiting, at, extra, {r = 1})
return cjson.encode({number = tonumber(ARGV[2]), name = ticket.nm, counter = ticket.ct,
                     status = 'called', seq = seq})
