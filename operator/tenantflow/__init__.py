"""tenantflow: isolated, durable, per-tenant workflows on Kubernetes."""

__version__ = "0.2.0-dev"
