-- Apply one batch of accepted events atomically: dedup markers, session histories,
-- interacted items, stitches of anonymous sessions into users, event-type and attribution counters.
-- Every effect is keyed by the event's markers, so applying a batch twice changes nothing.
-- ARGV[1]: JSON {settings..., events: [...], stitches: [...], merges: [...], pending: {...}};
-- see connector/stores/sessions.py. On a Redis Cluster the connector sends each node the
-- events of the subjects it holds, with `pending` set: the counts are then not written here
-- but returned and kept under `pending.anchor` (one of the node's subjects) until the
-- counters' own slot has them (connector/stores/cluster_apply.py); a session's merge into its
-- user comes as a `merges` op with the session's members, read from the session's node.
-- Returns {admitted, duplicates, stitched, flags, counts}: flags has '1' per event applied
-- and '0' per duplicate, in order; counts is JSON when `pending` is set, else ''.
local batch = cjson.decode(ARGV[1])
local admitted, duplicates, stitched = 0, 0, 0
local flags = {}
local touched = {}      -- key prefix of a subject (prefix .. tag) -> its newest event time
local type_counts = {}  -- bucket -> event type -> count
local source_counts = {}
local known_sources = {}

local function touch(subject, ts)
  local newest = touched[subject]
  if newest == nil or ts > newest then
    touched[subject] = ts
  end
end

local function add(counts, bucket, name)
  bucket = tostring(bucket)  -- a string key, so the counts encode as a JSON object
  local by_name = counts[bucket]
  if by_name == nil then
    by_name = {}
    counts[bucket] = by_name
  end
  by_name[name] = (by_name[name] or 0) + 1
end

local function source_of(source)
  if known_sources[source] then return source end
  if redis.call('SISMEMBER', batch.sources_key, source) == 0 then
    if redis.call('SCARD', batch.sources_key) >= batch.max_sources then
      return 'SOURCE_LIMIT_EXCEEDED'
    end
    redis.call('SADD', batch.sources_key, source)
  end
  known_sources[source] = true
  return source
end

local function is_known(seen, markers)
  for _, score in ipairs(redis.call('ZMSCORE', seen, unpack(markers))) do
    if score then return true end
  end
  return false
end

local function event(op)
  local subject = batch.prefix .. op.tag
  local seen = subject .. batch.seen_suffix
  if is_known(seen, op.markers) then
    duplicates = duplicates + 1
    table.insert(flags, '0')
    return
  end
  local scored = {}
  for _, marker in ipairs(op.markers) do
    table.insert(scored, op.ts)
    table.insert(scored, marker)
  end
  redis.call('ZADD', seen, unpack(scored))
  -- scored by event time plus the event's place in its partition: ties in arrival order
  redis.call('ZADD', subject .. batch.history_suffix, op.order, op.member)
  -- GT: the pair's score is its latest event time, whatever order events arrive in.
  redis.call('ZADD', subject .. batch.interacted_suffix, 'GT', op.ts, op.interacted)
  touch(subject, op.ts)
  add(type_counts, op.bucket, op.type)
  -- with `pending`, the sources set lives on another node: the connector admits them
  add(source_counts, op.bucket, batch.pending and op.source or source_of(op.source))
  admitted = admitted + 1
  table.insert(flags, '1')
end

local function stitch(op)
  local link = batch.prefix .. op.session_tag .. batch.user_suffix
  if redis.call('SET', link, op.user, 'NX', 'EX', batch.history_ttl) then
    local user = batch.prefix .. op.user_tag
    local session = batch.prefix .. op.session_tag
    for _, suffix in ipairs({batch.history_suffix, batch.seen_suffix, batch.interacted_suffix}) do
      redis.call('ZUNIONSTORE', user .. suffix, 2, user .. suffix, session .. suffix,
                 'AGGREGATE', 'MAX')
    end
    -- The user's window counts back from the user's own newest marker (the session's and
    -- the user's merged), not from another subject's event that shares the batch.
    local newest = redis.call('ZRANGE', user .. batch.seen_suffix, -1, -1, 'WITHSCORES')[2]
    touch(user, tonumber(newest) or batch.newest)
    stitched = stitched + 1
  end
end

-- Add members (flat score, member, ... lists) keeping each one's highest score, as the
-- stitch's ZUNIONSTORE ... AGGREGATE MAX does, in chunks that stay below Lua's unpack limit.
local function add_max(key, flat)
  for start = 1, #flat, 2000 do
    redis.call('ZADD', key, 'GT', unpack(flat, start, math.min(start + 1999, #flat)))
  end
end

local function merge(op)
  local user = batch.prefix .. op.user_tag
  add_max(user .. batch.history_suffix, op.history)
  add_max(user .. batch.seen_suffix, op.seen)
  add_max(user .. batch.interacted_suffix, op.interacted)
  local newest = redis.call('ZRANGE', user .. batch.seen_suffix, -1, -1, 'WITHSCORES')[2]
  touch(user, tonumber(newest) or batch.newest)
end

local function bound(subject, newest)
  local history = subject .. batch.history_suffix
  local seen = subject .. batch.seen_suffix
  local interacted = subject .. batch.interacted_suffix
  redis.call('ZREMRANGEBYRANK', history, 0, -(batch.history_length + 1))
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (newest - batch.dedup_window))
  redis.call('ZREMRANGEBYRANK', seen, 0, -(batch.dedup_max_markers + 1))
  redis.call('ZREMRANGEBYRANK', interacted, 0, -(batch.interacted_max + 1))
  redis.call('EXPIRE', history, batch.history_ttl)
  redis.call('EXPIRE', seen, math.max(batch.history_ttl, batch.dedup_window))
  redis.call('EXPIRE', interacted, batch.interacted_ttl)
end

for _, op in ipairs(batch.events) do event(op) end
for _, op in ipairs(batch.stitches or {}) do stitch(op) end
for _, op in ipairs(batch.merges or {}) do merge(op) end
for subject, newest in pairs(touched) do bound(subject, newest) end
if batch.pending then
  local counts = cjson.encode({types = type_counts, sources = source_counts})
  if admitted > 0 then
    redis.call('HSET', batch.pending.anchor, batch.pending.token, counts)
    redis.call('EXPIRE', batch.pending.anchor, batch.pending.ttl)
  end
  return {admitted, duplicates, stitched, table.concat(flags), counts}
end
flush_counts(type_counts, batch.type_prefix, batch.metrics_ttl, batch.buckets_key)
flush_counts(source_counts, batch.source_prefix, batch.metrics_ttl, batch.buckets_key)
return {admitted, duplicates, stitched, table.concat(flags), ''}
