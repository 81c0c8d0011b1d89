-- read_snapshot: the queue's epoch, seq and state, its whole line with scores, and the tickets.
-- KEYS: 1 meta, 2 line, 3 tickets
-- ARGV: ticket numbers (any count, possibly none)
-- Atomic so the line and the tickets are those of exactly that seq: a node replaces its mirror
-- of the line with this snapshot and replays only newer notices on top of it.
local tickets = {}
for first = 1, #ARGV, 1000 do  -- unpack() of thousands of values would overflow Lua's stack
  local part = redis.call('HMGET', KEYS[3], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  for i = 1, #part do tickets[#tickets + 1] = part[i] end
end
return {redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'state'), redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES'),
        tickets}
