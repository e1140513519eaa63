-- Put in front of apply_batch.lua and known_markers.lua when they are loaded
-- (connector/stores/sessions.py, _script): how both group a batch's events by subject and
-- find which markers a subject holds. Both take the events as one flat array of `stride`
-- values per event, starting with subject hash tag, content marker, eventId marker or ''.
local CHUNK = 2000  -- arguments per call, well below Lua's unpack limit

-- The markers among `markers` that `seen` holds, as a set.
local function known_of(seen, markers)
  local known = {}
  for start = 1, #markers, CHUNK do
    local last = math.min(start + CHUNK - 1, #markers)
    local scores = redis.call('ZMSCORE', seen, unpack(markers, start, last))
    for k = start, last do
      if scores[k - start + 1] then known[markers[k]] = true end
    end
  end
  return known
end

-- The batch's subjects in first-seen order, and each one's events (the index of their
-- first value), in batch order.
local function by_subject(values, stride)
  local subjects, firsts_of = {}, {}
  for at = 1, #values, stride do
    local firsts = firsts_of[values[at]]
    if firsts == nil then
      firsts = {}
      firsts_of[values[at]] = firsts
      table.insert(subjects, values[at])
    end
    table.insert(firsts, at)
  end
  return subjects, firsts_of
end

-- The markers of the events at `firsts`.
local function markers_at(values, firsts)
  local markers = {}
  for _, at in ipairs(firsts) do
    table.insert(markers, values[at + 1])
    if values[at + 2] ~= '' then table.insert(markers, values[at + 2]) end
  end
  return markers
end

-- Whether one of the event's markers is in the set `known`.
local function is_known(known, values, at)
  return known[values[at + 1]] or (values[at + 2] ~= '' and known[values[at + 2]]) or false
end
