-- decide.lua: decide a micro-batch of requests, in order. Each request checks
-- every limit that applies to it; if none denies, it takes its cost from each,
-- records the request (idempotency), bumps the tenant's admitted counter for
-- the billing period and appends one usage event. All or nothing per request:
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
-- ARGV[1]  layout version, must be 2
-- ARGV[2]  number of requests n (1..10000)
-- ARGV[3]  number of limit definitions d (0..1024), then d definitions:
--          alg, mode, p1, p2, p3, p4, nThresholds, thresholds..., and when nThresholds > 0 the limit id
--     alg 1 token bucket   p1 capacity   p2 refill units  p3 per ms       p4 unused
--     alg 2 fixed window   p1 limit      p2 window ms     p3,p4 unused
--     alg 3 sliding window p1 limit      p2 window ms     p3,p4 unused
--     alg 4 period quota   p1 limit      p2 startMs       p3 endMs        p4 nextEndMs
--     alg 5 concurrency    p1 slots      p2 lease ttl ms  p3,p4 unused
--     mode 1 hard, 2 soft, 3 defer, 4 shadow; thresholds: percents of p1 (period quota only)
-- then per request:
--   requestId, cost (integer >= 0), billingEndMs, billingNextEndMs, tenant, keyId,
--   operation, policyVersion (copied into the event), billingStartMs, recordTtlMs (>= 1000),
--   nLimits, then nLimits definition indexes (1-based). The next billing period starts at
--   billingEndMs.
--
-- Clock:   redis TIME (effects replication), read once per call; never ARGV
-- Returns: one array per request (Redis converts the nested tables; no copying in Lua):
--   kind (0 allowed, 1 warned, 2 deferred, 3 denied), nowMs, limitIndex (1-based, 0 = none),
--   retryAfterMs (-1 = never), streamId or "", isReplay 0|1, nLimits,
--   per limit: remaining, resetMs, flags (1 exceeded, 2 took), overage, thresholdCrossed (percent or 0)
-- Errors:  "ERR_ARG <name> at <position>" when ARGV or KEYS are malformed (nothing written);
--          "ERR_STALE_PERIOD <nowMs>" when the caller's periods do not contain Redis' now
-- Data:    v1 (pre-release: no v1 data predates this layout). Bucket values are msgpack
--          sequences of integers: tb (tokens, ts ms, remainder 0..per-1); fw (window, count);
--          sw (window, current, previous). pq: a decimal counter (INCRBY). cc: zset lease ->
--          expiry ms. A changed layout means a new version segment in the key.
--          The usage event: id, type, tenant, key, op, cost, pv, bp (billing period start ms), time_ms,
--          and `warn` (limitId:percent,...) when the request crossed a quota threshold.

local MAX = 9007199254740991
local call, tonumber, floor, unpack = redis.call, tonumber, math.floor, unpack
local mp_pack, mp_unpack = cmsgpack.pack, cmsgpack.unpack
local ARGV, KEYS = ARGV, KEYS

local function int(pos, min, max)
  local v = tonumber(ARGV[pos])
  if v == nil or v % 1 ~= 0 or v < min or v > max then return nil end
  return v
end
local function bad(name, pos) return redis.error_reply('ERR_ARG ' .. name .. ' at ' .. pos) end

if ARGV[1] ~= '2' then return bad('version', 1) end

local t = call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local now_str = string.format('%d', now)
local function stale() return redis.error_reply('ERR_STALE_PERIOD ' .. now_str) end

-- Pass 1: validate the whole batch before any write, so a malformed or stale
-- request can never leave earlier requests of the batch half-written.
local n = int(2, 1, 10000)
if not n then return bad('n', 2) end
local nd = int(3, 0, 1024)
if not nd then return bad('nDefinitions', 3) end

local d_alg, d_mode, d_p1, d_p2, d_p3, d_p4, d_th, d_id = {}, {}, {}, {}, {}, {}, {}, {}
local p = 4
for d = 1, nd do
  local alg, mode = int(p, 1, 5), int(p + 1, 1, 4)
  local p1, p2, p3, p4 = int(p + 2, 0, MAX), int(p + 3, 0, MAX), int(p + 4, 0, MAX), int(p + 5, 0, MAX)
  local nth = int(p + 6, 0, 8)
  if not (alg and mode and p1 and p2 and p3 and p4 and nth) then return bad('definition ' .. d, p) end
  if (alg == 1 and (p1 < 1 or p2 < 1 or p3 < 1)) or
     ((alg == 2 or alg == 3 or alg == 5) and (p1 < 1 or p2 < 1)) or
     (alg == 4 and (p1 < 1 or p3 <= p2 or p4 <= p3)) then
    return bad('definition ' .. d, p)
  end
  if alg == 4 and (now < p2 or now >= p4) then return stale() end
  local th = false
  if nth > 0 then
    th = {}
    for k = 1, nth do
      local v = int(p + 6 + k, 1, 1000)
      if not v then return bad('threshold', p + 6 + k) end
      th[k] = v
    end
  end
  d_alg[d], d_mode[d], d_p1[d], d_p2[d], d_p3[d], d_p4[d], d_th[d] = alg, mode, p1, p2, p3, p4, th
  p = p + 7 + nth
  if nth > 0 then
    -- the limit's id, named in the event when a threshold is crossed
    if ARGV[p] == nil then return bad('limitId', p) end
    d_id[d] = ARGV[p]
    p = p + 1
  end
end

local q_arg, q_key, q_cost, q_nl = {}, {}, {}, {}
local kp = 1
for q = 1, n do
  -- inline checks (a Lua call per argument costs as much as the check)
  local cost, billing_end, billing_next_end, billing_start, record_ttl, nl =
    tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3]), tonumber(ARGV[p + 8]), tonumber(ARGV[p + 9]),
    tonumber(ARGV[p + 10])
  if ARGV[p] == nil then return bad('requestId', p) end
  if not cost or cost % 1 ~= 0 or cost < 0 or cost > MAX then return bad('cost', p + 1) end
  if not billing_start or not billing_end or not billing_next_end or billing_end <= billing_start or billing_next_end <= billing_end then
    return bad('billing', p + 2)
  end
  if ARGV[p + 4] == nil or ARGV[p + 5] == nil or ARGV[p + 6] == nil or ARGV[p + 7] == nil then return bad('event', p + 4) end
  if not record_ttl or record_ttl % 1 ~= 0 or record_ttl < 1000 or record_ttl > MAX then return bad('recordTtlMs', p + 9) end
  if not nl or nl % 1 ~= 0 or nl < 0 or nl > 64 then return bad('nLimits', p + 10) end
  q_arg[q], q_key[q], q_cost[q], q_nl[q] = p, kp, cost, nl
  kp = kp + 4
  for i = 1, nl do
    local d = d_alg[tonumber(ARGV[p + 10 + i])]
    if not d then return bad('limit', p + 10 + i) end
    kp = kp + (d == 4 and 2 or 1)
  end
  if now >= billing_next_end then return stale() end
  p = p + 11 + nl
end
if kp - 1 ~= #KEYS then return bad('keys', kp) end
if p - 1 ~= #ARGV then return bad('trailing', p) end

local function ceil_div(a, b) return floor((a + b - 1) / b) end

-- Pass 2: decide each request in order; each is all or nothing on its own.
-- Per-limit scratch arrays are reused across requests (no table per limit).
local out = {}
local warn_pair = { 'warn', false }
local mk = {}
local e_def, e_key, e_val, e_fits, e_retry, e_over, e_cross = {}, {}, {}, {}, {}, {}, {}
local e_a, e_b, e_c, e_rem, e_reset = {}, {}, {}, {}, {}

for q = 1, n do
  local ap, k0, cost, nl = q_arg[q], q_key[q], q_cost[q], q_nl[q]

  -- one read for the record, the admitted counter and every string-valued limit state
  -- (a key known to be missing is created with SET .. PX: one call instead of INCRBY + PEXPIRE)
  local billing_end = tonumber(ARGV[ap + 2])
  local is_next = now >= billing_end
  mk[1] = KEYS[k0 + 1]
  mk[2] = is_next and KEYS[k0 + 3] or KEYS[k0 + 2]
  local m, kk = 2, k0 + 4
  for i = 1, nl do
    local d = tonumber(ARGV[ap + 10 + i])
    e_def[i] = d
    local alg = d_alg[d]
    if alg == 4 then
      e_key[i] = now >= d_p3[d] and KEYS[kk + 1] or KEYS[kk]
      kk = kk + 2
    else
      e_key[i] = KEYS[kk]
      kk = kk + 1
    end
    if alg ~= 5 then
      m = m + 1
      mk[m] = e_key[i]
      e_val[i] = m
    end
  end
  local vals = call('MGET', unpack(mk, 1, m))

  if vals[1] then
    -- A retry of an admitted request: the first decision, flagged, nothing taken.
    local first = mp_unpack(vals[1])
    first[6] = 1
    out[q] = first
  else
    local deny_idx, defer_idx, retry, is_warned = 0, 0, 0, false
    for i = 1, nl do
      local d = e_def[i]
      local alg, p1 = d_alg[d], d_p1[d]
      local fits, r_after, over, crossed, reset = true, 0, 0, 0, 0
      if alg == 1 then
        local rate, per = d_p2[d], d_p3[d]
        local tokens, r = p1, 0
        local v = vals[e_val[i]]
        if v then
          local tk, ts, rr = mp_unpack(v)
          local elapsed = now - ts
          if elapsed < 0 then elapsed = 0 end
          local full_ms = ceil_div((p1 - tk) * per, rate) + per
          if elapsed > full_ms then elapsed = full_ms end
          local acc = elapsed * rate + rr
          tokens = tk + floor(acc / per)
          r = acc % per
          if tokens >= p1 then tokens = p1; r = 0 end
        end
        e_a[i], e_b[i] = tokens, r
        if cost > p1 then fits = false; r_after = -1
        elseif cost > tokens then fits = false; r_after = ceil_div((cost - tokens) * per - r, rate) end
        if cost > tokens then over = cost - tokens end
      elseif alg == 2 then
        local win = d_p2[d]
        local w = floor(now / win)
        local cnt = 0
        local v = vals[e_val[i]]
        if v then
          local sw, sn = mp_unpack(v)
          if sw == w then cnt = sn end
        end
        e_a[i], e_b[i] = w, cnt
        reset = (w + 1) * win - now
        if cost > p1 then fits = false; r_after = -1
        elseif cnt + cost > p1 then fits = false; r_after = reset end
        if cnt + cost > p1 then over = cnt + cost - p1; if over > cost then over = cost end end
      elseif alg == 3 then
        local win = d_p2[d]
        local w = floor(now / win)
        local e = now - w * win
        local cur, prev = 0, 0
        local v = vals[e_val[i]]
        if v then
          local sw, sc, sp = mp_unpack(v)
          if sw == w then cur, prev = sc, sp
          elseif sw == w - 1 then prev = sc end
        end
        e_a[i], e_b[i], e_c[i] = w, cur, prev
        reset = win - e
        local weighted = prev * (win - e) + (cur + cost) * win
        if cost > p1 then fits = false; r_after = -1
        elseif weighted > p1 * win then
          fits = false
          if cur + cost <= p1 then
            -- prev > 0 here; wait until prev's weight has decayed enough in this window
            r_after = win - floor((p1 - cur - cost) * win / prev) - e
          else
            -- only the next window can fit it, where today's count becomes `prev`
            r_after = (win - e) + win - floor((p1 - cost) * win / cur)
          end
        end
        local excess = weighted - p1 * win
        if excess > 0 then over = ceil_div(excess, win); if over > cost then over = cost end end
      elseif alg == 4 then
        local v = vals[e_val[i]]
        local used = tonumber(v or '0')
        local period_end = now >= d_p3[d] and d_p4[d] or d_p3[d]
        e_a[i], e_b[i], e_c[i] = used, period_end, v and 1 or 0
        reset = period_end - now
        if cost > p1 then fits = false; r_after = -1
        elseif used + cost > p1 then fits = false; r_after = reset end
        if used + cost > p1 then over = used + cost - p1; if over > cost then over = cost end end
        local th = d_th[d]
        if th then
          for k = 1, #th do
            local pct = th[k]
            if used * 100 < pct * p1 and (used + cost) * 100 >= pct * p1 and pct > crossed then crossed = pct end
          end
        end
      else
        -- live leases only; expired ones are removed when a take writes the key
        local held = call('ZCOUNT', e_key[i], '(' .. now_str, '+inf')
        e_a[i] = held
        if held + 1 > p1 then
          fits = false
          over = 1
          local first = call('ZRANGEBYSCORE', e_key[i], '(' .. now_str, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
          r_after = tonumber(first[2]) - now
        end
      end
      e_fits[i], e_retry[i], e_over[i], e_cross[i], e_reset[i] = fits, r_after, over, crossed, reset
      local mode = d_mode[d]
      if not fits then
        if mode == 1 or mode == 3 then
          if mode == 1 and deny_idx == 0 then deny_idx = i end
          if mode == 3 and defer_idx == 0 then defer_idx = i end
          if retry ~= -1 then
            if r_after == -1 then retry = -1 elseif r_after > retry then retry = r_after end
          end
        elseif mode == 2 then
          is_warned = true
        end
      end
      if crossed > 0 and mode ~= 4 then is_warned = true end
    end

    local kind, idx = 0, 0
    if deny_idx > 0 then kind, idx = 3, deny_idx
    elseif defer_idx > 0 then kind, idx = 2, defer_idx
    else
      kind = is_warned and 1 or 0
      retry = 0
    end
    local admitted = kind <= 1

    for i = 1, nl do
      local d = e_def[i]
      local alg, p1 = d_alg[d], d_p1[d]
      local rem
      if admitted and (e_fits[i] or d_mode[d] ~= 4) then
        -- take
        if alg == 1 then
          local rate, per = d_p2[d], d_p3[d]
          local tokens = e_a[i] - cost
          if tokens < 0 then tokens = 0 end
          local r = e_b[i]
          if tokens >= p1 then r = 0 end
          local full = ceil_div((p1 - tokens) * per - r, rate)
          if full < 1 then full = 1 end
          call('SET', e_key[i], mp_pack(tokens, now, r), 'PX', full + 1000)
          rem, e_reset[i] = tokens, full
        elseif alg == 2 then
          local cnt = e_b[i] + cost
          call('SET', e_key[i], mp_pack(e_a[i], cnt), 'PX', e_reset[i] + 1000)
          rem = p1 - cnt
        elseif alg == 3 then
          local win = d_p2[d]
          local cur = e_b[i] + cost
          call('SET', e_key[i], mp_pack(e_a[i], cur, e_c[i]), 'PX', e_reset[i] + win + 1000)
          rem = floor((p1 * win - e_c[i] * e_reset[i] - cur * win) / win)
        elseif alg == 4 then
          local used = e_a[i]
          if cost > 0 then
            if e_c[i] == 1 then
              used = call('INCRBY', e_key[i], cost)
            else
              -- kept a long while past the period end: the audit reads it after the close
              call('SET', e_key[i], cost, 'PX', (e_b[i] - now) + 40 * 86400000)
              used = cost
            end
          end
          rem = p1 - used
        else
          local key = e_key[i]
          call('ZREMRANGEBYSCORE', key, '-inf', now)
          call('ZADD', key, now + d_p2[d], ARGV[ap])
          local last = call('ZRANGE', key, -1, -1, 'WITHSCORES')
          call('PEXPIREAT', key, tonumber(last[2]) + 1000)
          rem = p1 - e_a[i] - 1
          local first = call('ZRANGE', key, 0, 0, 'WITHSCORES')
          e_reset[i] = tonumber(first[2]) - now
        end
      else
        -- remaining as seen without a take (denied, deferred, or a shadow limit that would deny)
        if alg == 1 then
          rem = e_a[i]
          e_reset[i] = ceil_div((p1 - e_a[i]) * d_p3[d] - e_b[i], d_p2[d])
        elseif alg == 2 then rem = p1 - e_b[i]
        elseif alg == 3 then
          local win = d_p2[d]
          rem = floor((p1 * win - e_c[i] * e_reset[i] - e_b[i] * win) / win)
        elseif alg == 4 then rem = p1 - e_a[i]
        else rem = p1 - e_a[i]
        end
      end
      if rem < 0 then rem = 0 end
      e_rem[i] = rem
    end

    local stream_id = ''
    if admitted then
      -- the billing period the request counts in (is_next): the admitted counter's and the event's `bp`
      if cost > 0 then
        if vals[2] then
          call('INCRBY', mk[2], cost)
        else
          -- kept long past the period end: the audit compares it with the ledger after the close
          local aend = is_next and tonumber(ARGV[ap + 3]) or billing_end
          call('SET', mk[2], cost, 'PX', (aend - now) + 400 * 86400000)
        end
      end
      -- thresholds this request crossed (not on shadow limits): `warn` = limitId:percent[,...]
      local warn, nwarn = nil, 0
      for i = 1, nl do
        local d = e_def[i]
        if e_cross[i] > 0 and d_mode[d] ~= 4 then
          local item = d_id[d] .. ':' .. e_cross[i]
          warn = warn and (warn .. ',' .. item) or item
          nwarn = 2
        end
      end
      warn_pair[2] = warn
      stream_id = call('XADD', KEYS[k0], '*',
        'id', ARGV[ap], 'type', 'usage.reserved.v1', 'tenant', ARGV[ap + 4], 'key', ARGV[ap + 5],
        'op', ARGV[ap + 6], 'cost', ARGV[ap + 1], 'pv', ARGV[ap + 7],
        'bp', is_next and ARGV[ap + 2] or ARGV[ap + 8], 'time_ms', now_str, unpack(warn_pair, 1, nwarn))
    end

    local reply = { kind, now, idx, retry, stream_id, 0, nl }
    local rl = 7
    for i = 1, nl do
      local took = admitted and (e_fits[i] or d_mode[e_def[i]] ~= 4)
      reply[rl + 1] = e_rem[i]
      reply[rl + 2] = e_reset[i]
      reply[rl + 3] = (e_fits[i] and 0 or 1) + (took and 2 or 0)
      reply[rl + 4] = e_over[i]
      reply[rl + 5] = e_cross[i]
      rl = rl + 5
    end
    if admitted then call('SET', KEYS[k0 + 1], mp_pack(reply), 'PX', ARGV[ap + 9]) end
    out[q] = reply
  end
end
return out
