-- remove: staff take one waiting or called ticket out of the queue (a prank, a duplicate).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 number, 3 reason ('' for none)
-- Atomic so a removal racing a call-next or a leave either finds the ticket waiting or called
-- and finishes it, or finds it finished and changes nothing.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then return err('queue_not_found') end
local raw = redis.call('HGET', tickets, ARGV[2])
if not raw then return err('ticket_not_found') end
local ticket = cjson.decode(raw)
if ticket.s ~= 'waiting' and ticket.s ~= 'called' then return err('ticket_finished') end

local at = now_ms()
local was = ticket.s
remove_tickets(line, tickets, finished, called, {ARGV[2]}, at)
local waiting = redis.call('ZCARD', line)
local extra = {was = was}
if ARGV[3] ~= '' then extra.reason = ARGV[3] end
local seq = emit(meta, events, ARGV[1], 'removed', tonumber(ARGV[2]), waiting, at, extra, nil)
return cjson.encode({number = tonumber(ARGV[2]), status = 'removed', seq = seq})
