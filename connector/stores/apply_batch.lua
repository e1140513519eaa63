-- Apply one batch of accepted events atomically: dedup markers, session histories,
-- stitches of anonymous sessions into users, event-type and attribution counters.
-- Every effect is keyed by the event's markers, so applying a batch twice changes nothing.
-- ARGV[1]: JSON {settings..., ops: [...]}; see connector/stores/sessions.py for the shape.
-- Returns {admitted, duplicates, stitched, flags}: flags has '1' per event op applied, '0' per
-- duplicate, in op order.
local batch = cjson.decode(ARGV[1])
local admitted, duplicates, stitched = 0, 0, 0
local flags = {}

local function bound(history, seen, newest)
  redis.call('ZREMRANGEBYRANK', history, 0, -(batch.history_length + 1))
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (newest - batch.dedup_window))
  redis.call('ZREMRANGEBYRANK', seen, 0, -(batch.dedup_max_markers + 1))
  redis.call('EXPIRE', history, batch.history_ttl)
  redis.call('EXPIRE', seen, math.max(batch.history_ttl, batch.dedup_window))
end

local function stitch(op)
  if redis.call('SET', op.link, op.user, 'NX', 'EX', batch.history_ttl) then
    redis.call('ZUNIONSTORE', op.user_history, 2, op.user_history, op.session_history,
               'AGGREGATE', 'MAX')
    redis.call('ZUNIONSTORE', op.user_seen, 2, op.user_seen, op.session_seen,
               'AGGREGATE', 'MAX')
    bound(op.user_history, op.user_seen, op.newest)
    stitched = stitched + 1
  end
end

local function source_of(source)
  if redis.call('SISMEMBER', batch.sources_key, source) == 1 then return source end
  if redis.call('SCARD', batch.sources_key) < batch.max_sources then
    redis.call('SADD', batch.sources_key, source)
    return source
  end
  return 'SOURCE_LIMIT_EXCEEDED'
end

local function event(op)
  for _, marker in ipairs(op.markers) do
    if redis.call('ZSCORE', op.seen, marker) then
      duplicates = duplicates + 1
      table.insert(flags, '0')
      return
    end
  end
  for _, marker in ipairs(op.markers) do
    redis.call('ZADD', op.seen, op.ts, marker)
  end
  redis.call('ZADD', op.history, op.ts, op.member)
  bound(op.history, op.seen, op.ts)
  local types = batch.type_prefix .. op.bucket
  local sources = batch.source_prefix .. op.bucket
  redis.call('HINCRBY', types, op.type, 1)
  redis.call('HINCRBY', sources, source_of(op.source), 1)
  redis.call('EXPIRE', types, batch.metrics_ttl)
  redis.call('EXPIRE', sources, batch.metrics_ttl)
  redis.call('ZADD', batch.buckets_key, op.bucket, op.bucket)
  admitted = admitted + 1
  table.insert(flags, '1')
end

for _, op in ipairs(batch.ops) do
  if op.kind == 'stitch' then stitch(op) else event(op) end
end
return {admitted, duplicates, stitched, table.concat(flags)}
