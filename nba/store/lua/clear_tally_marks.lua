-- After a learner's commit at `position`: the tally marks its entries consumed are no longer needed.
local customer_key = KEYS[1]
local position = ARGV[1]

local stored = redis.call('HGET', customer_key, F.tally)
if stored then
  marks_store(customer_key, (marks_read(stored, position)))
end
return 0
