-- Shared prelude, prepended to every mutating script by server/store.py.
-- Scripts validate every input before their first write: Redis does not roll back a script
-- that fails half-way, so a check after a write would leave a half-made change behind.
-- The constants shared with Python (FINISHED_KEEP_MS, ...) come first, from protocol/ticket.py.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function err(code)
  return cjson.encode({error = code})
end

-- Record one change: bump seq, append it to the queue's event stream (the outbox that the
-- persister copies to PostgreSQL) and publish a compact notice for the nodes' watchers.
local function emit(meta, events, channel, kind, number, waiting, at, extra)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local epoch = redis.call('HGET', meta, 'epoch')
  local fields = {'seq', seq, 'type', kind, 'at', at, 'epoch', epoch, 'waiting', waiting}
  local notice = {e = epoch, s = seq, k = kind, w = waiting, at = at}
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
  redis.call('XADD', events, '*', unpack(fields))
  redis.call('PUBLISH', channel, cjson.encode(notice))
  return seq
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
