-- raise_seq: lift a queue's seq to one its watchers were already shown.
-- KEYS: 1 meta
-- ARGV: 1 epoch (the raise applies only to the queue as that node saw it), 2 seq
-- A Redis restarted from its append-only file can lose its last second of writes after their
-- notices went out; a connection's seq never goes back, so until the queue's seq passes what
-- was shown, the truth could not reach those watchers. The lost seqs stay unused: the event
-- log keeps a gap where the lost writes were (docs/durability.md). No event, no notice: the
-- node that asks resyncs, and so do the others when they see the same thing.
local meta = KEYS[1]
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then return err('queue_not_found') end
local target = tonumber(ARGV[2])
if epoch ~= ARGV[1] or not target then
  return cjson.encode({raised = false, seq = tonumber(redis.call('HGET', meta, 'seq'))})
end
local seq = tonumber(redis.call('HGET', meta, 'seq'))
if seq >= target then return cjson.encode({raised = false, seq = seq}) end
redis.call('HSET', meta, 'seq', target)
return cjson.encode({raised = true, seq = target})
