-- Argo CD health of a modelops.dev TrainingRun (Lua 5.1, as Argo CD runs it).
-- Progressing until the operator has observed the current generation; Healthy once
-- Succeeded is True; Degraded once it is False (status.failure says why); Suspended while
-- spec.suspend holds an unfinished run; Progressing while it is pending or running.
local hs = { status = "Progressing", message = "Waiting for the modelops operator" }

local succeeded = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Succeeded" then succeeded = c end
  end
end
local finished = succeeded ~= nil and (succeeded.status == "True" or succeeded.status == "False")

if obj.spec ~= nil and obj.spec.suspend == true and not finished then
  hs.status = "Suspended"
  hs.message = "Suspended: set spec.suspend to false to start training"
  return hs
end
if obj.status == nil or obj.status.observedGeneration == nil then return hs end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
if succeeded ~= nil and succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = succeeded.message or ""
  return hs
end
if succeeded ~= nil and succeeded.status == "False" then
  hs.status = "Degraded"
  hs.message = succeeded.message or ""
  if obj.status.failure ~= nil then
    hs.message = (obj.status.failure.reason or "") .. ": " .. (obj.status.failure.message or "")
  end
  return hs
end
hs.message = "Phase " .. (obj.status.phase or "Pending")
if succeeded ~= nil and succeeded.message ~= nil and succeeded.message ~= "" then
  hs.message = hs.message .. ": " .. succeeded.message
end
return hs
