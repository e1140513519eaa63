-- Put in front of apply_batch.lua and count_batch.lua when they are loaded
-- (connector/stores/sessions.py, _script): the one way counts reach the counters.
-- Adds counts {bucket: {name: n}} into the hashes prefix .. bucket, keeps each for ttl
-- seconds and indexes the bucket in buckets_key.
local function flush_counts(by_bucket, prefix, ttl, buckets_key)
  for bucket, by_name in pairs(by_bucket) do
    local key = prefix .. bucket
    for name, count in pairs(by_name) do
      redis.call('HINCRBY', key, name, count)
    end
    redis.call('EXPIRE', key, ttl)
    redis.call('ZADD', buckets_key, bucket, bucket)
  end
end
