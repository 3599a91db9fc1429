-- Argo CD health of a modelops.dev Model (Lua 5.1, as Argo CD runs it).
-- Progressing until the operator has observed the current generation; then Degraded when
-- the Degraded condition is True (a failed rollout, a retired pin, lost replicas) except for
-- a pinned version that does not exist yet (it may be registered later: Progressing);
-- Progressing during a rollout and while there is nothing to serve yet; Healthy when Ready
-- is True.
local hs = { status = "Progressing", message = "Waiting for the modelops operator" }

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end

if obj.status == nil or obj.status.observedGeneration == nil then return hs end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end

local ready = condition("Ready")
local progressing = condition("Progressing")
local degraded = condition("Degraded")

if degraded ~= nil and degraded.status == "True" then
  if degraded.reason == "VersionNotFound" then
    hs.message = degraded.message or ""
    return hs
  end
  hs.status = "Degraded"
  hs.message = degraded.message or ""
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.message = progressing.message or ""
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
-- Ready False without Degraded: nothing to serve yet (no version pinned or passing the
-- gates): waiting, not broken. A spec the operator cannot read is broken.
if ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = ready.message or ""
  return hs
end
if ready ~= nil then hs.message = ready.message or hs.message end
return hs
