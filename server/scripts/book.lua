-- book: what the staff and board views need beyond the line's order, read at one seq.
-- KEYS: 1 meta, 2 line, 3 tickets, 4 called
-- ARGV: none
-- Read-only. One script so that the seq, the line and the tickets' records agree: the views
-- then follow the notices from that seq (protocol/viewwatch.py). Every waiting ticket is read,
-- not only the first 500 shown: those behind move up as the line is called.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'board_names')
if not meta[1] then return false end
local function record(number)
  local raw = redis.call('HGET', KEYS[3], number)
  if not raw then return nil end
  return cjson.decode(raw)
end
local waiting, called = {}, {}
for _, number in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local t = record(number)
  if t then waiting[#waiting + 1] = {tonumber(number), t.nm or false, tonumber(t.p) or 0} end
end
for _, number in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local t = record(number)
  if t and t.s == 'called' then
    called[#called + 1] = {tonumber(number), t.nm or false, t.ct or false, tonumber(t.c) or 0}
  end
end
return cjson.encode({epoch = meta[1], seq = tonumber(meta[2]), board_names = meta[3] == '1',
                     waiting = waiting, called = called})
