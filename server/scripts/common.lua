-- Shared prelude, prepended to every mutating script by server/store.py.
-- Scripts validate every input before their first write: Redis does not roll back a script
-- that fails half-way, so a check after a write would leave a half-made change behind.
-- The constants shared with Python (FINISHED_KEEP_MS, ...) come first, from protocol/ticket.py.

-- Store._run passes the acting staff key's id first ('' when no staff key acts, e.g. a customer
-- or the hours scheduler); it is taken off here, so each script's ARGV reads as its header says.
local ACTING_KEY = table.remove(ARGV, 1)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function err(code)
  return cjson.encode({error = code})
end

-- Record one change: bump seq, append it to the queue's event stream (the outbox that the
-- persister copies to PostgreSQL) and publish a compact notice for the nodes' watchers.
-- SPUBLISH (sharded pub/sub, Redis 7+): on a Redis Cluster the notice stays in the queue's shard
-- instead of being copied to every node; the channel shares the queue's hash tag.
-- The acting staff key's id goes into the stream entry as `key_id` (never into the notice).
-- `extra` goes into the stream entry (its `counter` also into the notice); `note` holds the
-- notice-only fields a node needs to move its mirror without a Redis call (see protocol/line.py).
local function emit(meta, events, channel, kind, number, waiting, at, extra, note)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local epoch = redis.call('HGET', meta, 'epoch')
  local fields = {'seq', seq, 'type', kind, 'at', at, 'epoch', epoch, 'waiting', waiting}
  local notice = {e = epoch, s = seq, k = kind, w = waiting, at = at}
  if ACTING_KEY ~= '' then
    table.insert(fields, 'key_id'); table.insert(fields, ACTING_KEY)
  end
  if number then
    table.insert(fields, 'ticket'); table.insert(fields, number)
    notice.n = number
  end
  if extra then
    for k, v in pairs(extra) do
      table.insert(fields, k); table.insert(fields, v)
    end
    if extra.counter then notice.c = extra.counter end
  end
  if note then
    for k, v in pairs(note) do notice[k] = v end
  end
  redis.call('XADD', events, '*', unpack(fields))
  redis.call('SPUBLISH', channel, cjson.encode(notice))
  return seq
end

-- The line's scores encode (priority, order); protocol/score.py explains the scheme and defines
-- BAND, MID, GAP and MAX_PRIORITY (prepended by lua_constants() in protocol/ticket.py). Scores
-- travel as '%.0f' text: cjson would round them to 14 digits.

local function fmt(score) return string.format('%.0f', score) end
local function band_base(p) return (MAX_PRIORITY - p) * BAND end
local function priority_of(score)
  local b = math.floor(score / BAND)
  if b < 0 then b = 0 elseif b > MAX_PRIORITY then b = MAX_PRIORITY end
  return MAX_PRIORITY - b
end

-- The score after the last ticket of priority p (FIFO within a priority).
local function tail_score(line, p)
  local base = band_base(p)
  local last = redis.call('ZREVRANGEBYSCORE', line, '(' .. fmt(base + BAND), fmt(base),
                          'WITHSCORES', 'LIMIT', 0, 1)
  if #last == 0 then return base + MID end
  return tonumber(last[2]) + GAP
end

-- Give priority p's tickets fresh, evenly spaced scores in the same order.
local function respace(line, p)
  local base = band_base(p)
  local members = redis.call('ZRANGEBYSCORE', line, fmt(base), '(' .. fmt(base + BAND))
  for i, m in ipairs(members) do
    redis.call('ZADD', line, fmt(base + MID + (i - 1) * GAP), m)
  end
end

-- A score between the ticket at rank `k` (1-based, in its band) and the one before it, or nil
-- when they are too close.
local function score_before(line, k)
  local x = tonumber(redis.call('ZRANGE', line, k - 1, k - 1, 'WITHSCORES')[2])
  local p = priority_of(x)
  local base = band_base(p)
  local pred = nil
  if k >= 2 then pred = tonumber(redis.call('ZRANGE', line, k - 2, k - 2, 'WITHSCORES')[2]) end
  if pred == nil or pred < base then
    if x - GAP >= base then return x - GAP, p end
    if x > base then return base + math.floor((x - base) / 2), p end
    return nil, p
  end
  if x - pred >= 2 then return pred + math.floor((x - pred) / 2), p end
  return nil, p
end

-- Where a ticket placed at position k goes: before the ticket now at k, taking its priority;
-- past the end, at the tail of `tail_p`. Returns score, priority, and whether the band was
-- re-spaced (other tickets' scores changed: the notice must say so).
local function place_at(line, k, tail_p)
  if k > redis.call('ZCARD', line) then return tail_score(line, tail_p), tail_p, false end
  local score, p = score_before(line, k)
  if score then return score, p, false end
  respace(line, p)
  score, p = score_before(line, k)
  return score, p, true
end

-- Finished tickets stay readable for a day, then go; a few are swept on each finish.
local function finish(tickets, finished, number, at)
  redis.call('ZADD', finished, at, number)
  local old = redis.call('ZRANGEBYSCORE', finished, '-inf', at - FINISHED_KEEP_MS, 'LIMIT', 0, 20)
  for _, n in ipairs(old) do
    redis.call('HDEL', tickets, n)
    redis.call('ZREM', finished, n)
  end
end

-- Finish every waiting or called ticket of `numbers` as removed; the numbers removed, in order.
local function remove_tickets(line, tickets, finished, called, numbers, at)
  local removed, seen = {}, {}
  for _, n in ipairs(numbers) do
    local raw = redis.call('HGET', tickets, n)
    local key = tostring(tonumber(n))
    if raw and not seen[key] then
      seen[key] = true
      local ticket = cjson.decode(raw)
      if ticket.s == 'waiting' or ticket.s == 'called' then
        redis.call('ZREM', line, key)
        redis.call('ZREM', called, key)
        ticket.s = 'removed'
        ticket.f = at
        redis.call('HSET', tickets, key, cjson.encode(ticket))
        redis.call('ZADD', finished, at, key)
        table.insert(removed, tonumber(key))
      end
    end
  end
  if #removed > 0 then finish(tickets, finished, removed[1], at) end  -- sweep old ones once
  return removed
end

-- One `removed` event for many tickets: `numbers` in the stream (comma-separated), `ns` in
-- the notice.
local function emit_removed(meta, events, channel, removed, waiting, reason, at)
  local extra = {numbers = table.concat(removed, ',')}
  if reason ~= '' then extra.reason = reason end
  return emit(meta, events, channel, 'removed', nil, waiting, at, extra, {ns = removed})
end

-- The decoded ticket `number` if it is called, else nil and the error to answer.
local function called_ticket(meta, tickets, number)
  if redis.call('EXISTS', meta) == 0 then return nil, err('queue_not_found') end
  local raw = redis.call('HGET', tickets, number)
  if not raw then return nil, err('ticket_not_found') end
  local ticket = cjson.decode(raw)
  if ticket.s == 'waiting' then return nil, err('ticket_not_called') end
  if ticket.s ~= 'called' then return nil, err('ticket_finished') end
  return ticket, nil
end

-- Fixed-window rate limits, shared by every node because they live in Redis. `limits` is a list
-- of {key, limit, window_ms}. Every limit is checked before any is counted, so an event refused
-- by one limit does not use up another's budget (one flooding address does not eat the
-- queue-wide budget). Returns 0 when allowed (and counted), else the ms until it would be.
local function rate_check(limits)
  for _, l in ipairs(limits) do
    local used = tonumber(redis.call('GET', l[1]) or '0')
    if used >= l[2] then
      local wait = redis.call('PTTL', l[1])
      if wait < 0 then wait = l[3] end
      return wait
    end
  end
  for _, l in ipairs(limits) do
    if redis.call('INCR', l[1]) == 1 then redis.call('PEXPIRE', l[1], l[3]) end
  end
  return 0
end

-- An idempotency record binds the first answer to the request's fingerprint (method, path,
-- credential, body): the same key on another request is refused, never answered with this one.
local function idem_replay(idem, fingerprint)
  local prior = redis.call('GET', idem)
  if not prior then return nil end
  local record = cjson.decode(prior)
  if type(record) ~= 'table' or record.fp ~= fingerprint then
    return err('idempotency_key_reused')
  end
  return record.r
end

local function idem_store(idem, fingerprint, result, ttl)
  redis.call('SET', idem, cjson.encode({fp = fingerprint, r = result}), 'EX', ttl)
end
