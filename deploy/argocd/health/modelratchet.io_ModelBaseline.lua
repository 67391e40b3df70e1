-- Argo CD health of a modelratchet.io/ModelBaseline (resource.customizations.health.modelratchet.io_ModelBaseline).
-- Runs in Argo CD's Lua 5.1 sandbox (gopher-lua with only the base and table libraries and a safe os: no
-- string, no math) with the object as `obj`.
--   Progressing  not validated yet (no status, a spec change not yet observed, no Ready condition)
--   Healthy      Ready=True: the spec is valid and can judge candidates
--   Degraded     Ready=False: the spec cannot be used
-- A failed validation of a candidate is the rollout's outcome, not the baseline's health: the last verdict
-- is only reported in the message.

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

local function last_validation(status)
  local v = status.lastValidation
  if v == nil or v.verdict == nil then
    return ""
  end
  local text = "; last validation: " .. v.verdict
  if v.checkpoint ~= nil then
    text = text .. " for " .. v.checkpoint
  end
  if v.time ~= nil then
    text = text .. " at " .. v.time
  end
  return text
end

local hs = {}
local status = obj.status
local generation = obj.metadata.generation

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to validate this ModelBaseline"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to validate generation " .. int(generation)
  return hs
end

local ready = condition(status, "Ready")
if ready == nil or (ready.status ~= "True" and ready.status ~= "False") then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition" .. last_validation(status)
elseif ready.status == "True" then
  hs.status = "Healthy"
  local detail = (ready.message ~= nil and ready.message ~= "") and ready.message or "Valid"
  hs.message = detail .. last_validation(status)
else
  hs.status = "Degraded"
  local detail = (ready.message ~= nil and ready.message ~= "") and ready.message or (ready.reason or "Invalid")
  hs.message = detail .. last_validation(status)
end
return hs
