-- The decision a decide request id names, while it is remembered (requests.lua): {decision_id,
-- fingerprint, answer}, or nil. The record is not declared in KEYS (its id is only known here); it shares
-- the customer's hash tag, so Redis Cluster accepts the access.
local requests_key = KEYS[1]
local request_id, now, record_prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local did, fp = request_live(requests_key, request_id, record_prefix, now)
if not did then
  return false
end
return {did, fp, redis.call('HGET', record_prefix .. did, 'ans')}
