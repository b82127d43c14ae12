"""The `tenantflow` command (also installed as the kubectl plugin `kubectl-tenantflow`)."""
