-- Make the previous published version current again and drop the current one from the history.
-- Returns the version now current, or false when there is none.
local current_key, history_key = KEYS[1], KEYS[2]
local set_prefix = ARGV[1]

local newest = redis.call('LRANGE', history_key, 0, 1)
if #newest < 2 then
  return false
end
redis.call('LPOP', history_key)
redis.call('DEL', set_prefix .. newest[1])
redis.call('SET', current_key, newest[2])
return newest[2]
