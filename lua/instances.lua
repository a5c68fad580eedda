-- instances.lua: one API instance's heartbeat, and the count of live instances
-- of its deployment: the divisor of the degraded-mode backstop (resilient.ts).
-- An instance is live while its last heartbeat is younger than staleMs; older
-- members are pruned here. O(log n + pruned).
-- KEYS[1]     {i:<deployment>}:instances:v1                  zset    member instance id, score last heartbeat (ms)
-- ARGV[1]     instanceId        string, 1..128 bytes
-- ARGV[2]     staleMs           integer >= 1
-- Clock:      redis TIME, never ARGV (instances' clocks may disagree)
-- Returns:    {liveCount}
-- Errors:     "ERR_ARG <name> at <position>" when ARGV is malformed (nothing written)
-- Data:       v1. The key expires 2 * staleMs after the last heartbeat of any instance.
local id = ARGV[1]
if id == nil or #id < 1 or #id > 128 then return redis.error_reply('ERR_ARG instanceId at 1') end
local stale = tonumber(ARGV[2])
if stale == nil or stale % 1 ~= 0 or stale < 1 or stale > 86400000 then return redis.error_reply('ERR_ARG staleMs at 2') end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - stale))
redis.call('PEXPIRE', KEYS[1], 2 * stale)
return {redis.call('ZCARD', KEYS[1])}
