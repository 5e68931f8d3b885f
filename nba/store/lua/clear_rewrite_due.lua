-- The rewrite asked for covers the erasures up to `seen`: forget them, unless an erasure since has set a
-- newer time (which then needs a rewrite of its own).
local due_key = KEYS[1]
local seen = ARGV[1]

if redis.call('GET', due_key) == seen then
  return redis.call('DEL', due_key)
end
return 0
