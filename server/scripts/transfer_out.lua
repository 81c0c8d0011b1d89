-- transfer_out: the second half of a transfer, on the source queue: the old ticket becomes
-- `transferred`, pointing at its new queue, number and nonce (so the old token can follow).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 number, 3 transfer id, 4 target queue, 5 target number, 6 target nonce
-- Atomic and idempotent on the transfer id (a ticket already transferred by this id answers
-- as the first time). A ticket that finished meanwhile answers `ticket_finished`, and the
-- caller takes the new ticket back out of the target queue.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then return err('queue_not_found') end
local raw = redis.call('HGET', tickets, ARGV[2])
if not raw then return err('ticket_not_found') end
local ticket = cjson.decode(raw)
if ticket.s == 'transferred' and ticket.x == ARGV[3] then
  return cjson.encode({number = tonumber(ARGV[2]), status = 'transferred', repeated = true})
end
if ticket.s ~= 'waiting' and ticket.s ~= 'called' then return err('ticket_finished') end

local at = now_ms()
redis.call('ZREM', line, ARGV[2])
redis.call('ZREM', called, ARGV[2])
local was = ticket.s
ticket.s = 'transferred'
ticket.f = at
ticket.x, ticket.tq, ticket.tn, ticket.tnc = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
redis.call('HSET', tickets, ARGV[2], cjson.encode(ticket))
finish(tickets, finished, ARGV[2], at)
local waiting = redis.call('ZCARD', line)
local extra = {to_queue = ARGV[4], to_ticket = ARGV[5], to_nonce = ARGV[6], transfer = ARGV[3],
               was = was}
local note = {tq = ARGV[4], tn = tonumber(ARGV[5])}
local seq = emit(meta, events, ARGV[1], 'transferred', tonumber(ARGV[2]), waiting, at, extra, note)
return cjson.encode({number = tonumber(ARGV[2]), status = 'transferred', seq = seq})
