"""The API: pydantic models of every spec and status, the single source of the CRDs.

No I/O here. `tenantflow.api.generate` turns the models into `crds/*.yaml`.
"""

from tenantflow.vocabulary import API_VERSION, GROUP, VERSION

__all__ = ["API_VERSION", "GROUP", "VERSION"]
