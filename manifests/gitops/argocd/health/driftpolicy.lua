-- Argo CD health of a modelops.dev DriftPolicy (Lua 5.1, as Argo CD runs it).
-- The policy's own health, not the model's: Healthy when it evaluates (Ready True, with the
-- drift verdict in the message), Degraded when it cannot (Ready False: no Model, no served
-- version, no reference statistics, an unreadable source), Progressing before its first
-- evaluation of the current generation.
local hs = { status = "Progressing", message = "Waiting for the modelops operator" }

if obj.status == nil or obj.status.observedGeneration == nil then return hs end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end

local ready = nil
local drift = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then ready = c end
    if c.type == "DriftDetected" then drift = c end
  end
end

if ready == nil then return hs end
hs.message = ready.message or ""
if ready.status == "True" then
  hs.status = "Healthy"
  if drift ~= nil and drift.status == "True" then
    hs.message = "Drift detected: " .. (drift.message or "")
  end
elseif ready.status == "False" then
  hs.status = "Degraded"
end
return hs
