"""tenantflow's development tooling: the dev cluster (`devcluster/`, `tenantflow-dev-cluster`),
the image builder and the Containerfiles it agrees with, the fault proxy, the in-memory API
for controller unit tests (`fake_kube`) and the browser helpers of the web UI's tests.

A package of its own (dev/pyproject.toml), installed editable next to tenantflow by
`make venv`: never in tenantflow's wheel or its images, and never imported by the runtime
(.importlinter). Tenants test their workflows with `tenantflow.testing`, which ships.
"""
