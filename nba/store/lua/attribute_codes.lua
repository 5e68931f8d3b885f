-- The code of each attribute name, giving new names the next free code (codes are never reused, so
-- every stored profile stays readable). ARGV: the names. Returns the codes.
local codes_key = KEYS[1]

local out = {}
for i, name in ipairs(ARGV) do
  local code = redis.call('HGET', codes_key, name)
  if not code then
    code = redis.call('HLEN', codes_key)
    redis.call('HSET', codes_key, name, code)
  end
  out[i] = tonumber(code)
end
return out
