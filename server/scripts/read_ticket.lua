-- read_ticket: tickets, their ranks, the line's length and the queue's seq, epoch and state.
-- KEYS: 1 meta, 2 line, 3 tickets
-- ARGV: the ticket numbers (at most a few hundred: server/fanout.py reads a connect storm's
--       watches of one queue together)
-- Atomic so the positions and the seq belong to the same moment: a watcher's first state must
-- be ordered against the notices around it by that seq (see server/fanout.py).
local ranks = {}
for i, number in ipairs(ARGV) do ranks[i] = redis.call('ZRANK', KEYS[2], number) end
return {redis.call('HMGET', KEYS[3], unpack(ARGV)), ranks, redis.call('ZCARD', KEYS[2]),
        redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'state')}
