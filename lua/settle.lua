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
--             then per limit: alg, mode, p1, p2, p3, p4, nThresholds, thresholds..., limitId when
--             nThresholds > 0 (as for decide.lua)
-- Clock:      redis TIME
-- Returns:    {status, nowMs, streamId, refund}  status 1 settled, 2 replay of an earlier settle,
--             0 unknown request (never admitted, or its record expired): nothing changed
-- Errors:     "ERR_ARG <name> at <position>" when ARGV or KEYS are malformed (nothing written)
-- Data:       v1, the layouts of decide.lua (msgpack bucket values). Refunds never lift a bucket above its capacity or a
--             counter below 0; a refund to a window or period that has ended is dropped (it no
--             longer limits anything), an overrun is taken from the current one. An admitted counter
--             the overrun creates (the decision cost 0) gets decide.lua's TTL.

local LAYOUT_VERSION = 1
local ARG_VERSION, ARG_REQUEST_ID, ARG_REQUESTED, ARG_ACTUAL = 1, 2, 3, 4
local ARG_BILLING_END, ARG_BILLING_NEXT_END, ARG_BILLING_START, ARG_N_FIELDS, ARG_N_LIMITS, ARG_FIELDS = 5, 6, 7, 8, 9, 10
-- a limit definition's fields, as offsets from its first argument (as in decide.lua)
local DEF_ALG, DEF_MODE, DEF_P1, DEF_P2, DEF_P3, DEF_P4, DEF_N_THRESHOLDS = 0, 1, 2, 3, 4, 5, 6
local KEY_STREAM, KEY_RECORD, KEY_ADMITTED, KEY_ADMITTED_NEXT, KEY_LIMITS = 1, 2, 3, 4, 5

local ALG_TOKEN_BUCKET, ALG_FIXED_WINDOW, ALG_SLIDING_WINDOW, ALG_PERIOD_QUOTA, ALG_CONCURRENCY = 1, 2, 3, 4, 5
local MODE_HARD, MODE_SHADOW = 1, 4
local STATUS_UNKNOWN, STATUS_SETTLED, STATUS_REPLAY = 0, 1, 2
-- The request record: decide.lua's reply (nowMs, nLimits, then per limit: remaining,
-- resetMs, flags, overage, thresholdCrossed), then the settlement {nowMs, streamId, refund}.
local REPLY_NOW, REPLY_N_LIMITS, REPLY_HEAD, REPLY_PER_LIMIT, LIMIT_FLAGS = 2, 7, 7, 5, 3
local FLAG_TOOK = 2 -- the limit took the decided cost
local SETTLED_NOW, SETTLED_STREAM_ID, SETTLED_REFUND = 1, 2, 3

local MAX = 9007199254740991 -- 2^53 - 1: the largest integer a Lua number holds exactly
local MAX_FIELDS, MAX_LIMITS, MAX_THRESHOLDS, MAX_PERCENT = 64, 64, 8, 1000
local DAY_MS = 86400000
-- TTLs as in decide.lua: a key outlives its value's use by TTL_SLACK_MS; counters are kept long past
-- their period's end for the audit after the close.
local TTL_SLACK_MS, QUOTA_KEEP_MS, ADMITTED_KEEP_MS = 1000, 40 * DAY_MS, 400 * DAY_MS

-- Validation raises 'ERR_ARG <name> at <index>'; the pcall around the parse replies it (a bug: ERR_SCRIPT).
local function arg_fail(index, name) error('ERR_ARG ' .. name .. ' at ' .. index, 0) end
local function arg_int(index, name, min, max)
  local v = tonumber(ARGV[index])
  if v == nil or v % 1 ~= 0 or v < min or v > max then arg_fail(index, name) end
  return v
end

local function int_str(v) return string.format('%d', v) end
local function ceil_div(a, b) return math.floor((a + b - 1) / b) end

-- Reads limit i's definition from ARGV[p] and its keys from KEYS[kp]; answers the limit
-- {alg, p1..p4, key, next_key} and the positions after them.
local function parse_limit(i, p, kp)
  local lim = {}
  lim.alg = arg_int(p + DEF_ALG, 'alg', ALG_TOKEN_BUCKET, ALG_CONCURRENCY)
  arg_int(p + DEF_MODE, 'mode', MODE_HARD, MODE_SHADOW)
  lim.p1, lim.p2 = arg_int(p + DEF_P1, 'p1', 0, MAX), arg_int(p + DEF_P2, 'p2', 0, MAX)
  lim.p3, lim.p4 = arg_int(p + DEF_P3, 'p3', 0, MAX), arg_int(p + DEF_P4, 'p4', 0, MAX)
  local n_th = arg_int(p + DEF_N_THRESHOLDS, 'nThresholds', 0, MAX_THRESHOLDS)
  for k = 1, n_th do arg_int(p + DEF_N_THRESHOLDS + k, 'threshold', 1, MAX_PERCENT) end
  p = p + DEF_N_THRESHOLDS + 1 + n_th
  if n_th > 0 then
    if ARGV[p] == nil then arg_fail(p, 'limitId') end
    p = p + 1
  end
  -- the parameters the refunds divide by
  if (lim.alg == ALG_TOKEN_BUCKET and (lim.p1 < 1 or lim.p2 < 1 or lim.p3 < 1)) or
     ((lim.alg == ALG_FIXED_WINDOW or lim.alg == ALG_SLIDING_WINDOW) and lim.p2 < 1) then
    arg_fail(p, 'limit ' .. i)
  end
  lim.key = KEYS[kp]
  if lim.alg ~= ALG_PERIOD_QUOTA then return lim, p, kp + 1 end
  lim.next_key = KEYS[kp + 1]
  return lim, p, kp + 2
end

-- Validates every argument before any write; answers them parsed.
local function parse_args()
  arg_int(ARG_VERSION, 'version', LAYOUT_VERSION, LAYOUT_VERSION)
  if ARGV[ARG_REQUEST_ID] == nil then arg_fail(ARG_REQUEST_ID, 'requestId') end
  local parsed = {
    request_id = ARGV[ARG_REQUEST_ID],
    requested = arg_int(ARG_REQUESTED, 'requested', 0, MAX),
    actual = arg_int(ARG_ACTUAL, 'actual', 0, MAX),
    billing_end = arg_int(ARG_BILLING_END, 'billingEndMs', 0, MAX),
    billing_next_end = arg_int(ARG_BILLING_NEXT_END, 'billingNextEndMs', 0, MAX),
    billing_start = arg_int(ARG_BILLING_START, 'billingStartMs', 0, MAX),
    fields = {},
    limits = {},
  }
  local n_fields = arg_int(ARG_N_FIELDS, 'nFields', 1, MAX_FIELDS)
  local n_limits = arg_int(ARG_N_LIMITS, 'nLimits', 0, MAX_LIMITS)
  for f = 1, n_fields * 2 do
    local at = ARG_FIELDS + f - 1
    parsed.fields[f] = ARGV[at] or arg_fail(at, 'field')
  end
  local p, kp = ARG_FIELDS + n_fields * 2, KEY_LIMITS
  for i = 1, n_limits do parsed.limits[i], p, kp = parse_limit(i, p, kp) end
  if kp - 1 ~= #KEYS then arg_fail(kp, 'keys') end
  if p - 1 ~= #ARGV then arg_fail(p, 'trailing') end
  return parsed
end

local ok, parsed = pcall(parse_args)
if not ok then return redis.error_reply(tostring(parsed):find('^ERR_') and parsed or 'ERR_SCRIPT ' .. tostring(parsed)) end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Gives `refund` back to a token bucket (a negative refund takes the overrun), capped at capacity.
local function settle_token_bucket(lim, refund)
  local cap, rate, per = lim.p1, lim.p2, lim.p3
  local st = redis.call('GET', lim.key)
  local tokens, r = cap, 0
  if st then
    local ts
    tokens, ts, r = cmsgpack.unpack(st)
    -- refill for the time elapsed, at most the time to fill from empty (no overflow)
    local elapsed = math.max(0, math.min(now - ts, ceil_div((cap - tokens) * per, rate) + per))
    local acc = elapsed * rate + r
    tokens, r = tokens + math.floor(acc / per), acc % per
    if tokens >= cap then tokens = cap; r = 0 end
  end
  tokens = tokens + refund
  if tokens >= cap then tokens = cap; r = 0 end
  local full_ms = math.max(1, ceil_div((cap - tokens) * per - r, rate))
  redis.call('SET', lim.key, cmsgpack.pack(tokens, now, r), 'PX', full_ms + TTL_SLACK_MS)
end

-- Gives a refund back to the window the decision counted in, if it still counts; takes an
-- overrun from the current window.
local function settle_window(lim, refund, decided_at)
  local is_sliding, win = lim.alg == ALG_SLIDING_WINDOW, lim.p2
  local w_now, w_then = math.floor(now / win), math.floor(decided_at / win)
  local st = redis.call('GET', lim.key)
  local stored_w, count, prev
  if st then stored_w, count, prev = cmsgpack.unpack(st) end
  if refund > 0 and stored_w == w_then then
    count = math.max(0, count - refund)
    local value = is_sliding and cmsgpack.pack(stored_w, count, prev) or cmsgpack.pack(stored_w, count)
    redis.call('SET', lim.key, value, 'KEEPTTL')
  elseif refund > 0 and is_sliding and stored_w == w_then + 1 then
    -- the decision's window is now the previous one of a sliding window
    redis.call('SET', lim.key, cmsgpack.pack(stored_w, count, math.max(0, prev - refund)), 'KEEPTTL')
  elseif refund < 0 then
    local reset = (w_now + 1) * win - now
    if stored_w == w_now then
      count = count - refund
    else
      prev = (is_sliding and stored_w == w_now - 1) and count or 0
      count = -refund
    end
    if is_sliding then
      -- kept through the next window, which reads this one's count as `previous`
      redis.call('SET', lim.key, cmsgpack.pack(w_now, count, prev), 'PX', reset + win + TTL_SLACK_MS)
    else
      redis.call('SET', lim.key, cmsgpack.pack(w_now, count), 'PX', reset + TTL_SLACK_MS)
    end
  end
end

-- Gives a refund back to the period the decision counted in (never below 0); takes an
-- overrun from the current period.
local function settle_period_quota(lim, refund, decided_at)
  if refund > 0 then
    local key_then = decided_at >= lim.p3 and lim.next_key or lim.key
    local used = tonumber(redis.call('GET', key_then) or '0')
    local back = math.min(refund, used)
    if back > 0 then redis.call('DECRBY', key_then, back) end
    return
  end
  local key_now = now >= lim.p3 and lim.next_key or lim.key
  redis.call('INCRBY', key_now, -refund)
  local period_end = now >= lim.p3 and lim.p4 or lim.p3
  redis.call('PEXPIRE', key_now, (period_end - now) + QUOTA_KEEP_MS)
end

-- Moves the admitted counter of the period the decision counted in by -refund, never
-- below 0 (the audit's invariant). A decision of cost 0 created no counter: an overrun
-- creates it, with the TTL decide.lua gives it.
local function move_admitted(decided_at, refund)
  local is_next = decided_at >= parsed.billing_end
  local key = is_next and KEYS[KEY_ADMITTED_NEXT] or KEYS[KEY_ADMITTED]
  local stored = redis.call('GET', key)
  local move = math.max(-refund, -tonumber(stored or '0'))
  if move == 0 then return end
  if stored then return redis.call('INCRBY', key, move) end
  local period_end = is_next and parsed.billing_next_end or parsed.billing_end
  redis.call('SET', key, move, 'PX', (period_end - now) + ADMITTED_KEEP_MS)
end

local stored = redis.call('GET', KEYS[KEY_RECORD])
if not stored then return { STATUS_UNKNOWN, now, '', 0 } end
local decision, settlement = cmsgpack.unpack(stored)
if settlement then
  return { STATUS_REPLAY, settlement[SETTLED_NOW], settlement[SETTLED_STREAM_ID], settlement[SETTLED_REFUND] }
end

local decided_at = decision[REPLY_NOW]
local refund = parsed.requested - parsed.actual
for i, lim in ipairs(parsed.limits) do
  -- a limit took the cost only if the decision saw the same limits
  local flags = decision[REPLY_N_LIMITS] == #parsed.limits and decision[REPLY_HEAD + (i - 1) * REPLY_PER_LIMIT + LIMIT_FLAGS]
  local took = flags and bit.band(flags, FLAG_TOOK) ~= 0
  -- a lease is released whatever the cost
  if lim.alg == ALG_CONCURRENCY then redis.call('ZREM', lim.key, parsed.request_id) end
  if took and refund ~= 0 then
    if lim.alg == ALG_TOKEN_BUCKET then settle_token_bucket(lim, refund)
    elseif lim.alg == ALG_FIXED_WINDOW or lim.alg == ALG_SLIDING_WINDOW then settle_window(lim, refund, decided_at)
    elseif lim.alg == ALG_PERIOD_QUOTA then settle_period_quota(lim, refund, decided_at) end
  end
end
if refund ~= 0 then move_admitted(decided_at, refund) end

local fields = parsed.fields
fields[#fields + 1] = 'refund'
fields[#fields + 1] = int_str(refund)
-- the billing period the decision counted in (the admitted counter moved above)
fields[#fields + 1] = 'bp'
fields[#fields + 1] = int_str(decided_at >= parsed.billing_end and parsed.billing_end or parsed.billing_start)
fields[#fields + 1] = 'time_ms'
fields[#fields + 1] = int_str(now)
local stream_id = redis.call('XADD', KEYS[KEY_STREAM], '*', unpack(fields))
redis.call('SET', KEYS[KEY_RECORD], cmsgpack.pack(decision, { now, stream_id, refund }), 'KEEPTTL')
return { STATUS_SETTLED, now, stream_id, refund }
