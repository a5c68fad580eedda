-- settle.lua: settle one admitted request after execution. Refunds requested - actual
-- to every limit that took it (or takes the overrun when actual > requested),
-- releases its concurrency leases, moves the tenant's admitted counter by the same
-- amount and appends one usage.settled event. Idempotent per request id: a second
-- call returns the first settlement and changes nothing. O(number of limits).
--
-- KEYS[1]     {s:<shard>}:usage:v1                        stream  usage log
-- KEYS[2]     {s:<shard>}:t:<tenant>:r:v1:<requestId>       hash    d = decision reply, s = settlement reply
-- KEYS[3]     {s:<shard>}:t:<tenant>:a:v1:<periodStartMs>   string  admitted units, billing period named by the caller
-- KEYS[4]     {s:<shard>}:t:<tenant>:a:v1:<nextStartMs>     string  same, the following period
-- KEYS[5..]   the request's limit keys, exactly as passed to decide.lua (two for a period quota)
-- ARGV[1]     layout version, must be 1
-- ARGV[2]     requestId (the concurrency lease member)
-- ARGV[3]     requested (integer >= 0, the cost decided)
-- ARGV[4]     actual (integer >= 0)
-- ARGV[5]     billingEndMs   ARGV[6] billingNextEndMs   (as for decide.lua)
-- ARGV[7]     nFields >= 1, ARGV[8] nLimits
-- then        nFields (name, value) pairs of the settled event (the script adds refund and time_ms),
--             then per limit: alg, mode, p1, p2, p3, p4, nThresholds, thresholds... (as for decide.lua)
-- Clock:      redis TIME
-- Returns:    {status, nowMs, streamId, refund}  status 1 settled, 2 replay of an earlier settle,
--             0 unknown request (never admitted, or its record expired): nothing changed
-- Errors:     "ERR_ARG <name>"
-- Data:       v1, the layouts of decide.lua. Refunds never lift a bucket above its capacity or a
--             counter below 0; a refund to a window or period that has ended is dropped (it no
--             longer limits anything), an overrun is taken from the current one.

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

local record = redis.call('HMGET', KEYS[2], 'd', 's')
if not record[1] then return { 0, now, '', 0 } end
if record[2] then
  local stored = {}
  for part in string.gmatch(record[2], '[^,]+') do stored[#stored + 1] = part end
  return { 2, tonumber(stored[1]), stored[2], tonumber(stored[3]) }
end

-- The decision: when it ran and which limits took tokens.
local decision = {}
do
  local from = 1
  while true do
    local comma = string.find(record[1], ',', from, true)
    decision[#decision + 1] = string.sub(record[1], from, comma and comma - 1 or nil)
    if not comma then break end
    from = comma + 1
  end
end
local decided_at = tonumber(decision[2])
local decided_limits = tonumber(decision[7])
local refund = parsed.requested - parsed.actual

for i, lim in ipairs(parsed.limits) do
  local took = false
  if decided_limits == #parsed.limits then
    local flags = tonumber(decision[7 + (i - 1) * 5 + 3])
    took = flags >= 2
  end
  if lim.alg == 5 then
    -- a lease is released whatever the cost
    redis.call('ZREM', lim.key, parsed.request_id)
  end
  if took and refund ~= 0 then
    if lim.alg == 1 then
      local cap, rate, per = lim.p1, lim.p2, lim.p3
      local st = redis.call('HMGET', lim.key, 't', 'ts', 'r')
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
      tokens = tokens + refund
      if tokens >= cap then tokens = cap; r = 0 end
      redis.call('HSET', lim.key, 't', int_str(tokens), 'ts', int_str(now), 'r', int_str(r))
      local full = ceil_div((cap - tokens) * per - r, rate)
      if full < 1 then full = 1 end
      redis.call('PEXPIRE', lim.key, full + 1000)
    elseif lim.alg == 2 or lim.alg == 3 then
      local win = lim.p2
      local w_now = math.floor(now / win)
      local w_then = math.floor(decided_at / win)
      local field = lim.alg == 2 and 'n' or 'c'
      local st = redis.call('HMGET', lim.key, 'w', field, 'p')
      local stored_w = st[1] and tonumber(st[1]) or nil
      if refund > 0 then
        if stored_w == w_then then
          local v = tonumber(st[2]) - refund
          if v < 0 then v = 0 end
          redis.call('HSET', lim.key, field, int_str(v))
        elseif lim.alg == 3 and stored_w == w_then + 1 then
          -- the decision's window is now the previous one of a sliding window
          local v = tonumber(st[3]) - refund
          if v < 0 then v = 0 end
          redis.call('HSET', lim.key, 'p', int_str(v))
        end
      else
        local over = -refund
        if stored_w == w_now then
          redis.call('HINCRBY', lim.key, field, over)
        elseif lim.alg == 2 then
          redis.call('HSET', lim.key, 'w', int_str(w_now), 'n', int_str(over))
        else
          local prev = (stored_w == w_now - 1) and tonumber(st[2]) or 0
          redis.call('HSET', lim.key, 'w', int_str(w_now), 'c', int_str(over), 'p', int_str(prev))
        end
        local reset = (w_now + 1) * win - now
        redis.call('PEXPIRE', lim.key, reset + (lim.alg == 3 and win or 0) + 1000)
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
if refund ~= 0 then
  local admitted = decided_at >= parsed.billing_end and KEYS[4] or KEYS[3]
  local current = tonumber(redis.call('GET', admitted) or '0')
  local move = -refund
  if current + move < 0 then move = -current end
  if move ~= 0 then redis.call('INCRBY', admitted, move) end
end

local fields = parsed.fields
fields[#fields + 1] = 'refund'
fields[#fields + 1] = int_str(refund)
fields[#fields + 1] = 'time_ms'
fields[#fields + 1] = int_str(now)
local stream_id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('HSET', KEYS[2], 's', int_str(now) .. ',' .. stream_id .. ',' .. int_str(refund))
return { 1, now, stream_id, refund }
