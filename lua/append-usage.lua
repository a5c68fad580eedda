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
-- Errors:     "ERR_ARG <name> at <position>" when ARGV is malformed (nothing written)
-- Data:       v1. The marker holds only the stream id.

local ARG_DEDUPE_TTL, ARG_ADMITTED_DELTA, ARG_ADMITTED_TTL, ARG_CHECK_RECORD, ARG_FIELDS = 1, 2, 3, 4, 5
local KEY_STREAM, KEY_MARKER, KEY_RECORD, KEY_ADMITTED = 1, 2, 3, 4
local CHECK_NONE, CHECK_DECISION, CHECK_SETTLEMENT = '0', 'd', 's'
-- The request record (see decide.lua, settle.lua): the decision reply, then the settlement.
local REPLY_STREAM_ID, SETTLED_STREAM_ID = 5, 2
local IS_NEW, IS_RECORDED = 1, 0

local MAX = 9007199254740991 -- 2^53 - 1: the largest integer a Lua number holds exactly
local MIN_TTL_MS = 1000

-- Validation raises 'ERR_ARG <name> at <index>'; the pcall around the parse replies it (a bug: ERR_SCRIPT).
local function arg_fail(index, name) error('ERR_ARG ' .. name .. ' at ' .. index, 0) end
local function arg_int(index, name, min, max)
  local v = tonumber(ARGV[index])
  if v == nil or v % 1 ~= 0 or v < min or v > max then arg_fail(index, name) end
  return v
end

-- Validates every argument before any write; answers them parsed.
local function parse_args()
  local parsed = {
    dedupe_ttl = arg_int(ARG_DEDUPE_TTL, 'dedupeTtlMs', MIN_TTL_MS, MAX),
    delta = arg_int(ARG_ADMITTED_DELTA, 'admittedDelta', -MAX, MAX),
    admitted_ttl = arg_int(ARG_ADMITTED_TTL, 'admittedTtlMs', MIN_TTL_MS, MAX),
    check_record = ARGV[ARG_CHECK_RECORD],
  }
  local check = parsed.check_record
  if check ~= CHECK_NONE and check ~= CHECK_DECISION and check ~= CHECK_SETTLEMENT then
    arg_fail(ARG_CHECK_RECORD, 'checkRecord')
  end
  local n_args = #ARGV - ARG_FIELDS + 1
  if n_args < 2 or n_args % 2 ~= 0 then arg_fail(ARG_FIELDS, 'fields') end
  return parsed
end

local ok, parsed = pcall(parse_args)
if not ok then return redis.error_reply(tostring(parsed):find('^ERR_') and parsed or 'ERR_SCRIPT ' .. tostring(parsed)) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local seen = redis.call('GET', KEYS[KEY_MARKER])
if seen then return { IS_RECORDED, now_ms, seen } end
if parsed.check_record ~= CHECK_NONE then
  local stored = redis.call('GET', KEYS[KEY_RECORD])
  if stored then
    local decision, settlement = cmsgpack.unpack(stored)
    if parsed.check_record == CHECK_DECISION then return { IS_RECORDED, now_ms, decision[REPLY_STREAM_ID] } end
    if settlement then return { IS_RECORDED, now_ms, settlement[SETTLED_STREAM_ID] } end
  end
end

local entry = {}
for i = ARG_FIELDS, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'time_ms'
entry[#entry + 1] = string.format('%d', now_ms)

local id = redis.call('XADD', KEYS[KEY_STREAM], '*', unpack(entry))
redis.call('SET', KEYS[KEY_MARKER], id, 'PX', parsed.dedupe_ttl)
if parsed.delta ~= 0 then
  redis.call('INCRBY', KEYS[KEY_ADMITTED], parsed.delta)
  redis.call('PEXPIRE', KEYS[KEY_ADMITTED], parsed.admitted_ttl)
end
return { IS_NEW, now_ms, id }
