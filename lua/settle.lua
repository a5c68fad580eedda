-- settle.lua: settle one admitted request after execution. Refunds requested - actual
-- to every limit that took it (or takes the overrun when actual > requested),
-- releases its concurrency leases, moves the tenant's admitted counter by the same
-- amount and appends one usage.settled event. Idempotent per request id: a second
-- call returns the first settlement and changes nothing. O(number of limits).
--
-- KEYS[1]     {s:<shard>}:usage:v1                        stream  usage log
-- KEYS[2]     {s:<shard>}:t:<tenant>:r:v1:<requestId>       string  msgpack: decision reply [, settlement {nowMs, streamId, refund}]
-- KEYS[3]     {s:<shard>}:t:<tenant>:a:v1:<periodStartMs>   string  admitted units, billing period named by the caller
-- KEYS[4]     {s:<shard>}:t:<tenant>:a:v1:<nextStartMs>     string  same, the following period
-- KEYS[5..]   the request's limit keys, exactly as passed to decide.lua (two for a period quota)
-- ARGV[1]     layout version, must be 1
-- ARGV[2]     requestId (the concurrency lease member)
-- ARGV[3]     requested (integer >= 0, the cost decided)
-- ARGV[4]     actual (integer >= 0)
-- ARGV[5]     billingEndMs   ARGV[6] billingNextEndMs   ARGV[7] billingStartMs   (as for decide.lua)
-- ARGV[8]     nFields >= 1, ARGV[9] nLimits
-- then        nFields (name, value) pairs of the settled event (the script adds refund, bp and time_ms),
--             then per limit: alg, mode, p1, p2, p3, p4, nThresholds, thresholds... (as for decide.lua)
-- Clock:      redis TIME
-- Returns:    {status, nowMs, streamId, refund}  status 1 settled, 2 replay of an earlier settle,
--             0 unknown request (never admitted, or its record expired): nothing changed
-- Errors:     "ERR_ARG <name>"
-- Data:       v1, the layouts of decide.lua (msgpack bucket values). Refunds never lift a bucket above its capacity or a
--             counter below 0; a refund to a window or period that has ended is dropped (it no
--             longer limits anything), an overrun is taken from the current one. An admitted counter
--             the overrun creates (the decision cost 0) gets decide.lua's TTL.

local MAX = 9007199254740991
local pos = 1
local function arg_int(name, min, max)
  local v = tonumber(ARGV[pos])
  if v == nil or v ~= math.floor(v) or v < min or v > max then
    return nil, 'ERR_ARG ' .. name .. ' at ' .. pos
  end
  pos = pos + 1
  return v
end

local function int_str(v) return string.format('%d', v) end
local function ceil_div(a, b) return math.floor((a + b - 1) / b) end

local parsed = {}
local function need(name, min, max)
  local v, err = arg_int(name, min, max)
  if err then error({ err = err }) end
  return v
end

local ok, failure = pcall(function()
  need('version', 1, 1)
  if ARGV[pos] == nil then error({ err = 'ERR_ARG requestId' }) end
  parsed.request_id = ARGV[pos]; pos = pos + 1
  parsed.requested = need('requested', 0, MAX)
  parsed.actual = need('actual', 0, MAX)
  parsed.billing_end = need('billingEndMs', 0, MAX)
  parsed.billing_next_end = need('billingNextEndMs', 0, MAX)
  parsed.billing_start = need('billingStartMs', 0, MAX)
  local n_fields = need('nFields', 1, 64)
  local n_limits = need('nLimits', 0, 64)
  parsed.fields = {}
  for i = 1, n_fields * 2 do
    if ARGV[pos] == nil then error({ err = 'ERR_ARG field' }) end
    parsed.fields[i] = ARGV[pos]; pos = pos + 1
  end
  parsed.limits = {}
  local key_pos = 5
  for i = 1, n_limits do
    local lim = {}
    lim.alg = need('alg', 1, 5); lim.mode = need('mode', 1, 4)
    lim.p1 = need('p1', 0, MAX); lim.p2 = need('p2', 0, MAX); lim.p3 = need('p3', 0, MAX); lim.p4 = need('p4', 0, MAX)
    local n_th = need('nThresholds', 0, 8)
    for _ = 1, n_th do need('threshold', 1, 1000) end
    if n_th > 0 then
      if ARGV[pos] == nil then error({ err = 'ERR_ARG limitId' }) end
      pos = pos + 1
    end
    if lim.alg == 1 and (lim.p1 < 1 or lim.p2 < 1 or lim.p3 < 1) then error({ err = 'ERR_ARG limit ' .. i }) end
    if (lim.alg == 2 or lim.alg == 3) and lim.p2 < 1 then error({ err = 'ERR_ARG limit ' .. i }) end
    lim.key = KEYS[key_pos]; key_pos = key_pos + 1
    if lim.alg == 4 then lim.next_key = KEYS[key_pos]; key_pos = key_pos + 1 end
    parsed.limits[i] = lim
  end
  if key_pos - 1 ~= #KEYS then error({ err = 'ERR_ARG keys' }) end
  if pos - 1 ~= #ARGV then error({ err = 'ERR_ARG trailing' }) end
end)
if not ok then
  if type(failure) == 'table' and failure.err then return redis.error_reply(failure.err) end
  return redis.error_reply('ERR_SCRIPT ' .. tostring(failure))
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local stored = redis.call('GET', KEYS[2])
if not stored then return { 0, now, '', 0 } end
local decision, settlement = cmsgpack.unpack(stored)
if settlement then return { 2, settlement[1], settlement[2], settlement[3] } end

local decided_at = decision[2]
local decided_limits = decision[7]
local refund = parsed.requested - parsed.actual

for i, lim in ipairs(parsed.limits) do
  local took = false
  if decided_limits == #parsed.limits then
    local flags = decision[7 + (i - 1) * 5 + 3]
    took = flags >= 2
  end
  if lim.alg == 5 then
    -- a lease is released whatever the cost
    redis.call('ZREM', lim.key, parsed.request_id)
  end
  if took and refund ~= 0 then
    if lim.alg == 1 then
      local cap, rate, per = lim.p1, lim.p2, lim.p3
      local st = redis.call('GET', lim.key)
      local tokens, r = cap, 0
      if st then
        local ts
        tokens, ts, r = cmsgpack.unpack(st)
        local elapsed = now - ts
        if elapsed < 0 then elapsed = 0 end
        local full_ms = ceil_div((cap - tokens) * per, rate) + per
        if elapsed > full_ms then elapsed = full_ms end
        local acc = elapsed * rate + r
        tokens = tokens + math.floor(acc / per)
        r = acc % per
        if tokens >= cap then tokens = cap; r = 0 end
      end
      tokens = tokens + refund
      if tokens >= cap then tokens = cap; r = 0 end
      local full = ceil_div((cap - tokens) * per - r, rate)
      if full < 1 then full = 1 end
      redis.call('SET', lim.key, cmsgpack.pack(tokens, now, r), 'PX', full + 1000)
    elseif lim.alg == 2 or lim.alg == 3 then
      local win = lim.p2
      local w_now = math.floor(now / win)
      local w_then = math.floor(decided_at / win)
      local st = redis.call('GET', lim.key)
      local stored_w, count, prev
      if st then stored_w, count, prev = cmsgpack.unpack(st) end
      if refund > 0 then
        if stored_w == w_then then
          count = count - refund
          if count < 0 then count = 0 end
          redis.call('SET', lim.key, lim.alg == 2 and cmsgpack.pack(stored_w, count) or cmsgpack.pack(stored_w, count, prev), 'KEEPTTL')
        elseif lim.alg == 3 and stored_w == w_then + 1 then
          -- the decision's window is now the previous one of a sliding window
          prev = prev - refund
          if prev < 0 then prev = 0 end
          redis.call('SET', lim.key, cmsgpack.pack(stored_w, count, prev), 'KEEPTTL')
        end
      else
        local over = -refund
        local reset = (w_now + 1) * win - now
        if stored_w == w_now then
          count = count + over
        else
          prev = (lim.alg == 3 and stored_w == w_now - 1) and count or 0
          count = over
        end
        if lim.alg == 2 then
          redis.call('SET', lim.key, cmsgpack.pack(w_now, count), 'PX', reset + 1000)
        else
          redis.call('SET', lim.key, cmsgpack.pack(w_now, count, prev), 'PX', reset + win + 1000)
        end
      end
    elseif lim.alg == 4 then
      local key_then = decided_at >= lim.p3 and lim.next_key or lim.key
      if refund > 0 then
        local used = tonumber(redis.call('GET', key_then) or '0')
        local back = refund < used and refund or used
        if back > 0 then redis.call('DECRBY', key_then, back) end
      else
        local key_now = now >= lim.p3 and lim.next_key or lim.key
        redis.call('INCRBY', key_now, -refund)
        local period_end = now >= lim.p3 and lim.p4 or lim.p3
        redis.call('PEXPIRE', key_now, (period_end - now) + 40 * 86400000)
      end
    end
  end
end

-- The admitted counter moves in the period the decision counted in (the audit's invariant).
-- A decision of cost 0 created no counter: an overrun creates it, with decide.lua's TTL.
if refund ~= 0 then
  local is_next = decided_at >= parsed.billing_end
  local admitted = is_next and KEYS[4] or KEYS[3]
  local stored_count = redis.call('GET', admitted)
  local current = tonumber(stored_count or '0')
  local move = -refund
  if current + move < 0 then move = -current end
  if move ~= 0 and stored_count then
    redis.call('INCRBY', admitted, move)
  elseif move ~= 0 then
    local period_end = is_next and parsed.billing_next_end or parsed.billing_end
    redis.call('SET', admitted, move, 'PX', (period_end - now) + 400 * 86400000)
  end
end

local fields = parsed.fields
fields[#fields + 1] = 'refund'
fields[#fields + 1] = int_str(refund)
-- the billing period the decision counted in (the admitted counter moved above)
fields[#fields + 1] = 'bp'
fields[#fields + 1] = int_str(decided_at >= parsed.billing_end and parsed.billing_end or parsed.billing_start)
fields[#fields + 1] = 'time_ms'
fields[#fields + 1] = int_str(now)
local stream_id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('SET', KEYS[2], cmsgpack.pack(decision, { now, stream_id, refund }), 'KEEPTTL')
return { 1, now, stream_id, refund }
