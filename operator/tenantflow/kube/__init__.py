"""The thin Kubernetes adapter: the only place (with controllers/) that talks to the API."""
