"""The API: pydantic models of every spec and status, the single source of the CRDs.

No I/O here. `tenantflow.api.generate` turns the models into `crds/*.yaml`.
"""

GROUP = "tenantflow.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
