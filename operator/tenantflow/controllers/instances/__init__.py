"""The WorkflowInstance controller, one module per concern: `view` (the watched object
decoded), `drive` (one drive's decisions), `revisions`, `advance`, `failures`,
`bookkeeping` (phases, admission slots, usage) and `status_writer` (the one persist)."""

from tenantflow.controllers.instances.controller import InstanceController, InstanceSettings

__all__ = ["InstanceController", "InstanceSettings"]
