-- decide.lua: decide a micro-batch of requests of ONE logical shard, in order.
-- Each request checks every limit that applies to it; if none denies, it takes
-- its cost from each, records the request (idempotency), bumps the tenant's
-- admitted counter for the billing period and appends one usage event. All or
-- nothing per request: a denied or deferred request writes no key and appends
-- no event. O(total number of limits in the batch).
--
-- KEYS[1]            {s:<shard>}:usage:v1                         stream  usage log, the billing record
-- per request, in order:
--   request record   {s:<shard>}:t:<tenant>:r:v1:<requestId>        hash    d = first admitted reply (idempotency)
--   admitted (cur)   {s:<shard>}:t:<tenant>:a:v1:<periodStartMs>    string  admitted cost units in the billing period
--   admitted (next)  {s:<shard>}:t:<tenant>:a:v1:<nextStartMs>      string  same, next billing period
--   per limit        {s:<shard>}:t:<tenant>:b:v1:<limitId>[:p:<periodStartMs>]
--                    one key, two for a period quota (current, next period)
--
-- ARGV[1]  layout version, must be 1
-- ARGV[2]  number of requests n >= 1
-- ARGV[3]  request record TTL in ms (>= 1000)
-- per request:
--   requestId, cost (integer >= 0), billingEndMs, billingNextEndMs, nFields, nLimits,
--   nFields (name, value) pairs: the usage event's fields (the script adds time_ms),
--   per limit: alg, mode, p1, p2, p3, p4, nThresholds, thresholds...
--     alg 1 token bucket   p1 capacity   p2 refill units  p3 per ms       p4 unused
--     alg 2 fixed window   p1 limit      p2 window ms     p3,p4 unused
--     alg 3 sliding window p1 limit      p2 window ms     p3,p4 unused
--     alg 4 period quota   p1 limit      p2 startMs       p3 endMs        p4 nextEndMs
--     alg 5 concurrency    p1 slots      p2 lease ttl ms  p3,p4 unused
--     mode 1 hard, 2 soft, 3 defer, 4 shadow; thresholds: percents of p1 (period quota only)
--
-- Clock:   redis TIME (effects replication), read once per call; never ARGV
-- Returns: flat array, per request:
--   kind (0 allowed, 1 warned, 2 deferred, 3 denied), nowMs, limitIndex (1-based, 0 = none),
--   retryAfterMs (-1 = never), streamId or "", isReplay 0|1, nLimits,
--   per limit: remaining, resetMs, flags (1 exceeded, 2 took), overage, thresholdCrossed (percent or 0)
-- Errors:  "ERR_ARG <name>" when ARGV is malformed; "ERR_STALE_PERIOD <nowMs>" when the caller's
--          periods do not contain Redis' now (its clock is off by more than a period)
-- Data:    v1. Bucket hash fields: tb {t tokens, ts ms, r remainder 0..per-1}; fw {w window, n count};
--          sw {w window, c current, p previous}; pq string used; cc zset lease -> expiry ms.
--          A changed field means a new version segment in the key.

local MAX = 9007199254740991

local argv_pos = 1
local function arg_int(name, min, max)
  local v = tonumber(ARGV[argv_pos])
  if v == nil or v ~= math.floor(v) or v < min or v > max then
    error({ err = 'ERR_ARG ' .. name .. ' at ' .. argv_pos })
  end
  argv_pos = argv_pos + 1
  return v
end
local function arg_str(name)
  local v = ARGV[argv_pos]
  if v == nil then error({ err = 'ERR_ARG ' .. name .. ' at ' .. argv_pos }) end
  argv_pos = argv_pos + 1
  return v
end

local ok, failure = pcall(function()
  if arg_int('version', 1, 1) ~= 1 then error({ err = 'ERR_ARG version' }) end
end)
if not ok then return redis.error_reply(failure.err or tostring(failure)) end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function ceil_div(a, b)
  return math.floor((a + b - 1) / b)
end

-- Reads a limit's state and evaluates `cost` against it without writing.
-- Returns an evaluation table; `apply` writes it later if the request is admitted.
local function evaluate(lim, cost, key1, key2, request_id)
  local ev = { fits = true, remaining = 0, reset = 0, retry = 0, overage = 0, crossed = 0 }
  local alg = lim.alg
  if alg == 1 then
    local cap, rate, per = lim.p1, lim.p2, lim.p3
    local st = redis.call('HMGET', key1, 't', 'ts', 'r')
    local tokens, r = cap, 0
    if st[1] then
      tokens = tonumber(st[1]); r = tonumber(st[3])
      local elapsed = now - tonumber(st[2])
      if elapsed < 0 then elapsed = 0 end
      local full_ms = ceil_div((cap - tokens) * per, rate) + per
      if elapsed > full_ms then elapsed = full_ms end
      local acc = elapsed * rate + r
      tokens = tokens + math.floor(acc / per)
      r = acc % per
      if tokens >= cap then tokens = cap; r = 0 end
    end
    ev.tokens, ev.r = tokens, r
    if cost > cap then
      ev.fits = false; ev.retry = -1
    elseif cost > tokens then
      ev.fits = false
      ev.retry = ceil_div((cost - tokens) * per - r, rate)
    end
    ev.overage = cost > tokens and (cost - tokens) or 0
  elseif alg == 2 then
    local limit, win = lim.p1, lim.p2
    local w = math.floor(now / win)
    local st = redis.call('HMGET', key1, 'w', 'n')
    local n = 0
    if st[1] and tonumber(st[1]) == w then n = tonumber(st[2]) end
    ev.w, ev.n = w, n
    ev.reset = (w + 1) * win - now
    if cost > limit then
      ev.fits = false; ev.retry = -1
    elseif n + cost > limit then
      ev.fits = false; ev.retry = ev.reset
    end
    ev.overage = n + cost > limit and math.min(cost, n + cost - limit) or 0
  elseif alg == 3 then
    local limit, win = lim.p1, lim.p2
    local w = math.floor(now / win)
    local e = now - w * win
    local st = redis.call('HMGET', key1, 'w', 'c', 'p')
    local cur, prev = 0, 0
    if st[1] then
      local sw = tonumber(st[1])
      if sw == w then cur = tonumber(st[2]); prev = tonumber(st[3])
      elseif sw == w - 1 then prev = tonumber(st[2]) end
    end
    ev.w, ev.cur, ev.prev = w, cur, prev
    ev.reset = win - e
    local weighted = prev * (win - e) + (cur + cost) * win
    if cost > limit then
      ev.fits = false; ev.retry = -1
    elseif weighted > limit * win then
      ev.fits = false
      if cur + cost <= limit then
        -- prev > 0 here; wait until prev's weight has decayed enough in this window
        local e_min = win - math.floor((limit - cur - cost) * win / prev)
        ev.retry = e_min - e
      else
        -- only the next window can fit it, where today's count becomes `prev`
        local e_next = win - math.floor((limit - cost) * win / cur)
        ev.retry = (win - e) + e_next
      end
    end
    local over = weighted - limit * win
    ev.overage = over > 0 and math.min(cost, ceil_div(over, win)) or 0
  elseif alg == 4 then
    local limit, start_ms, end_ms, next_end = lim.p1, lim.p2, lim.p3, lim.p4
    local key, period_end = key1, end_ms
    if now >= end_ms then key, period_end = key2, next_end end
    local used = tonumber(redis.call('GET', key) or '0')
    ev.key, ev.used, ev.period_end = key, used, period_end
    ev.reset = period_end - now
    if cost > limit then
      ev.fits = false; ev.retry = -1
    elseif used + cost > limit then
      ev.fits = false; ev.retry = ev.reset
    end
    ev.overage = used + cost > limit and math.min(cost, used + cost - limit) or 0
    for i = 1, #lim.thresholds do
      local pct = lim.thresholds[i]
      if used * 100 < pct * limit and (used + cost) * 100 >= pct * limit and pct > ev.crossed then
        ev.crossed = pct
      end
    end
  elseif alg == 5 then
    local slots, ttl = lim.p1, lim.p2
    -- live leases only; expired ones are removed when a take writes the key
    local held = redis.call('ZCOUNT', key1, '(' .. now, '+inf')
    ev.held = held
    if held + 1 > slots then
      ev.fits = false
      local first = redis.call('ZRANGEBYSCORE', key1, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      ev.retry = tonumber(first[2]) - now
    end
    ev.overage = held + 1 > slots and 1 or 0
  end
  return ev
end

-- Writes the take of one limit (only called for admitted requests).
local function apply(lim, ev, cost, key1, request_id)
  local alg = lim.alg
  if alg == 1 then
    local cap, rate, per = lim.p1, lim.p2, lim.p3
    local tokens = ev.tokens - cost
    if tokens < 0 then tokens = 0 end
    local r = ev.r
    if tokens >= cap then r = 0 end
    redis.call('HSET', key1, 't', tokens, 'ts', now, 'r', r)
    local full = ceil_div((cap - tokens) * per - r, rate)
    if full < 1 then full = 1 end
    redis.call('PEXPIRE', key1, full + 1000)
    ev.remaining, ev.reset = tokens, full
  elseif alg == 2 then
    local n = ev.n + cost
    redis.call('HSET', key1, 'w', ev.w, 'n', n)
    redis.call('PEXPIRE', key1, ev.reset + 1000)
    ev.remaining = lim.p1 - n
  elseif alg == 3 then
    local win = lim.p2
    local cur = ev.cur + cost
    redis.call('HSET', key1, 'w', ev.w, 'c', cur, 'p', ev.prev)
    redis.call('PEXPIRE', key1, ev.reset + win + 1000)
    local e = win - ev.reset
    ev.remaining = math.floor((lim.p1 * win - ev.prev * (win - e) - cur * win) / win)
  elseif alg == 4 then
    local used = redis.call('INCRBY', ev.key, cost)
    -- kept a long while past the period end: the audit reads it after the close
    redis.call('PEXPIRE', ev.key, (ev.period_end - now) + 40 * 86400000)
    ev.remaining = lim.p1 - used
  elseif alg == 5 then
    local expiry = now + lim.p2
    redis.call('ZREMRANGEBYSCORE', key1, '-inf', now)
    redis.call('ZADD', key1, expiry, request_id)
    local last = redis.call('ZRANGE', key1, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', key1, tonumber(last[2]) + 1000)
    ev.remaining = lim.p1 - ev.held - 1
    local first = redis.call('ZRANGE', key1, 0, 0, 'WITHSCORES')
    ev.reset = tonumber(first[2]) - now
  end
  if ev.remaining < 0 then ev.remaining = 0 end
end

-- Remaining as seen without a take (denied, deferred, or a shadow limit that would deny).
local function remaining_without_take(lim, ev)
  local alg = lim.alg
  local v = 0
  if alg == 1 then
    v = ev.tokens
    ev.reset = ceil_div((lim.p1 - ev.tokens) * lim.p3 - ev.r, lim.p2)
  elseif alg == 2 then v = lim.p1 - ev.n
  elseif alg == 3 then
    local win = lim.p2
    local e = win - ev.reset
    v = math.floor((lim.p1 * win - ev.prev * (win - e) - ev.cur * win) / win)
  elseif alg == 4 then v = lim.p1 - ev.used
  elseif alg == 5 then v = lim.p1 - ev.held
  end
  if v < 0 then v = 0 end
  ev.remaining = v
end

-- Integers travel as decimal strings: tostring() would use %.14g and round.
local function int_str(v) return string.format('%d', v) end

local function encode_reply(reply)
  local parts = {}
  for i, v in ipairs(reply) do
    parts[i] = type(v) == 'number' and int_str(v) or v
  end
  return table.concat(parts, ',')
end

-- Inverse of encode_reply: integers come back as numbers, the stream id as a string.
local function decode_reply(text)
  local reply, from = {}, 1
  while true do
    local comma = string.find(text, ',', from, true)
    local part = string.sub(text, from, comma and comma - 1 or nil)
    if string.match(part, '^-?%d+$') then reply[#reply + 1] = tonumber(part) else reply[#reply + 1] = part end
    if not comma then break end
    from = comma + 1
  end
  return reply
end

-- Pass 1: parse and validate the whole batch before any write, so a malformed
-- or stale request can never leave earlier requests of the batch half-written.
local requests = {}
local ok2, failure2 = pcall(function()
  local n = arg_int('n', 1, 10000)
  local record_ttl = arg_int('recordTtlMs', 1000, MAX)
  local key_pos = 2
  for q = 1, n do
    local req = {}
    req.record_ttl = record_ttl
    req.request_id = arg_str('requestId')
    req.cost = arg_int('cost', 0, MAX)
    req.billing_end = arg_int('billingEndMs', 0, MAX)
    req.billing_next_end = arg_int('billingNextEndMs', 0, MAX)
    local n_fields = arg_int('nFields', 1, 64)
    local n_limits = arg_int('nLimits', 0, 64)
    req.fields = {}
    for f = 1, n_fields * 2 do req.fields[f] = arg_str('field') end
    req.limits = {}
    for i = 1, n_limits do
      local lim = {}
      lim.alg = arg_int('alg', 1, 5)
      lim.mode = arg_int('mode', 1, 4)
      lim.p1 = arg_int('p1', 0, MAX)
      lim.p2 = arg_int('p2', 0, MAX)
      lim.p3 = arg_int('p3', 0, MAX)
      lim.p4 = arg_int('p4', 0, MAX)
      local n_th = arg_int('nThresholds', 0, 8)
      lim.thresholds = {}
      for k = 1, n_th do lim.thresholds[k] = arg_int('threshold', 1, 1000) end
      if (lim.alg == 1 and (lim.p1 < 1 or lim.p2 < 1 or lim.p3 < 1)) or
         ((lim.alg == 2 or lim.alg == 3) and (lim.p1 < 1 or lim.p2 < 1)) or
         (lim.alg == 4 and (lim.p1 < 1 or lim.p3 <= lim.p2 or lim.p4 <= lim.p3)) or
         (lim.alg == 5 and (lim.p1 < 1 or lim.p2 < 1)) then
        error({ err = 'ERR_ARG limit ' .. q .. '.' .. i })
      end
      if lim.alg == 4 and (now < lim.p2 or now >= lim.p4) then
        error({ err = 'ERR_STALE_PERIOD ' .. int_str(now) })
      end
      req.limits[i] = lim
    end
    if now >= req.billing_next_end then error({ err = 'ERR_STALE_PERIOD ' .. int_str(now) }) end
    req.record_key = KEYS[key_pos]
    req.admitted_cur, req.admitted_next = KEYS[key_pos + 1], KEYS[key_pos + 2]
    key_pos = key_pos + 3
    req.limit_keys = {}
    for i = 1, n_limits do
      req.limit_keys[i] = { KEYS[key_pos], nil }
      key_pos = key_pos + 1
      if req.limits[i].alg == 4 then
        req.limit_keys[i][2] = KEYS[key_pos]
        key_pos = key_pos + 1
      end
    end
    requests[q] = req
  end
  if key_pos - 1 ~= #KEYS then error({ err = 'ERR_ARG keys' }) end
  if argv_pos - 1 ~= #ARGV then error({ err = 'ERR_ARG trailing' }) end
end)
if not ok2 then
  if type(failure2) == 'table' and failure2.err then return redis.error_reply(failure2.err) end
  return redis.error_reply('ERR_SCRIPT ' .. tostring(failure2))
end

-- Pass 2: decide each request in order; each is all or nothing on its own.
local out = {}
for _, req in ipairs(requests) do
  local limits, cost = req.limits, req.cost
  local n_limits = #limits
  local stored = redis.call('HGET', req.record_key, 'd')
  if stored then
    -- A retry of an admitted request: the first decision, flagged, nothing taken.
    local first = decode_reply(stored)
    first[6] = 1
    for _, v in ipairs(first) do out[#out + 1] = v end
  else
    local evs = {}
    local deny_idx, defer_idx = 0, 0
    local retry = 0
    local is_warned = false
    for i = 1, n_limits do
      local lim = limits[i]
      local ev = evaluate(lim, cost, req.limit_keys[i][1], req.limit_keys[i][2], req.request_id)
      evs[i] = ev
      if not ev.fits then
        if lim.mode == 1 or lim.mode == 3 then
          if lim.mode == 1 and deny_idx == 0 then deny_idx = i end
          if lim.mode == 3 and defer_idx == 0 then defer_idx = i end
          if retry ~= -1 then
            if ev.retry == -1 then retry = -1 elseif ev.retry > retry then retry = ev.retry end
          end
        elseif lim.mode == 2 then
          is_warned = true
        end
      end
      if ev.crossed > 0 and (lim.mode ~= 4) then is_warned = true end
    end

    local kind, idx, stream_id = 0, 0, ''
    if deny_idx > 0 then kind, idx = 3, deny_idx
    elseif defer_idx > 0 then kind, idx = 2, defer_idx
    else
      kind = is_warned and 1 or 0
      retry = 0
    end

    if kind <= 1 then
      for i = 1, n_limits do
        local lim, ev = limits[i], evs[i]
        if lim.mode == 4 and not ev.fits then
          remaining_without_take(lim, ev)
        else
          apply(lim, ev, cost, req.limit_keys[i][1], req.request_id)
        end
      end
      local admitted, admitted_end = req.admitted_cur, req.billing_end
      if now >= req.billing_end then admitted, admitted_end = req.admitted_next, req.billing_next_end end
      redis.call('INCRBY', admitted, cost)
      -- kept long past the period end: the audit compares it with the ledger after the close
      redis.call('PEXPIRE', admitted, (admitted_end - now) + 400 * 86400000)
      local fields = req.fields
      fields[#fields + 1] = 'time_ms'
      fields[#fields + 1] = int_str(now)
      stream_id = redis.call('XADD', KEYS[1], '*', unpack(fields))
    else
      for i = 1, n_limits do remaining_without_take(limits[i], evs[i]) end
    end

    local reply = { kind, now, idx, retry, stream_id, 0, n_limits }
    for i = 1, n_limits do
      local ev = evs[i]
      local took = kind <= 1 and (limits[i].mode ~= 4 or ev.fits)
      reply[#reply + 1] = ev.remaining
      reply[#reply + 1] = ev.reset
      reply[#reply + 1] = (ev.fits and 0 or 1) + (took and 2 or 0)
      reply[#reply + 1] = ev.overage
      reply[#reply + 1] = ev.crossed
    end
    if kind <= 1 then
      redis.call('HSET', req.record_key, 'd', encode_reply(reply))
      redis.call('PEXPIRE', req.record_key, req.record_ttl)
    end
    for _, v in ipairs(reply) do out[#out + 1] = v end
  end
end
return out
