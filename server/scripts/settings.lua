-- settings: change a queue's settings (max_waiting, board_names, notify_ahead, channels, hours).
-- KEYS: 1 meta, 2 line, 3 events
-- ARGV: 1 channel, 2 the change as JSON (logged as is), 3 now ms, 4.. field, value pairs
--       (value '' removes the field: back to its default). server/settings.py validates values.
-- Atomic so the settings, their event and the seq move together; setting `hours` also marks
-- every boundary up to now as done (the schedule acts only at boundaries still to come).
local meta, line, events = KEYS[1], KEYS[2], KEYS[3]
local FIELDS = {max_waiting = true, board_names = true, notify_ahead = true, channels = true,
                hours = true}
if redis.call('EXISTS', meta) == 0 then return err('queue_not_found') end
if redis.call('HEXISTS', meta, 'archived') == 1 then return err('queue_archived') end
if (#ARGV - 3) % 2 ~= 0 then return err('bad_settings') end
for i = 4, #ARGV, 2 do
  if not FIELDS[ARGV[i]] then return err('bad_settings') end
end
if #ARGV == 3 then return cjson.encode({changed = false}) end

for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', meta, ARGV[i])
  else
    redis.call('HSET', meta, ARGV[i], ARGV[i + 1])
  end
  if ARGV[i] == 'hours' then redis.call('HSET', meta, 'hours_ms', ARGV[3]) end
end
local waiting = redis.call('ZCARD', line)
local seq = emit(meta, events, ARGV[1], 'settings', nil, waiting, now_ms(), {settings = ARGV[2]}, nil)
return cjson.encode({changed = true, seq = seq})
