"""`make bench`: run every benchmark module's main() (results in bench/results/).
`make bench-peers` (`python -m bench peers`) runs the peer comparison, which builds the
peers first and so is not part of the default run."""

import sys

from bench import (
    archive_bench,
    engine_bench,
    footprint_bench,
    fork_bench,
    ha_bench,
    history_bench,
    latency_bench,
    latest,
    peers_bench,
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
    "fork": fork_bench,
    "pods": pod_bench,
    "tenants": tenant_bench,
    "supervisor": supervisor_bench,
    "throughput": throughput_bench,
    "archive": archive_bench,
    "latency": latency_bench,
    "scale": scale_bench,
    "footprint": footprint_bench,
    "history": history_bench,
}

ON_REQUEST = {"peers": peers_bench, "ha": ha_bench}
# (a count may follow: `python -m bench tenants-at-scale 300`)
AT_SCALE = {"tenants-at-scale": tenant_bench.main_at_scale}

if sys.argv[1:2] and sys.argv[1] in AT_SCALE:
    AT_SCALE[sys.argv[1]]()
else:
    for name in sys.argv[1:] or MODULES:
        {**MODULES, **ON_REQUEST}[name].main()
latest.main()
