-- decide.lua: decide a micro-batch of requests, in order. Each request checks
-- every limit that applies to it; if none denies, it takes its cost from each,
-- records the request (idempotency), bumps the tenant's admitted counter for
-- the billing period and queues one usage event; the call appends its events as ONE
-- stream entry per stream. All or nothing per request:
-- a denied or deferred request writes no key and appends no event.
-- O(total number of limits in the batch).
--
-- Cost model (measured, see BENCHMARKS.md): a redis.call costs ~1.5 µs whatever
-- it does, so a request reads all its state in ONE MGET and writes each key in
-- one command (SET .. PX carries the TTL); limit definitions travel once per
-- batch and requests refer to them by index.
--
-- KEYS, per request in order (a batch may span shards on a single Redis; on
-- Redis Cluster the caller batches per shard so one call is one slot):
--   stream           {s:<shard>}:usage:v1                         stream  usage log, the billing record
--   request record   {s:<shard>}:t:<tenant>:r:v1:<requestId>        string  msgpack: decision reply [, settlement]
--   admitted (cur)   {s:<shard>}:t:<tenant>:a:v1:<periodStartMs>    string  admitted cost units in the billing period
--   admitted (next)  {s:<shard>}:t:<tenant>:a:v1:<nextStartMs>      string  same, next billing period
--   per limit        {s:<shard>}:t:<tenant>:b:v1:<limitId>[:p:<periodStartMs>]
--                    one key, two for a period quota (current, next period)
--
-- ARGV[1] alone: the batch, packed as ONE msgpack array (decoded once, in C, by cmsgpack: no
-- Redis object and Lua string per argument); its elements, named A[i] here as ARGV[i] were in layout 3:
-- A[1]  layout version, must be 6 (the arguments of 4; 5: the packed reply; 6: one stream entry per call)
-- A[2]  number of requests n (1..10000)
-- A[3]  number of limit definitions d (0..1024), then d definitions (strings or integers):
--          alg, mode, p1, p2, p3, p4, nThresholds, thresholds..., and when nThresholds > 0 the limit id
--     alg 1 token bucket   p1 capacity   p2 refill units  p3 per ms       p4 unused
--     alg 2 fixed window   p1 limit      p2 window ms     p3,p4 unused
--     alg 3 sliding window p1 limit      p2 window ms     p3,p4 unused
--     alg 4 period quota   p1 limit      p2 startMs       p3 endMs        p4 nextEndMs
--     alg 5 concurrency    p1 slots      p2 lease ttl ms  p3,p4 unused
--     mode 1 hard, 2 soft, 3 defer, 4 shadow; thresholds: percents of p1 (period quota only)
-- then per request:
--   requestId, cost (integer >= 0), billingEndMs, billingNextEndMs, tenant, keyId,
--   operation, policyVersion (copied into the event), billingStartMs (cost and the three bounds integers, the
--   rest strings), recordTtlMs (>= 1000),
--   attempt (a string of 1..64 bytes: the caller's token for this request, the same when it retries a call whose
--   reply was lost; "-" for none, never taken as the caller's own), nLimits, then nLimits definition indexes (1-based)
--   (recordTtlMs, nLimits and the indexes integers). The next billing period
--   starts at billingEndMs.
--
-- Clock:   redis TIME (effects replication), read once per call; never ARGV
-- Returns: { marks, reply 1, ..., reply n }: per request one msgpack string (packed once, in C; the request
--   record of an admitted request is that same string, so nothing is packed twice and Redis converts no
--   nested table), and `marks`, one character per request: "n" a decision made now, "s" the stored record of an
--   earlier one (a retry of an admitted request: its first decision, nothing taken). A reply is the array
--   kind (0 allowed, 1 warned, 2 deferred, 3 denied), nowMs, limitIndex (1-based, 0 = none),
--   retryAfterMs (-1 = never), streamId or "", isReplay (always 0 as stored), nLimits,
--   per limit: remaining, resetMs, flags (1 exceeded, 2 took), overage, thresholdCrossed (percent or 0),
--   then, in an admitted request's reply, its attempt token; a stored record may be followed by its settlement
--   (settle.lua). The caller tells a replay: a stored record is a replay unless its attempt token is the
--   caller's own for that request (a call whose reply was lost, sent again) and not "-".
-- Errors:  "ERR_ARG <name> at <position>" when ARGV or KEYS are malformed (nothing written);
--          "ERR_STALE_PERIOD <nowMs>" when the caller's periods do not contain Redis' now
-- Data:    v1 (pre-release: no v1 data predates this layout). Bucket values are msgpack
--          sequences of integers: tb (tokens, ts ms, remainder 0..per-1); fw (window, count);
--          sw (window, current, previous). pq: a decimal counter (INCRBY). cc: zset lease ->
--          expiry ms. A changed layout means a new version segment in the key. The request record
--          is the reply with the attempt token after the last limit (absent in records written
--          before layout 3: never taken as the caller's own).
--          The stream entry of a call (one per stream it touches): type `usage.reserved.batch.v1`, time_ms,
--          n (the number of events), events = one line per admitted request ("\n" between lines), in order,
--          of 8 values separated by one space: id, tenant, key, op, cost, pv, bp (billing period start ms),
--          warn (limitId:percent,... of the quota thresholds it crossed; empty for none). No value can hold a
--          space or a newline (compile.ts checks every id and name). Each line is the usage event
--          `usage.reserved.v1` of that request (src/metering/stream-entry.ts reads both forms; settle.lua and
--          append-usage.lua write one event per entry, as before).

-- ARGV and KEYS layout (header): the fields of a definition, and the arguments and keys of a
-- request, as offsets from the first one; a request's limit keys follow KEY_LIMITS.
local LAYOUT_VERSION = 6
local ARG_VERSION, ARG_N_REQUESTS, ARG_N_DEFINITIONS, ARG_DEFINITIONS = 1, 2, 3, 4
local DEF_ALG, DEF_MODE, DEF_P1, DEF_P2, DEF_P3, DEF_P4, DEF_N_THRESHOLDS = 0, 1, 2, 3, 4, 5, 6
local REQ_ID, REQ_COST, REQ_BILLING_END, REQ_BILLING_NEXT_END, REQ_TENANT, REQ_KEY_ID = 0, 1, 2, 3, 4, 5
local REQ_OPERATION, REQ_POLICY_VERSION, REQ_BILLING_START, REQ_RECORD_TTL, REQ_ATTEMPT, REQ_N_LIMITS = 6, 7, 8, 9, 10, 11
local KEY_STREAM, KEY_RECORD, KEY_ADMITTED, KEY_ADMITTED_NEXT, KEY_LIMITS = 0, 1, 2, 3, 4

local ALG_TOKEN_BUCKET, ALG_FIXED_WINDOW, ALG_SLIDING_WINDOW, ALG_PERIOD_QUOTA, ALG_CONCURRENCY = 1, 2, 3, 4, 5
local MODE_HARD, MODE_SOFT, MODE_DEFER, MODE_SHADOW = 1, 2, 3, 4
local KIND_ALLOWED, KIND_WARNED, KIND_DEFERRED, KIND_DENIED = 0, 1, 2, 3
local FLAG_EXCEEDED, FLAG_TOOK = 1, 2 -- bits of a limit's flags in the reply
local RETRY_NEVER = -1 -- retryAfterMs of a cost above the whole limit: waiting cannot help
local REPLY_STREAM_ID, REPLY_HEAD, REPLY_PER_LIMIT = 5, 7, 5 -- reply layout (header)

local MAX = 9007199254740991 -- 2^53 - 1: the largest integer a Lua number holds exactly
local MAX_REQUESTS, MAX_DEFINITIONS, MAX_LIMITS, MAX_THRESHOLDS, MAX_PERCENT = 10000, 1024, 64, 8, 1000
local MIN_RECORD_TTL_MS, DAY_MS = 1000, 86400000
-- TTLs: a key outlives its value's use by TTL_SLACK_MS; counters are kept long past their period's end
-- for the audit after the close (it reads quota counters, compares the admitted counter with the ledger).
local TTL_SLACK_MS, QUOTA_KEEP_MS, ADMITTED_KEEP_MS = 1000, 40 * DAY_MS, 400 * DAY_MS

local call, tonumber, floor, unpack = redis.call, tonumber, math.floor, unpack
local mp_pack, mp_unpack = cmsgpack.pack, cmsgpack.unpack
local PACKED, KEYS = ARGV, KEYS
local ARGV = {} -- the unpacked batch (parse_batch), read by every function below

-- Validation raises 'ERR_ARG <name> at <index>'; the pcall around the parse replies it (a bug: ERR_SCRIPT).
local function arg_fail(index, name) error('ERR_ARG ' .. name .. ' at ' .. index, 0) end
local function arg_int(index, name, min, max)
  local v = tonumber(ARGV[index])
  if v == nil or v % 1 ~= 0 or v < min or v > max then arg_fail(index, name) end
  return v
end

local t = call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local now_str = string.format('%d', now)
local function fail_stale() error('ERR_STALE_PERIOD ' .. now_str, 0) end
local function ceil_div(a, b) return floor((a + b - 1) / b) end
-- An integer argument of redis.call as a decimal string: Redis would format a Lua number with %.17g (slower, measured)
local format = string.format
-- (memoized for the call: a cost, a billing period or a TTL of the call's fixed `now` recurs in most requests)
local int_memo = {}
local function int(v)
  local s = int_memo[v]
  if s then return s end
  s = format('%d', v)
  int_memo[v] = s
  return s
end

-- Definitions, by index d (no table per definition): p1..p4 as in the header, thresholds
-- (a list of percents, or false) and the limit's id (only with thresholds).
local d_alg, d_mode, d_p1, d_p2, d_p3, d_p4, d_th, d_id = {}, {}, {}, {}, {}, {}, {}, {}
-- Requests, by index q: first argument, first key, cost, number of limits.
local q_arg, q_key, q_cost, q_nl = {}, {}, {}, {}
-- Per request, "n" decided now or "s" its stored record answered (the reply's first element).
local marks = {}

-- Reads definition d from ARGV[p]; answers the position after it.
local function parse_definition(d, p)
  local alg = arg_int(p + DEF_ALG, 'alg', ALG_TOKEN_BUCKET, ALG_CONCURRENCY)
  local mode = arg_int(p + DEF_MODE, 'mode', MODE_HARD, MODE_SHADOW)
  local p1, p2 = arg_int(p + DEF_P1, 'p1', 0, MAX), arg_int(p + DEF_P2, 'p2', 0, MAX)
  local p3, p4 = arg_int(p + DEF_P3, 'p3', 0, MAX), arg_int(p + DEF_P4, 'p4', 0, MAX)
  local nth = arg_int(p + DEF_N_THRESHOLDS, 'nThresholds', 0, MAX_THRESHOLDS)
  -- a period quota's boundaries in order; every other parameter the algorithm uses positive
  if p1 < 1 or (alg == ALG_PERIOD_QUOTA and (p3 <= p2 or p4 <= p3)) or
     (alg ~= ALG_PERIOD_QUOTA and p2 < 1) or (alg == ALG_TOKEN_BUCKET and p3 < 1) then
    arg_fail(p, 'definition ' .. d)
  end
  if alg == ALG_PERIOD_QUOTA and (now < p2 or now >= p4) then fail_stale() end
  local th = nth > 0 and {}
  for k = 1, nth do th[k] = arg_int(p + DEF_N_THRESHOLDS + k, 'threshold', 1, MAX_PERCENT) end
  d_alg[d], d_mode[d], d_p1[d], d_p2[d], d_p3[d], d_p4[d], d_th[d] = alg, mode, p1, p2, p3, p4, th
  p = p + DEF_N_THRESHOLDS + 1 + nth
  if nth == 0 then return p end
  d_id[d] = ARGV[p] or arg_fail(p, 'limitId') -- named in the event when a threshold is crossed
  return p + 1
end

-- Reads request q from ARGV[p], its keys from KEYS[kp]; answers the positions after them.
local function parse_request(q, p, kp)
  if type(ARGV[p + REQ_ID]) ~= 'string' then arg_fail(p + REQ_ID, 'requestId') end
  local cost = arg_int(p + REQ_COST, 'cost', 0, MAX)
  local billing_start = arg_int(p + REQ_BILLING_START, 'billingStartMs', 0, MAX)
  local billing_end = arg_int(p + REQ_BILLING_END, 'billingEndMs', billing_start + 1, MAX)
  local billing_next_end = arg_int(p + REQ_BILLING_NEXT_END, 'billingNextEndMs', billing_end + 1, MAX)
  for at = p + REQ_TENANT, p + REQ_POLICY_VERSION do -- strings, copied into the event
    if type(ARGV[at]) ~= 'string' then arg_fail(at, 'event') end
  end
  arg_int(p + REQ_RECORD_TTL, 'recordTtlMs', MIN_RECORD_TTL_MS, MAX)
  local attempt = ARGV[p + REQ_ATTEMPT]
  if type(attempt) ~= 'string' or #attempt < 1 or #attempt > 64 then arg_fail(p + REQ_ATTEMPT, 'attempt') end
  local nl = arg_int(p + REQ_N_LIMITS, 'nLimits', 0, MAX_LIMITS)
  q_arg[q], q_key[q], q_cost[q], q_nl[q] = p, kp, cost, nl
  kp = kp + KEY_LIMITS
  for at = p + REQ_N_LIMITS + 1, p + REQ_N_LIMITS + nl do
    local alg = d_alg[tonumber(ARGV[at])]
    if not alg then arg_fail(at, 'limit') end
    kp = kp + (alg == ALG_PERIOD_QUOTA and 2 or 1) -- a period quota has two keys: current, next
  end
  if now >= billing_next_end then fail_stale() end
  return p + REQ_N_LIMITS + 1 + nl, kp
end

-- Pass 1: validate the whole batch before any write, so a malformed or stale request can
-- never leave earlier requests of the batch half-written. Answers the number of requests.
local function parse_batch()
  if #PACKED ~= 1 or type(PACKED[1]) ~= 'string' then arg_fail(1, 'packed') end
  local ok, unpacked = pcall(mp_unpack, PACKED[1])
  if not ok or type(unpacked) ~= 'table' then arg_fail(1, 'packed') end
  ARGV = unpacked
  arg_int(ARG_VERSION, 'version', LAYOUT_VERSION, LAYOUT_VERSION)
  local n = arg_int(ARG_N_REQUESTS, 'n', 1, MAX_REQUESTS)
  local nd = arg_int(ARG_N_DEFINITIONS, 'nDefinitions', 0, MAX_DEFINITIONS)
  local p, kp = ARG_DEFINITIONS, 1
  for d = 1, nd do p = parse_definition(d, p) end
  for q = 1, n do p, kp = parse_request(q, p, kp) end
  if kp - 1 ~= #KEYS then arg_fail(kp, 'keys') end
  if p - 1 ~= #ARGV then arg_fail(p, 'trailing') end
  return n
end

-- Scratch of the request being decided, by the limit's position i in it (reused across
-- requests: no table per limit):
--   e_def definition index   e_key state key in use (a period quota's current or next)
--   e_val position of its value in the MGET reply (every algorithm but concurrency)
--   e_fits cost fits   e_over overage   e_cross threshold crossed (percent or 0)
--   e_rem remaining    e_reset resetMs  (as seen without a take, until a take sets them)
--   e_a, e_b, e_c the state read: token bucket tokens, refill remainder; fixed window window, count;
--     sliding window window, current, previous; period quota used, period end ms, 1 if the key
--     exists else 0; concurrency live leases
local e_def, e_key, e_val, e_fits, e_over, e_cross, e_rem, e_reset = {}, {}, {}, {}, {}, {}, {}, {}
local e_a, e_b, e_c, mget_keys = {}, {}, {}, {}

-- One read for the record, the admitted counter and every string-valued limit state (a key
-- known to be missing is then created with SET .. PX: one call instead of INCRBY + PEXPIRE).
local function read_state(q, is_next)
  local ap, k0 = q_arg[q], q_key[q]
  mget_keys[1] = KEYS[k0 + KEY_RECORD]
  mget_keys[2] = KEYS[k0 + (is_next and KEY_ADMITTED_NEXT or KEY_ADMITTED)]
  local m, kk = 2, k0 + KEY_LIMITS
  for i = 1, q_nl[q] do
    local d = tonumber(ARGV[ap + REQ_N_LIMITS + i])
    local alg = d_alg[d]
    e_def[i], e_val[i], e_cross[i] = d, false, 0
    e_key[i] = (alg == ALG_PERIOD_QUOTA and now >= d_p3[d]) and KEYS[kk + 1] or KEYS[kk]
    kk = kk + (alg == ALG_PERIOD_QUOTA and 2 or 1)
    if alg ~= ALG_CONCURRENCY then
      m = m + 1
      mget_keys[m], e_val[i] = e_key[i], m
    end
  end
  return call('MGET', unpack(mget_keys, 1, m))
end

-- `used` units of `limit`: fits, retryAfterMs (`wait_ms`; never above the limit), overage (<= cost).
local function verdict(used, cost, limit, wait_ms)
  local over = used + cost - limit
  if over <= 0 then return true, 0, 0 end
  return false, cost > limit and RETRY_NEVER or wait_ms, over < cost and over or cost
end

-- Checks, by algorithm: read limit i's state `v` (its MGET value) into e_a..e_c, e_rem,
-- e_reset and e_cross, and answer fits, retryAfterMs, overage.
local CHECK = {}
CHECK[ALG_TOKEN_BUCKET] = function(i, cost, v)
  local d = e_def[i]
  local cap, rate, per = d_p1[d], d_p2[d], d_p3[d]
  local tokens, r = cap, 0
  if v then
    local tk, ts, rr = mp_unpack(v)
    -- refill for the time elapsed, at most the time to fill from empty (no overflow)
    local elapsed = math.max(0, math.min(now - ts, ceil_div((cap - tk) * per, rate) + per))
    local acc = elapsed * rate + rr
    tokens, r = tk + floor(acc / per), acc % per
    if tokens >= cap then tokens = cap; r = 0 end
  end
  e_a[i], e_b[i], e_rem[i], e_reset[i] = tokens, r, tokens, ceil_div((cap - tokens) * per - r, rate)
  -- tokens < 0 after a settled overrun: the overage is then more than the cost
  if cost <= tokens then return true, 0, 0 end
  return false, cost > cap and RETRY_NEVER or ceil_div((cost - tokens) * per - r, rate), cost - tokens
end

CHECK[ALG_FIXED_WINDOW] = function(i, cost, v)
  local d = e_def[i]
  local limit, win = d_p1[d], d_p2[d]
  local w, count = floor(now / win), 0
  if v then
    local sw, sn = mp_unpack(v)
    if sw == w then count = sn end
  end
  e_a[i], e_b[i] = w, count
  e_rem[i], e_reset[i] = limit - count, (w + 1) * win - now
  return verdict(count, cost, limit, e_reset[i])
end

CHECK[ALG_SLIDING_WINDOW] = function(i, cost, v)
  local d = e_def[i]
  local limit, win = d_p1[d], d_p2[d]
  local w, cur, prev = floor(now / win), 0, 0
  local e = now - w * win -- ms elapsed in this window
  if v then
    local sw, sc, sp = mp_unpack(v)
    if sw == w then cur, prev = sc, sp
    elseif sw == w - 1 then prev = sc end
  end
  e_a[i], e_b[i], e_c[i] = w, cur, prev
  e_rem[i], e_reset[i] = floor((limit * win - prev * (win - e) - cur * win) / win), win - e
  -- in units × ms: the previous window's count weighs what is left of this window
  local excess = prev * (win - e) + (cur + cost) * win - limit * win
  if excess <= 0 then return true, 0, 0 end
  local over = ceil_div(excess, win)
  if cost > limit then return false, RETRY_NEVER, over < cost and over or cost end
  if cur + cost <= limit then
    -- prev > 0 here; wait until prev's weight has decayed enough in this window
    return false, win - floor((limit - cur - cost) * win / prev) - e, over < cost and over or cost
  end
  -- only the next window can fit it, where today's count becomes `prev`
  return false, (win - e) + win - floor((limit - cost) * win / cur), over < cost and over or cost
end

CHECK[ALG_PERIOD_QUOTA] = function(i, cost, v)
  local d = e_def[i]
  local limit, th = d_p1[d], d_th[d]
  local used = tonumber(v or '0')
  local period_end = now >= d_p3[d] and d_p4[d] or d_p3[d]
  e_a[i], e_b[i], e_c[i] = used, period_end, v and 1 or 0
  e_rem[i], e_reset[i] = limit - used, period_end - now
  for k = 1, th and #th or 0 do
    local pct = th[k]
    if used * 100 < pct * limit and (used + cost) * 100 >= pct * limit and pct > e_cross[i] then e_cross[i] = pct end
  end
  return verdict(used, cost, limit, e_reset[i])
end

CHECK[ALG_CONCURRENCY] = function(i)
  -- live leases only; expired ones are removed when a take writes the key
  local held = call('ZCOUNT', e_key[i], '(' .. now_str, '+inf')
  e_a[i], e_rem[i], e_reset[i] = held, d_p1[e_def[i]] - held, 0
  if held < d_p1[e_def[i]] then return true, 0, 0 end
  local first = call('ZRANGEBYSCORE', e_key[i], '(' .. now_str, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return false, tonumber(first[2]) - now, 1
end

-- Checks every limit of request q; answers kind, limitIndex and retryAfterMs. The first
-- hard limit that does not fit decides, else the first deferring one; retry is the longest wait.
local function check_all(q, vals)
  local deny_idx, defer_idx, retry, is_warned = 0, 0, 0, false
  for i = 1, q_nl[q] do
    local mode = d_mode[e_def[i]]
    local fits, r_after, over = CHECK[d_alg[e_def[i]]](i, q_cost[q], vals[e_val[i]])
    e_fits[i], e_over[i] = fits, over
    if not fits and mode == MODE_HARD and deny_idx == 0 then deny_idx = i end
    if not fits and mode == MODE_DEFER and defer_idx == 0 then defer_idx = i end
    if not fits and (mode == MODE_HARD or mode == MODE_DEFER) and retry ~= RETRY_NEVER then
      retry = (r_after == RETRY_NEVER or r_after > retry) and r_after or retry
    end
    if (not fits and mode == MODE_SOFT) or (e_cross[i] > 0 and mode ~= MODE_SHADOW) then is_warned = true end
  end
  if deny_idx > 0 then return KIND_DENIED, deny_idx, retry end
  if defer_idx > 0 then return KIND_DEFERRED, defer_idx, retry end
  return is_warned and KIND_WARNED or KIND_ALLOWED, 0, 0
end

-- Takes the cost from limit i: writes its new state with its TTL and answers remaining
-- (setting e_reset where the take moves it).
local function take(i, cost, request_id)
  local d = e_def[i]
  local alg, key, limit = d_alg[d], e_key[i], d_p1[d]
  if alg == ALG_TOKEN_BUCKET then
    local rate, per = d_p2[d], d_p3[d]
    local tokens = math.max(0, e_a[i] - cost)
    local r = tokens >= limit and 0 or e_b[i]
    local full_ms = math.max(1, ceil_div((limit - tokens) * per - r, rate))
    call('SET', key, mp_pack(tokens, now, r), 'PX', int(full_ms + TTL_SLACK_MS))
    e_reset[i] = full_ms
    return tokens
  elseif alg == ALG_FIXED_WINDOW then
    local count = e_b[i] + cost
    call('SET', key, mp_pack(e_a[i], count), 'PX', int(e_reset[i] + TTL_SLACK_MS))
    return limit - count
  elseif alg == ALG_SLIDING_WINDOW then
    local win, cur = d_p2[d], e_b[i] + cost
    -- kept through the next window, which reads this one's count as `previous`
    call('SET', key, mp_pack(e_a[i], cur, e_c[i]), 'PX', int(e_reset[i] + win + TTL_SLACK_MS))
    return floor((limit * win - e_c[i] * e_reset[i] - cur * win) / win)
  elseif alg == ALG_PERIOD_QUOTA then
    if cost == 0 then return e_rem[i] end
    if e_c[i] == 1 then return limit - call('INCRBY', key, int(cost)) end
    call('SET', key, int(cost), 'PX', int((e_b[i] - now) + QUOTA_KEEP_MS))
    return limit - cost
  end
  call('ZREMRANGEBYSCORE', key, '-inf', now)
  call('ZADD', key, now + d_p2[d], request_id)
  -- the set lives as long as its last lease; resetMs is when its first one ends
  local last = call('ZRANGE', key, -1, -1, 'WITHSCORES')
  call('PEXPIREAT', key, tonumber(last[2]) + TTL_SLACK_MS)
  e_reset[i] = tonumber(call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) - now
  return e_rem[i] - 1
end

-- Counts an admitted cost into the tenant's counter of the billing period it counts in.
local function count_admitted(q, is_next, is_counted)
  local cost, key = q_cost[q], mget_keys[2]
  if cost == 0 then return end
  if is_counted then return call('INCRBY', key, int(cost)) end
  local period_end = tonumber(ARGV[q_arg[q] + (is_next and REQ_BILLING_NEXT_END or REQ_BILLING_END)])
  call('SET', key, int(cost), 'PX', int((period_end - now) + ADMITTED_KEEP_MS))
end

-- Usage events of the call, by stream key in order of first use: each one line of 8 values (see the header).
local stream_keys, stream_events, stream_counts = {}, {}, {}
-- Admitted requests of the call, in order: their reply tables and record keys (written once the stream id is known),
-- and by record key the first admission of a request id in this call (a twin later in the batch answers it).
local adm_q, adm_reply, adm_stream, pending = {}, {}, {}, {}

-- Queues request q's usage event for its stream; `bp` names the billing period it counts in.
local function queue_event(q, is_next)
  local ap, key = q_arg[q], KEYS[q_key[q] + KEY_STREAM]
  -- thresholds this request crossed (not on shadow limits): `warn` = limitId:percent[,...]
  local warn = ''
  for i = 1, q_nl[q] do
    if e_cross[i] > 0 and d_mode[e_def[i]] ~= MODE_SHADOW then
      local item = d_id[e_def[i]] .. ':' .. e_cross[i]
      warn = warn == '' and item or (warn .. ',' .. item)
    end
  end
  local list = stream_events[key]
  if not list then
    list = {}
    stream_keys[#stream_keys + 1], stream_events[key], stream_counts[key] = key, list, 0
  end
  stream_counts[key] = stream_counts[key] + 1
  list[#list + 1] = ARGV[ap + REQ_ID] .. ' ' .. ARGV[ap + REQ_TENANT] .. ' ' .. ARGV[ap + REQ_KEY_ID] .. ' ' ..
    ARGV[ap + REQ_OPERATION] .. ' ' .. int(q_cost[q]) .. ' ' .. ARGV[ap + REQ_POLICY_VERSION] .. ' ' ..
    int(ARGV[ap + (is_next and REQ_BILLING_END or REQ_BILLING_START)]) .. ' ' .. warn
  return key
end

-- Pass 2: decides request q, all or nothing; answers its packed reply, or false for an admitted one (packed, recorded
-- and answered by finish once its stream entry exists).
local function decide(q)
  local ap, nl = q_arg[q], q_nl[q]
  -- the billing period the request counts in: the admitted counter's and the event's `bp`
  local is_next = now >= tonumber(ARGV[ap + REQ_BILLING_END])
  local vals = read_state(q, is_next)
  local twin = pending[mget_keys[1]]
  if vals[1] or twin then
    -- a retry of an admitted request: the first decision as stored, nothing taken; the caller compares the
    -- attempt token (its own attempt's record is its own first decision, any other a replay)
    marks[q] = 's'
    return vals[1] or twin
  end
  marks[q] = 'n'
  local kind, idx, retry = check_all(q, vals)
  local is_admitted = kind == KIND_ALLOWED or kind == KIND_WARNED
  -- built at its final size for up to 3 limits (23 elements with the attempt token): no rehash while it is filled
  local reply = nl > 3 and { kind, now, idx, retry, '', 0, nl } or
    { kind, now, idx, retry, '', 0, nl, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, false }
  for i = 1, nl do
    -- an admitted request takes from every limit, but from a shadow limit only when it fits
    local took = is_admitted and (e_fits[i] or d_mode[e_def[i]] ~= MODE_SHADOW)
    local rem = took and take(i, q_cost[q], ARGV[ap + REQ_ID]) or e_rem[i]
    local at = REPLY_HEAD + (i - 1) * REPLY_PER_LIMIT
    reply[at + 1], reply[at + 2], reply[at + 4], reply[at + 5] = rem < 0 and 0 or rem, e_reset[i], e_over[i], e_cross[i]
    reply[at + 3] = (e_fits[i] and 0 or FLAG_EXCEEDED) + (took and FLAG_TOOK or 0)
  end
  for k = REPLY_HEAD + nl * REPLY_PER_LIMIT + 1, REPLY_HEAD + 3 * REPLY_PER_LIMIT + 1 do reply[k] = nil end
  if not is_admitted then return mp_pack(reply) end
  count_admitted(q, is_next, vals[2])
  reply[REPLY_HEAD + nl * REPLY_PER_LIMIT + 1] = ARGV[ap + REQ_ATTEMPT]
  local a = #adm_q + 1
  adm_q[a], adm_reply[a], adm_stream[a] = q, reply, queue_event(q, is_next)
  pending[mget_keys[1]] = a -- a twin answers entry a's record (read back in finish)
  return false
end

-- Appends one stream entry per stream with the call's events, then records and answers every admitted request
-- (its reply names its entry) and every twin of one.
local function finish(out)
  local ids = {}
  for _, key in ipairs(stream_keys) do
    ids[key] = call('XADD', key, '*', 'type', 'usage.reserved.batch.v1', 'time_ms', now_str,
      'n', int(stream_counts[key]), 'events', table.concat(stream_events[key], '\n'))
  end
  local records = {}
  for a = 1, #adm_q do
    local q, reply = adm_q[a], adm_reply[a]
    reply[REPLY_STREAM_ID] = ids[adm_stream[a]]
    local record = mp_pack(reply)
    call('SET', KEYS[q_key[q] + KEY_RECORD], record, 'PX', int(ARGV[q_arg[q] + REQ_RECORD_TTL]))
    records[a], out[q + 1] = record, record
  end
  for q = 1, #out - 1 do
    if type(out[q + 1]) == 'number' then out[q + 1] = records[out[q + 1]] end
  end
end

local ok, n = pcall(parse_batch)
if not ok then return redis.error_reply(tostring(n):find('^ERR_') and n or 'ERR_SCRIPT ' .. tostring(n)) end
local out = { false }
for q = 1, n do out[q + 1] = decide(q) end
finish(out)
out[1] = table.concat(marks)
return out
