-- read_ticket: one ticket, its rank, the line's length and the queue's seq, epoch and state.
-- KEYS: 1 meta, 2 line, 3 tickets
-- ARGV: 1 ticket number
-- Atomic so the position and the seq belong to the same moment: a watcher's first state must
-- be ordered against the notices around it by that seq (see server/fanout.py).
return {redis.call('HGET', KEYS[3], ARGV[1]), redis.call('ZRANK', KEYS[2], ARGV[1]),
        redis.call('ZCARD', KEYS[2]), redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'state')}
