-- leave: the customer gives up a waiting or called ticket.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 number, 3 nonce (from the customer's signed token)
-- Atomic so a leave racing a call-next either removes a waiting ticket or leaves a called one,
-- never both or neither.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then return err('queue_not_found') end
local raw = redis.call('HGET', tickets, ARGV[2])
if not raw then return err('unauthorized') end
local ticket = cjson.decode(raw)
if ticket.nc ~= ARGV[3] then return err('unauthorized') end
if ticket.s ~= 'waiting' and ticket.s ~= 'called' then return err('ticket_finished') end

local at = now_ms()
if ticket.s == 'waiting' then redis.call('ZREM', line, ARGV[2]) end
redis.call('ZREM', called, ARGV[2])
ticket.s = 'left'
ticket.f = at
redis.call('HSET', tickets, ARGV[2], cjson.encode(ticket))
finish(tickets, finished, ARGV[2], at)
local waiting = redis.call('ZCARD', line)
local seq = emit(meta, events, ARGV[1], 'left', tonumber(ARGV[2]), waiting, at, nil)
return cjson.encode({number = tonumber(ARGV[2]), status = 'left', seq = seq})
