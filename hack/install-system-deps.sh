#!/usr/bin/env bash
# Debian packages the project needs beyond Python and Go. Idempotent; skips what is present.
set -euo pipefail
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)   # sandbox: local namespace jail
command -v go >/dev/null 2>&1 || need+=(golang-go)        # control plane builds (needs Go >= 1.26)
ldconfig -p 2>/dev/null | grep -q 'libseccomp.so.2 ' || need+=(libseccomp2)  # sandbox seccomp filter
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "missing packages: ${need[*]} (install them with apt-get as root)" >&2; exit 1
fi
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
echo "installing Debian packages: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
