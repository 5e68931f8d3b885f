-- Take the learner's lease when free, or renew it when it is ours: 1 if held.
local lease_key = KEYS[1]
local token, lease_ms = ARGV[1], ARGV[2]

local holder = redis.call('GET', lease_key)
if holder and holder ~= token then
  return 0
end
redis.call('SET', lease_key, token, 'PX', lease_ms)
return 1
