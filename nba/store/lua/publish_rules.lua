-- Publish a validated rule set read from a rules directory: store it, make it current, record it in the
-- history (moving it to the front if it was there) and as the directory's last published version
-- (`source`). Mode 'changed' (start-up, the directory watcher) publishes only a directory whose content
-- differs from the last one published, so a rollback stays in force while the files still hold the set
-- it rolled back from; mode 'force' (an explicit reload) publishes in any case. Sets that fall off the
-- history are deleted. Each change of the current version is logged in `changes` (the board's time
-- axis). Returns 1 when the current version changed.
local current_key, history_key, source_key, changes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local version, set_prefix, history_max, files, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local changes_max = tonumber(ARGV[6])

if mode == 'changed' and redis.call('GET', source_key) == version then
  return 0
end
redis.call('SET', source_key, version)
redis.call('SET', set_prefix .. version, files)
local previous = redis.call('GET', current_key)
if previous == version then
  return 0
end
local now = redis.call('TIME')
redis.call('LPUSH', changes_key, cjson.encode({
  at = now[1] * 1000 + math.floor(now[2] / 1000), version = version, kind = 'publish', previous = previous or nil,
}))
redis.call('LTRIM', changes_key, 0, changes_max - 1)
redis.call('LREM', history_key, 0, version)
redis.call('LPUSH', history_key, version)
redis.call('SET', current_key, version)
for _, old in ipairs(redis.call('LRANGE', history_key, history_max, -1)) do
  redis.call('DEL', set_prefix .. old)
end
redis.call('LTRIM', history_key, 0, history_max - 1)
return 1
