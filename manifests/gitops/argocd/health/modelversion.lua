-- Argo CD health of a modelops.dev ModelVersion (Lua 5.1, as Argo CD runs it).
-- Progressing until the operator has observed the current generation or while a rollout of
-- the version is under way (Ready Unknown); Healthy when Ready is True, and for a Retired
-- version (retirement is the record's final, intended state); Degraded when Ready is False
-- otherwise (its Model is missing, or its rollout failed).
local hs = { status = "Progressing", message = "Waiting for the modelops operator" }

if obj.status == nil or obj.status.observedGeneration == nil then return hs end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then ready = c end
  end
end

if obj.status.phase == "Retired" then
  hs.status = "Healthy"
  hs.message = "Retired: " .. (obj.status.retiredReason or "")
  return hs
end
if ready == nil then return hs end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  hs.status = "Degraded"
end
hs.message = ready.message or ""
return hs
