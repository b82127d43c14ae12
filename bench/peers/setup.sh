#!/usr/bin/env bash
# The peers of `make bench-peers`, built and cached like the control plane:
#  - the Temporal dev server: the temporal CLI from its Go module. v1.5.1 because the newer
#    v1.9.1 replaces a nested module (cliext) the Go proxy does not serve, and
#    `WorkflowEnvironment.start_local()` downloads a binary, which cannot work here;
#  - a venv with the temporalio and DBOS SDKs (requirements.txt).
# Prints the cache directory. Idempotent: a second run only checks.
set -euo pipefail
TEMPORAL_CLI=v1.5.1
PYTHON=${PYTHON:-python3.11}
here=$(cd "$(dirname "$0")" && pwd)
cache=${TENANTFLOW_CACHE:-$HOME/.cache/tenantflow}/peers
mkdir -p "$cache/bin"
if [ ! -x "$cache/bin/temporal-$TEMPORAL_CLI" ]; then
  echo "building the temporal CLI $TEMPORAL_CLI from its Go module (once, a few minutes)" >&2
  tmp=$(mktemp -d)
  GOBIN=$tmp CGO_ENABLED=0 go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI" >&2
  mv "$tmp/temporal" "$cache/bin/temporal-$TEMPORAL_CLI"
  rm -rf "$tmp"
fi
stamp="$cache/venv/.requirements-$(sha256sum "$here/requirements.txt" | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  echo "installing the peers' SDKs into $cache/venv" >&2
  rm -rf "$cache/venv"
  "$PYTHON" -m venv "$cache/venv"
  "$cache/venv/bin/pip" install -q -r "$here/requirements.txt" >&2
  touch "$stamp"
fi
echo "$cache"
