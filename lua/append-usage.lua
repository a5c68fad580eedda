-- append-usage.lua: append one usage event to its shard's stream exactly once,
-- deduplicated by event id. The replay path of the degraded-mode spool (events
-- admitted while Redis was unreachable) and of any producer that may retry.
-- O(number of fields).
-- KEYS[1]     {s:<shard>}:usage:v1               stream  usage log, the billing record
-- KEYS[2]     {s:<shard>}:e:v1:<eventId>         string  dedupe marker: the stream id of the first append
-- ARGV[1]     dedupeTtlMs       integer >= 1000   how long a retry of the same event is recognised
-- ARGV[2..]   field, value      pairs (>= 1 pair), strings; `time_ms` is added by the script
-- Clock:      redis TIME (effects replication), never ARGV
-- Returns:    {isNew 0|1, nowMs, streamId}   isNew = 0 means an earlier call appended it (streamId is that entry)
-- Errors:     "ERR_ARG <name>" when ARGV is malformed
-- Data:       v1. The marker holds only the stream id; a change of shape needs a new version segment.

local ttl = tonumber(ARGV[1])
if ttl == nil or ttl < 1000 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR_ARG dedupeTtlMs')
end
local nargs = #ARGV - 1
if nargs < 2 or nargs % 2 ~= 0 then
  return redis.error_reply('ERR_ARG fields')
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local seen = redis.call('GET', KEYS[2])
if seen then
  return {0, now_ms, seen}
end

local entry = {}
for i = 2, #ARGV do
  entry[#entry + 1] = ARGV[i]
end
entry[#entry + 1] = 'time_ms'
entry[#entry + 1] = tostring(now_ms)

local id = redis.call('XADD', KEYS[1], '*', unpack(entry))
redis.call('SET', KEYS[2], id, 'PX', ttl)
return {1, now_ms, id}
