-- Argo CD health for tenantflow's kinds (Tenant, WorkflowDefinition, WorkflowInstance):
-- the same reading of Ready / Reconciling / Stalled as kstatus (docs/gitops.md).
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the tenantflow operator"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "the operator has not seen the latest spec yet"
  return hs
end
local found = {}
for _, c in ipairs(obj.status.conditions) do
  found[c.type] = c
end
-- the first condition that is True decides, in kstatus' order
local verdicts = {{"Stalled", "Degraded"}, {"Reconciling", "Progressing"}, {"Ready", "Healthy"}}
for _, verdict in ipairs(verdicts) do
  local c = found[verdict[1]]
  if c ~= nil and c.status == "True" then
    hs.status = verdict[2]
    hs.message = c.message
    return hs
  end
end
hs.status = "Progressing"
if found.Ready ~= nil then hs.message = found.Ready.message end
return hs
