-- Which events of a batch are already recorded: one flag per event, '1' if any of its
-- markers is in its subject's dedup set. ARGV[1]: JSON {prefix, seen_suffix}; ARGV[2]: one
-- MessagePack array of three values per event (subject hash tag, content marker, eventId
-- marker or ''). One ZMSCORE per subject, however many of the batch's events are its.
local layout = cjson.decode(ARGV[1])
local values = cmsgpack.unpack(ARGV[2])
local CHUNK = 2000  -- markers per call, well below Lua's unpack limit
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
  local seen = layout.prefix .. tag .. layout.seen_suffix
  local markers, found = markers_of[tag], {}
  for start = 1, #markers, CHUNK do
    local last = math.min(start + CHUNK - 1, #markers)
    local scores = redis.call('ZMSCORE', seen, unpack(markers, start, last))
    for k = start, last do
      if scores[k - start + 1] then found[markers[k]] = true end
    end
  end
  known[tag] = found
end

local flags = {}
for at = 1, #values, 3 do
  local found = known[values[at]]
  local flag = '0'
  if found[values[at + 1]] or (values[at + 2] ~= '' and found[values[at + 2]]) then flag = '1' end
  table.insert(flags, flag)
end
return table.concat(flags)
