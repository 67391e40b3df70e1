-- Argo CD health of a modelratchet.io/ModelRollout (resource.customizations.health.modelratchet.io_ModelRollout).
-- Runs in Argo CD's Lua 5.1 sandbox (gopher-lua with only the base and table libraries and a safe os: no
-- string, no math) with the object as `obj`; JSON numbers arrive as floats.
--   Progressing  no status yet, a spec change not yet observed, a rollout under way, a timed pause or a wait
--                for data (the rollout goes on by itself)
--   Suspended    paused for a person: a manual gate (`pause: {}`) or a warning that blocks, until
--                `modelratchet promote` or `abort` (as Argo CD shows a paused Argo Rollout)
--   Healthy      Idle or Promoted: the desired checkpoint (or the known-good one) is serving
--   Degraded     RolledBack or Failed (git asks for a checkpoint that was rejected), or Ready=False

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

-- Argo CD's sandbox has neither the string nor the math library, so whole numbers (which arrive as floats) are
-- written out digit by digit: tostring(4.0) is "4.0" in Lua 5.3 and later.
local DIGITS = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

local function int(x)
  if type(x) ~= "number" or x % 1 ~= 0 then
    return tostring(x)
  end
  local sign, text = "", ""
  if x < 0 then
    sign, x = "-", -x
  end
  repeat
    local digit = x % 10
    text = DIGITS[digit + 1] .. text
    x = (x - digit) / 10
  until x == 0
  return sign .. text
end

local function nonempty(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "string" and v ~= "" then
      return v
    end
  end
  return nil
end

local function step_label(status)
  local steps = obj.spec and obj.spec.steps
  if status.currentStep == nil or steps == nil then
    return nil
  end
  if status.currentStep >= #steps then
    return "all " .. int(#steps) .. " steps done"
  end
  return "step " .. int(status.currentStep + 1) .. "/" .. int(#steps)
end

local function progress(status)
  local parts = {}
  local step = step_label(status)
  if step ~= nil then
    table.insert(parts, step)
  end
  if status.canaryCheckpoint ~= nil then
    table.insert(parts, "canary " .. status.canaryCheckpoint .. " at " .. int(status.canaryWeight or 0) .. "%")
  end
  return table.concat(parts, ", ")
end

local function with_prefix(prefix, text)
  if prefix == "" then
    return text
  end
  return prefix .. ": " .. text
end

local hs = {}
local status = obj.status
local generation = obj.metadata.generation

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe this ModelRollout"
  return hs
end

-- An invalid spec is marked Failed without observedGeneration (the operator could not read it): report it now.
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = nonempty(status.message, "The rollout failed")
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. int(generation)
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = nonempty(ready.message, ready.reason, "References do not resolve")
  return hs
end

local phase = status.phase
if phase == "Progressing" then
  local c = condition(status, "Progressing")
  hs.status = "Progressing"
  hs.message = with_prefix(progress(status), nonempty(status.message, c and c.message, "Rolling out"))
elseif phase == "Paused" then
  local c = condition(status, "Paused")
  local why = (c ~= nil and nonempty(c.reason)) and ("Paused (" .. c.reason .. ")") or "Paused"
  local waits_for_a_person = c ~= nil and (c.reason == "ManualGate" or c.reason == "WarningBlocked")
  hs.status = waits_for_a_person and "Suspended" or "Progressing"
  hs.message = with_prefix(why, nonempty(status.message, c and c.message, progress(status), "waiting"))
elseif phase == "Promoted" then
  hs.status = "Healthy"
  hs.message = nonempty(status.message, status.stableCheckpoint and ("Serving " .. status.stableCheckpoint), "Promoted")
elseif phase == "Idle" then
  hs.status = "Healthy"
  hs.message = status.stableCheckpoint and ("Serving " .. status.stableCheckpoint) or "Idle"
elseif phase == "RolledBack" then
  -- Why it was rolled back (the condition), then what the operator says now (what to do about spec.checkpoint).
  local c = condition(status, "RolledBack")
  local why = c and nonempty(c.message)
  local now = nonempty(status.message)
  hs.status = "Degraded"
  if why ~= nil and now ~= nil and why ~= now then
    hs.message = why .. ". " .. now
  else
    hs.message = nonempty(now, why, "The candidate checkpoint was rolled back")
  end
else
  hs.status = "Unknown"
  hs.message = "Unrecognised phase " .. tostring(phase)
end
return hs
