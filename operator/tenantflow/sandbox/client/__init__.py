"""What the operator uses to reach a tenant's runner (signed HTTP, to a pod or a local
socket). Never imports what runs in the pod (`sandbox.pod`); both speak `sandbox.protocol`."""
