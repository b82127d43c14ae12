"""Metrics, structured logs and Kubernetes Events."""
