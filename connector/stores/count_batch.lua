-- Add a batch's counts to the event-type and attribution-source counters, each node part's
-- once (Redis Cluster only; on one server apply_batch.lua counts in the same script as the
-- histories). KEYS[1]: the journal of batches whose counts are not all added yet
-- (metrics:{m:<g>}:pending); every counter key shares its hash tag, so this runs on one node.
-- ARGV[1]: the batch's token; ARGV[2]: JSON [[anchor, {types: {bucket: {name: n}},
-- sources: {...}}], ...], the counts each part kept under its anchor; ARGV[3]: JSON
-- {type_prefix, source_prefix, buckets_key, metrics_ttl}.
-- The journal entry lists the anchors already counted, so the batch's owner and a recovery
-- may both send a part's counts, in any order: they are added once.
-- Returns how many parts were added now (0 for a batch no longer in the journal).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local journal = cjson.decode(entry)
local settings = cjson.decode(ARGV[3])
local counted = {}
for _, anchor in ipairs(journal.counted) do counted[anchor] = true end

local added = 0
for _, part in ipairs(cjson.decode(ARGV[2])) do
  local anchor, counts = part[1], part[2]
  if not counted[anchor] then
    flush_counts(counts.types, settings.type_prefix, settings.metrics_ttl, settings.buckets_key)
    flush_counts(counts.sources, settings.source_prefix, settings.metrics_ttl, settings.buckets_key)
    counted[anchor] = true
    table.insert(journal.counted, anchor)
    added = added + 1
  end
end
if added > 0 then redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(journal)) end
return added
