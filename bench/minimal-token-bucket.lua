-- minimal-token-bucket.lua: the benchmark's ceiling, not product code. The least
-- work a Redis token bucket can do per call: one key, read, refill, take, write.
-- KEYS[1]   bucket hash {t tokens, ts ms}
-- ARGV[1]   capacity, ARGV[2] refill per second, ARGV[3] cost
-- Clock:    redis TIME
-- Returns:  1 allowed, 0 denied
local cap, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = cap
if st[1] then
  tokens = math.min(cap, tonumber(st[1]) + math.floor((now - tonumber(st[2])) * rate / 1000))
end
if tokens < cost then return 0 end
redis.call('HSET', KEYS[1], 't', tokens - cost, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return 1
