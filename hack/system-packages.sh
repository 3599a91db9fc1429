#!/usr/bin/env bash
# Install the Debian packages the tests need, only those missing (apt-get).
#
#   openssl, util-linux     the local control plane's PKI; unshare (mount namespaces)
#   lua5.4                 the Argo CD health checks are tested with a real interpreter
#   podman, buildah, runc  build and run the images (hack/images.sh); crun does not work here
#   debootstrap            makes the images' Python base from Debian packages
#   containerd, containernetworking-plugins, catatonit, nftables, iptables, conntrack,
#   iproute2                real nodes: container runtime, pod networking, pause process,
#                          kube-proxy's nftables mode
#
# Usage: hack/system-packages.sh [base|images|nodes|all]   (default: all)
set -euo pipefail

BASE=(openssl util-linux lua5.4)
IMAGES=(podman buildah runc debootstrap uidmap)
NODES=(containerd runc containernetworking-plugins catatonit nftables iptables conntrack iproute2)

case "${1:-all}" in
  base) want=("${BASE[@]}") ;;
  images) want=("${IMAGES[@]}") ;;
  nodes) want=("${NODES[@]}") ;;
  all) want=("${BASE[@]}" "${IMAGES[@]}" "${NODES[@]}") ;;
  *) echo "usage: $0 [base|images|nodes|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[system-packages] all present: ${want[*]}" >&2
  exit 0
fi
echo "[system-packages] installing: ${missing[*]}" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
