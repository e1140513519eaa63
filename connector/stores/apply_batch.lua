-- Apply one batch of accepted events atomically: dedup markers, session histories,
-- interacted items, stitches of anonymous sessions into users, event-type and attribution counters.
-- Every effect is keyed by the event's markers, so applying a batch twice changes nothing.
-- ARGV[1]: JSON {settings..., stitches: [...], merges: [...], pending: {...}}; ARGV[2]: the
-- events as one MessagePack array, EVENT_FIELDS values each (tag, content marker, eventId
-- marker or '', time, history score, history member, interacted member, event type,
-- attribution source, time bucket); see connector/stores/script_args.py. A subject's events
-- are recorded together, with one call per key, in the order they came (what that saves:
-- docs/performance-log.md, Ingest, session 13). On a Redis Cluster the
-- connector sends each node the events of the subjects it holds, with `pending` set: the
-- counts are then not written here but returned and kept under `pending.anchor` (one of the
-- node's subjects) until the counters' own slot has them (connector/stores/cluster_apply.py);
-- a session's merge into its user comes as a `merges` op with the session's members, read
-- from the session's node.
-- Returns {admitted, duplicates, stitched, flags, counts}: flags has '1' per event applied
-- and '0' per duplicate, in order; counts is JSON when `pending` is set, else ''.
local batch = cjson.decode(ARGV[1])
local EVENT_FIELDS = 10
local values = ARGV[2] and cmsgpack.unpack(ARGV[2]) or {}
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
  local by_name = counts[bucket]  -- a string key, so the counts encode as a JSON object
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

-- Run `command key ...` over a flat list of arguments, CHUNK at a time.
local function each_chunk(command, key, option, flat)
  for start = 1, #flat, CHUNK do
    local last = math.min(start + CHUNK - 1, #flat)
    if option then
      redis.call(command, key, option, unpack(flat, start, last))
    else
      redis.call(command, key, unpack(flat, start, last))
    end
  end
end

-- The events of one subject (the index of their first value each), in batch order: an event
-- is a duplicate if one of its markers is recorded, or belongs to an earlier event of the batch.
local function record(tag, firsts)
  local subject = batch.prefix .. tag
  local seen = subject .. batch.seen_suffix
  local known = known_of(seen, markers_at(values, firsts))
  local scored, history, interacted = {}, {}, {}
  for _, at in ipairs(firsts) do
    local content, by_id = values[at + 1], values[at + 2]
    if is_known(known, values, at) then
      duplicates = duplicates + 1
      flags[at] = '0'
    else
      local ts = values[at + 3]  -- a number
      known[content] = true
      table.insert(scored, ts)
      table.insert(scored, content)
      if by_id ~= '' then
        known[by_id] = true
        table.insert(scored, ts)
        table.insert(scored, by_id)
      end
      -- scored by event time plus the event's place in its partition: ties in arrival order
      table.insert(history, values[at + 4])
      table.insert(history, values[at + 5])
      table.insert(interacted, ts)
      table.insert(interacted, values[at + 6])
      touch(subject, ts)
      admitted = admitted + 1
      flags[at] = '1'
    end
  end
  each_chunk('ZADD', seen, nil, scored)
  each_chunk('ZADD', subject .. batch.history_suffix, nil, history)
  -- GT: the pair's score is its latest event time, whatever order events arrive in.
  each_chunk('ZADD', subject .. batch.interacted_suffix, 'GT', interacted)
end

-- Count the recorded events in batch order (which decides the sources admitted at the limit).
local function count(at)
  local bucket, source = tostring(values[at + 9]), values[at + 8]  -- a JSON object's key
  add(type_counts, bucket, values[at + 7])
  -- with `pending`, the sources set lives on another node: the connector admits them
  add(source_counts, bucket, batch.pending and source or source_of(source))
end

local function record_events()
  local subjects, firsts_of = by_subject(values, EVENT_FIELDS)
  for _, tag in ipairs(subjects) do record(tag, firsts_of[tag]) end
  local ordered = {}
  for at = 1, #values, EVENT_FIELDS do
    table.insert(ordered, flags[at])
    if flags[at] == '1' then count(at) end
  end
  flags = ordered
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

local function merge(op)
  local user = batch.prefix .. op.user_tag
  -- each member keeps its highest score, as the stitch's ZUNIONSTORE ... AGGREGATE MAX does
  each_chunk('ZADD', user .. batch.history_suffix, 'GT', op.history)
  each_chunk('ZADD', user .. batch.seen_suffix, 'GT', op.seen)
  each_chunk('ZADD', user .. batch.interacted_suffix, 'GT', op.interacted)
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

record_events()
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
