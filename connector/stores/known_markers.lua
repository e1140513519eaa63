-- Which events of a batch are already recorded: one flag per event, '1' if any of its
-- markers is in its subject's dedup set. ARGV[1]: JSON {prefix, seen_suffix, events: [{tag, markers}]}.
local batch = cjson.decode(ARGV[1])
local flags = {}
for _, op in ipairs(batch.events) do
  local seen = batch.prefix .. op.tag .. batch.seen_suffix
  local flag = '0'
  for _, score in ipairs(redis.call('ZMSCORE', seen, unpack(op.markers))) do
    if score then flag = '1' end
  end
  table.insert(flags, flag)
end
return table.concat(flags)
