-- Which events of a batch are already recorded: one flag per event, '1' if any of its
-- markers is in its subject's dedup set. ARGV[1]: JSON {prefix, seen_suffix}; ARGV[2]: one
-- MessagePack array of three values per event (subject hash tag, content marker, eventId
-- marker or ''). One ZMSCORE per subject, however many of the batch's events are its.
local layout = cjson.decode(ARGV[1])
local values = cmsgpack.unpack(ARGV[2])
local subjects, markers_of = {}, {}
for at = 1, #values, 3 do
  local markers = markers_of[values[at]]
  if markers == nil then
    markers = {}
    markers_of[values[at]] = markers
    table.insert(subjects, values[at])
  end
  table.insert(markers, values[at + 1])
  if values[at + 2] ~= '' then table.insert(markers, values[at + 2]) end
end

local known = {}  -- tag -> set of its markers that are recorded
for _, tag in ipairs(subjects) do
  known[tag] = known_of(layout.prefix .. tag .. layout.seen_suffix, markers_of[tag])
end

local flags = {}
for at = 1, #values, 3 do
  local found = known[values[at]]
  local flag = '0'
  if found[values[at + 1]] or (values[at + 2] ~= '' and found[values[at + 2]]) then flag = '1' end
  table.insert(flags, flag)
end
return table.concat(flags)
