-- Put in front of apply_batch.lua and known_markers.lua when they are loaded
-- (connector/stores/sessions.py, _script): how both find which markers a subject holds.
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
