#!/usr/bin/env bash
# Debian packages the project needs beyond Python and Go. Idempotent; skips what is present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have bwrap || need+=(bubblewrap)                           # sandbox: local namespace jail
have go || need+=(golang-go)                               # control plane builds (needs Go >= 1.26)
ldconfig -p 2>/dev/null | grep -q 'libseccomp.so.2 ' || need+=(libseccomp2)  # sandbox seccomp filter
have gcc || need+=(gcc)                                    # the node's pause image (static C)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
# the dev cluster's real node: runtime, network plugins, what kube-proxy/kube-router call
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have iptables || need+=(iptables)
have ipset || need+=(ipset)
have conntrack || need+=(conntrack)
have ip || need+=(iproute2)
# sized volumes (dev node PVs, local jail stores): ext4 images, loop-mounted
[ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || need+=(e2fsprogs)
[ -x /usr/sbin/losetup ] || [ -x /sbin/losetup ] || need+=(mount)
have mmdebstrap || need+=(mmdebstrap)                      # images: a Debian root filesystem
have chromium || need+=(chromium)                          # the web UI's browser tests (Playwright)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! have sudo; then
  echo "missing packages: ${need[*]} (install them with apt-get as root)" >&2; exit 1
fi
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
echo "installing Debian packages: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the containerd service it installs where systemd runs; the dev node runs its
# own instance (its own socket and state), so the system one is not needed.
