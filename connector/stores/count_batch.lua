-- Add one batch's counts to the event-type and attribution-source counters, once (Redis
-- Cluster only; on one server apply_batch.lua counts in the same script as the histories).
-- KEYS[1]: the journal of batches whose counts are not yet added (metrics:{m:<g>}:pending);
-- every counter key shares its hash tag, so this script runs on one node.
-- ARGV[1]: the batch's token; ARGV[2]: JSON {types: {bucket: {name: n}}, sources: {...}};
-- ARGV[3]: JSON {type_prefix, source_prefix, buckets_key, metrics_ttl}.
-- Returns 1 if the counts were added now, 0 if the batch was counted before or is unknown.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local journal = cjson.decode(entry)
if journal.counted then return 0 end
local counts = cjson.decode(ARGV[2])
local settings = cjson.decode(ARGV[3])

local function flush(by_bucket, prefix)
  for bucket, by_name in pairs(by_bucket) do
    local key = prefix .. bucket
    for name, count in pairs(by_name) do
      redis.call('HINCRBY', key, name, count)
    end
    redis.call('EXPIRE', key, settings.metrics_ttl)
    redis.call('ZADD', settings.buckets_key, bucket, bucket)
  end
end

flush(counts.types, settings.type_prefix)
flush(counts.sources, settings.source_prefix)
journal.counted = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(journal))
return 1
