-- finish: mark a called ticket served or no_show.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 number, 3 status ('served' | 'no_show')
-- Atomic so the status check and the change cannot be split by a concurrent leave or finish.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if ARGV[3] ~= 'served' and ARGV[3] ~= 'no_show' then return err('bad_status') end
local ticket, refusal = called_ticket(meta, tickets, ARGV[2])
if not ticket then return refusal end

local at = now_ms()
ticket.s = ARGV[3]
ticket.f = at
redis.call('HSET', tickets, ARGV[2], cjson.encode(ticket))
redis.call('ZREM', called, ARGV[2])
finish(tickets, finished, ARGV[2], at)
local waiting = redis.call('ZCARD', line)
local seq = emit(meta, events, ARGV[1], ARGV[3], tonumber(ARGV[2]), waiting, at,
                 {service_ms = at - ticket.c})
return cjson.encode({number = tonumber(ARGV[2]), status = ARGV[3], seq = seq})
