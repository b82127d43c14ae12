"""`make bench`: run every benchmark module's main() (results in bench/results/)."""

import sys

from bench import (
    engine_bench,
    latency_bench,
    latest,
    pod_bench,
    sandbox_bench,
    scale_bench,
    supervisor_bench,
    tenant_bench,
    throughput_bench,
)

MODULES = {
    "engine": engine_bench,
    "sandbox": sandbox_bench,
    "pods": pod_bench,
    "tenants": tenant_bench,
    "supervisor": supervisor_bench,
    "throughput": throughput_bench,
    "latency": latency_bench,
    "scale": scale_bench,
}

for name in sys.argv[1:] or MODULES:
    MODULES[name].main()
latest.main()
