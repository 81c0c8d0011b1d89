-- remove_many: staff take a list of tickets (waiting or called), or the whole line, out at once;
-- also the closing hour's `clear` (see boundary.lua for that path).
-- KEYS: 1 meta, 2 line, 3 tickets, 4 events, 5 finished, 6 called
-- ARGV: 1 channel, 2 reason ('' for none), 3 'all' or 'list', 4.. ticket numbers (for 'list')
-- Atomic, and one event (`removed` with every number) so that every node moves its watchers
-- once and positions are exact afterwards. Numbers that are unknown or already finished are
-- skipped: the answer counts what was removed.
local meta, line, tickets, events, finished, called = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then return err('queue_not_found') end
local candidates
if ARGV[3] == 'all' then
  candidates = redis.call('ZRANGE', line, 0, -1)
elseif ARGV[3] == 'list' then
  candidates = {}
  for i = 4, #ARGV do
    if not tonumber(ARGV[i]) then return err('bad_ticket') end
    table.insert(candidates, ARGV[i])
  end
else
  return err('bad_action')
end
local at = now_ms()
local removed = remove_tickets(line, tickets, finished, called, candidates, at)
if #removed == 0 then return cjson.encode({removed = 0}) end
local waiting = redis.call('ZCARD', line)
local seq = emit_removed(meta, events, ARGV[1], removed, waiting, ARGV[2], at)
return cjson.encode({removed = #removed, seq = seq})
