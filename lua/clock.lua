-- clock.lua: read the Redis clock through the scripting engine. Readiness
-- probe (proves scripts run, unlike PING) and the time source of anything that
-- must agree with the decider's clock. Read-only, O(1).
-- KEYS:       none (a cluster client sends it to any node)
-- ARGV:       none
-- Clock:      redis TIME
-- Returns:    {nowMs}
local t = redis.call('TIME')
return {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
