#!/usr/bin/env bash
# The e2e suite on a kind cluster, for hosts with Docker (CI uses the local control plane).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker >/dev/null || { echo "kind-e2e needs Docker; use 'make test' without it" >&2; exit 1; }
command -v kind >/dev/null || { echo "install kind: go install sigs.k8s.io/kind@latest" >&2; exit 1; }
CLUSTER=${KIND_CLUSTER:-tenantflow-e2e}
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
KCFG=$(mktemp)
trap 'rm -f "$KCFG"' EXIT
kind get kubeconfig --name "$CLUSTER" > "$KCFG"
TENANTFLOW_KUBECONFIG=$KCFG .venv/bin/python -m pytest -m "integration or e2e" "$@"
