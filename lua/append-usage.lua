-- append-usage.lua: append one usage event to its shard's stream exactly once, and
-- count its cost into the tenant's admitted counter. The replay path of the
-- degraded-mode spool: events admitted while Redis was unreachable. O(fields).
-- An event is skipped (isNew = 0) when an earlier call appended it (marker) or when
-- the decider itself admitted the same request (its record exists: the script ran
-- but its reply was lost, so the request was also spooled).
-- KEYS[1]     {s:<shard>}:usage:v1                          stream  usage log, the billing record
-- KEYS[2]     {s:<shard>}:e:v1:<eventId>                    string  dedupe marker: the stream id of the first append
-- KEYS[3]     {s:<shard>}:t:<tenant>:r:v1:<requestId>         string  the decider's record of the request (read only)
-- KEYS[4]     {s:<shard>}:t:<tenant>:a:v1:<periodStartMs>     string  admitted units of the event's billing period
-- ARGV[1]     dedupeTtlMs       integer >= 1000   how long a retry of the same event is recognised
-- ARGV[2]     admittedDelta     integer            added to KEYS[4] when appended (negative for refunds)
-- ARGV[3]     admittedTtlMs     integer >= 1000    TTL of KEYS[4] when it is written
-- ARGV[4]     checkRecord       0|d|s              d: skip when KEYS[3] holds an admitted decision, s: a settlement
-- ARGV[5..]   field, value      pairs (>= 1 pair), strings; `time_ms` is added by the script
-- Clock:      redis TIME (effects replication), never ARGV
-- Returns:    {isNew 0|1, nowMs, streamId}   isNew = 0: already recorded (streamId of that entry, or "")
-- Errors:     "ERR_ARG <name>" when ARGV is malformed
-- Data:       v1. The marker holds only the stream id.

local ttl = tonumber(ARGV[1])
if ttl == nil or ttl < 1000 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR_ARG dedupeTtlMs')
end
local delta = tonumber(ARGV[2])
if delta == nil or delta ~= math.floor(delta) or math.abs(delta) > 9007199254740991 then
  return redis.error_reply('ERR_ARG admittedDelta')
end
local admitted_ttl = tonumber(ARGV[3])
if admitted_ttl == nil or admitted_ttl < 1000 or admitted_ttl ~= math.floor(admitted_ttl) then
  return redis.error_reply('ERR_ARG admittedTtlMs')
end
local check_record = ARGV[4]
if check_record ~= '0' and check_record ~= 'd' and check_record ~= 's' then
  return redis.error_reply('ERR_ARG checkRecord')
end
local nargs = #ARGV - 4
if nargs < 2 or nargs % 2 ~= 0 then
  return redis.error_reply('ERR_ARG fields')
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local seen = redis.call('GET', KEYS[2])
if seen then
  return {0, now_ms, seen}
end
if check_record ~= '0' then
  local stored = redis.call('GET', KEYS[3])
  if stored then
    -- the record is msgpack: the decision reply (stream id 5th), then the settlement (2nd)
    local decision, settlement = cmsgpack.unpack(stored)
    if check_record == 'd' then return {0, now_ms, decision[5]} end
    if settlement then return {0, now_ms, settlement[2]} end
  end
end

local entry = {}
for i = 5, #ARGV do
  entry[#entry + 1] = ARGV[i]
end
entry[#entry + 1] = 'time_ms'
entry[#entry + 1] = string.format('%d', now_ms)

local id = redis.call('XADD', KEYS[1], '*', unpack(entry))
redis.call('SET', KEYS[2], id, 'PX', ttl)
if delta ~= 0 then
  redis.call('INCRBY', KEYS[4], delta)
  redis.call('PEXPIRE', KEYS[4], admitted_ttl)
end
return {1, now_ms, id}
