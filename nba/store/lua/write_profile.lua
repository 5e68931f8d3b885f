-- Write a profile by compare-and-set: a PATCH merges on what it read, so a concurrent write in between
-- makes it retry instead of losing that write. A profile makes the customer permanent (events of an
-- unknown customer gave it a TTL), and the CRM writing one for an erased id starts a new relationship:
-- its tombstone goes. Returns the new revision, or -1.
local customer_key, erased_key = KEYS[1], KEYS[2]
local expected, attributes, segments, segments_version, updated_ms, erased_field =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]  -- expected: '' must not exist yet, '*' any

local revision = redis.call('HGET', customer_key, F.revision)
if expected ~= '*' and (revision or '') ~= expected then
  return -1
end
local next_revision = tonumber(revision or '0') + 1
redis.call('HSET', customer_key, F.attributes, attributes, F.segments, segments,
           F.segments_version, segments_version, F.updated, updated_ms, F.revision, next_revision)
redis.call('PERSIST', customer_key)
redis.call('HDEL', erased_key, erased_field)
return next_revision
