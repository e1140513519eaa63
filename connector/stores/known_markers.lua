-- Which events of a batch are already recorded: one flag per event, '1' if any of its
-- markers is in its subject's dedup set. ARGV[1]: JSON {prefix, seen_suffix}; ARGV[2]: one
-- MessagePack array of three values per event (subject hash tag, content marker, eventId
-- marker or ''). One ZMSCORE per subject, however many of the batch's events are its.
local layout = cjson.decode(ARGV[1])
local values = cmsgpack.unpack(ARGV[2])
local subjects, firsts_of = by_subject(values, 3)
local known = {}  -- tag -> set of its markers that are recorded
for _, tag in ipairs(subjects) do
  local seen = layout.prefix .. tag .. layout.seen_suffix
  known[tag] = known_of(seen, markers_at(values, firsts_of[tag]))
end

local flags = {}
for at = 1, #values, 3 do
  table.insert(flags, is_known(known[values[at]], values, at) and '1' or '0')
end
return table.concat(flags)
