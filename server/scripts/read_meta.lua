-- read_meta: a queue's summary fields and how many wait, read together.
-- KEYS: 1 meta, 2 line
-- ARGV: none
-- A script rather than MULTI so the two reads agree on one Redis and on a Redis Cluster alike
-- (every key is in the queue's slot; redis-py's cluster MULTI cannot be used from asyncio).
return {redis.call('HGETALL', KEYS[1]), redis.call('ZCARD', KEYS[2])}
