#!/usr/bin/env bash
# Build the local control plane from Go modules, once per version, into
# ~/.cache/tenantflow/bin/<k8s-version>/ (the caller passes versions and paths). Each tool
# gets its own generated Go module so their dependency graphs never fight; the Go build
# cache lives in ~/.cache as well, so a second run (or a version bump) is incremental.
set -euo pipefail

# Versions and paths come from tenantflow_dev.devcluster.versions (`tenantflow-dev-cluster build`).
: "${K8S_VERSION:?}" "${ETCD_VERSION:?}" "${KWOK_VERSION:?}" "${HELM_VERSION:?}" "${KUBE_ROUTER_VERSION:?}"
: "${CLI_UTILS_VERSION:?}" "${KSTATUS_SOURCE:?}"
: "${TENANTFLOW_BIN:?}" "${TENANTFLOW_SRC:?}"
BIN=$TENANTFLOW_BIN
SRC=$TENANTFLOW_SRC
export GOCACHE=${GOCACHE:-$HOME/.cache/go-build}
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0

log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[build] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed. Install Go >= 1.26 (https://go.dev/doc/install, or 'apt-get install golang-go' if recent enough) and re-run."

mkdir -p "$BIN" "$SRC"

# newmod DIR MODULE-PATH: a fresh go.mod in DIR
newmod() {
  rm -rf "$1" && mkdir -p "$1"
  printf 'module %s\n\ngo 1.26.0\n' "$2" > "$1/go.mod"
}

# build DIR OUT PKG LDFLAGS: go build with a clear message on failure
build() {
  local dir=$1 out=$2 pkg=$3 ldflags=$4
  log "building $(basename "$out") from $pkg"
  if ! (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg") 2> "$dir/build.log"; then
    cat "$dir/build.log" >&2
    die "building $pkg failed (k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION, $(go version)). The compiler output is above."
  fi
  mv "$out.tmp" "$out"
}

need() { [ ! -x "$BIN/$1" ]; }

# --- Kubernetes: one module requiring k8s.io/kubernetes, every staging module replaced by v0.Y.Z
if need kube-apiserver || need kube-controller-manager || need kube-scheduler || need kubectl || need kubelet || need kube-proxy; then
  dir=$SRC/kubernetes-$K8S_VERSION
  newmod "$dir" tenantflow.dev/controlplane
  stagever="v0.${K8S_VERSION#v1.}"
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  {
    printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk -v v="$stagever" '{print "\t" $1 " => " $1 " " v}'
    printf ')\n'
  } >> "$dir/go.mod"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    if need "$c"; then build "$dir" "$BIN/$c" "k8s.io/kubernetes/cmd/$c" "$ld"; fi
  done
fi

# --- etcd
if need etcd; then
  dir=$SRC/etcd-$ETCD_VERSION
  newmod "$dir" tenantflow.dev/etcd
  printf '\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >> "$dir/go.mod"
  build "$dir" "$BIN/etcd" go.etcd.io/etcd/server/v3 "-s -w"
fi

# --- kwok (fake nodes)
if need kwok; then
  dir=$SRC/kwok-$KWOK_VERSION
  newmod "$dir" tenantflow.dev/kwok
  printf '\nrequire sigs.k8s.io/kwok %s\n' "$KWOK_VERSION" >> "$dir/go.mod"
  build "$dir" "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
fi
# kwok needs Stage objects to move nodes to Ready and pods to Running: take the upstream
# "fast" stages from the same module version, so they always match the binary.
if [ ! -f "$BIN/kwok-stages.yaml" ]; then
  stages=$(cd "$SRC/kwok-$KWOK_VERSION" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    printf -- '---\n'; cat "$stages/$f"
  done > "$BIN/kwok-stages.yaml.tmp"
  mv "$BIN/kwok-stages.yaml.tmp" "$BIN/kwok-stages.yaml"
fi

# --- helm
if need helm; then
  dir=$SRC/helm-$HELM_VERSION
  newmod "$dir" tenantflow.dev/helm
  printf '\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" >> "$dir/go.mod"
  build "$dir" "$BIN/helm" helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
fi

# --- kube-router, netpol-only: NetworkPolicy enforcement on the dev node (iptables + ipset).
# SIG Network's kube-network-policies builds too, but needs nftables' `queue` expression,
# which kernels like this one lack.
if need kube-router; then
  dir=$SRC/kube-router-$KUBE_ROUTER_VERSION
  newmod "$dir" tenantflow.dev/kuberouter
  printf '\nrequire github.com/cloudnativelabs/kube-router/v2 %s\n' "$KUBE_ROUTER_VERSION" >> "$dir/go.mod"
  build "$dir" "$BIN/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "-s -w"
fi

# --- kstatus: a tiny tool around sigs.k8s.io/cli-utils/pkg/kstatus (the health rules of Flux
# and `kubectl wait`), so tests judge the operator's conditions with the real library.
if need kstatus; then
  dir=$SRC/kstatus-$CLI_UTILS_VERSION
  newmod "$dir" tenantflow.dev/kstatus
  cp "$KSTATUS_SOURCE" "$dir/main.go"
  (cd "$dir" && go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1) \
    || die "could not resolve sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION from the Go module proxy"
  build "$dir" "$BIN/kstatus" . "-s -w"
fi

log "binaries ready in $BIN"
echo "$BIN"
