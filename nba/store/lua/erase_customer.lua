-- Delete every key of the customer and leave a tombstone (a hash of the id, not the id) so that late
-- events and decisions record nothing; tombstones of this slot that have run out are dropped, and the
-- bucket expires with its newest. The decision records are not declared in KEYS (their ids are only
-- known here); they share the customer's hash tag, so Redis Cluster accepts the access. Returns the
-- number of keys deleted.
local customer_key, index_key, contacts_key, shown_key, erased_key, requests_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local record_prefix, erased_field, erased_until, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

local deleted = 0
for _, id in ipairs(redis.call('ZRANGE', index_key, 0, -1)) do
  deleted = deleted + redis.call('DEL', record_prefix .. id)
end
deleted = deleted + redis.call('DEL', customer_key, index_key, contacts_key, shown_key, requests_key)
local tombstones = redis.call('HGETALL', erased_key)
for i = 1, #tombstones, 2 do
  if tonumber(tombstones[i + 1]) <= now then
    redis.call('HDEL', erased_key, tombstones[i])
  end
end
redis.call('HSET', erased_key, erased_field, erased_until)
redis.call('PEXPIREAT', erased_key, erased_until)
return deleted
