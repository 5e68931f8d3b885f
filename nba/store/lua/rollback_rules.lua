-- Make the previous published version current again and drop the current one from the history; log the
-- change in `changes` (the board's time axis). Returns the version now current, or false when there is none.
local current_key, history_key, changes_key = KEYS[1], KEYS[2], KEYS[3]
local set_prefix, changes_max = ARGV[1], tonumber(ARGV[2])

local newest = redis.call('LRANGE', history_key, 0, 1)
if #newest < 2 then
  return false
end
redis.call('LPOP', history_key)
redis.call('DEL', set_prefix .. newest[1])
redis.call('SET', current_key, newest[2])
local now = redis.call('TIME')
redis.call('LPUSH', changes_key, cjson.encode({
  at = now[1] * 1000 + math.floor(now[2] / 1000), version = newest[2], kind = 'rollback', previous = newest[1],
}))
redis.call('LTRIM', changes_key, 0, changes_max - 1)
return newest[2]
