#!/usr/bin/env bash
# Build the local control plane and its tools from package registries only (Go module proxy,
# Debian), caching them outside the repository. Idempotent: a tool whose cached binary already
# reports the pinned version is skipped, so a fully cached run takes seconds.
#
# Usage: hack/build-tools.sh [all|k8s|etcd|kwok|helm|promtool|kstatus|kubelet|coredns|s3]...
# (`all` leaves out kubelet and coredns: only real nodes need them, `make real-nodes-tools`.)
# Output: $MODELOPS_TOOLS_DIR (default ~/.cache/modelops/tools/k8s-v$K8S_VERSION/bin)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.1}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
HELM_VERSION="${HELM_VERSION:-3.22.0}"
COREDNS_VERSION="${COREDNS_VERSION:-1.14.7}"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-1.8.0}"
OUT="${MODELOPS_TOOLS_DIR:-$HOME/.cache/modelops/tools/k8s-v$K8S_VERSION/bin}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" # fail loudly rather than switch toolchains
export CGO_ENABLED=0
mkdir -p "$OUT"

log() { printf '[build-tools] %s\n' "$*" >&2; }
reports() { # reports TEXT CMD...: whether CMD's output contains TEXT. Not `CMD | grep -q`:
  # grep -q exits at the first match and, under pipefail, the SIGPIPE of a CMD still writing
  # (etcd prints several lines) would read as "not cached" and rebuild, or fail with 141.
  local text=$1 out; shift
  out="$("$@" 2>/dev/null)" || return 1
  [[ "$out" == *"$text"* ]]
}
timed() { # timed NAME CMD...: run and print how long it took
  local name=$1 start; shift; start=$(date +%s)
  "$@"; log "$name: done in $(( $(date +%s) - start ))s"
}

build_k8s() {
  if [ -x "$OUT/kube-apiserver" ] && [ "$("$OUT/kube-apiserver" --version)" = "Kubernetes v$K8S_VERSION" ] \
    && [ -x "$OUT/kube-controller-manager" ] && [ -x "$OUT/kube-scheduler" ] \
    && reports "v$K8S_VERSION" "$OUT/kubectl" version --client; then
    log "kubernetes v$K8S_VERSION: cached"; return
  fi
  go_build_k8s kube-apiserver kube-controller-manager kube-scheduler kubectl
  "$OUT/kube-apiserver" --version
}

# The node components of real nodes (docs/real-nodes.md), from the same module set-up.
build_kubelet() {
  if [ -x "$OUT/kubelet" ] && [ "$("$OUT/kubelet" --version)" = "Kubernetes v$K8S_VERSION" ] \
    && [ -x "$OUT/kube-proxy" ] && [ "$("$OUT/kube-proxy" --version)" = "Kubernetes v$K8S_VERSION" ]; then
    log "kubelet, kube-proxy v$K8S_VERSION: cached"; return
  fi
  go_build_k8s kubelet kube-proxy
  "$OUT/kubelet" --version
}

# Cluster DNS of real nodes: CoreDNS from its Go module.
build_coredns() {
  if reports "CoreDNS-$COREDNS_VERSION" "$OUT/coredns" -version; then
    log "coredns v$COREDNS_VERSION: cached"; return
  fi
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION"
  "$OUT/coredns" -version | sed -n 1p
}

# An S3-compatible server for the artifact tests (harness/s3.py): the Versity S3 Gateway
# (Apache-2.0) with its POSIX backend, from its Go module: about 100 s on 2 cores from an empty
# module and build cache, a 43 MB binary. Its Makefile stamps the version with
# ldflags; without them `versitygw --version` says "git" and the cache check could not work.
build_s3() {
  if reports "Version  : v$VERSITYGW_VERSION" "$OUT/versitygw" --version; then
    log "versitygw v$VERSITYGW_VERSION: cached"; return
  fi
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w -X main.Version=v$VERSITYGW_VERSION" \
    "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION"
  "$OUT/versitygw" --version | sed -n 1p
}

go_build_k8s() { # go_build_k8s CMD...: build k8s.io/kubernetes/cmd/CMD at $K8S_VERSION into $OUT
  local minor staging work gomod pkgs tags ldf p
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  staging="v0.${K8S_VERSION#1.}"
  work="$(mktemp -d)"
  (
    cd "$work"
    go mod init local/k8sbin >/dev/null 2>&1
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
    # paths; replaces only apply in the main module, so map each to its published v0.Y.Z here.
    gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    go mod edit -json "$gomod" >upstream.json
    python3 "$HERE/k8s_replaces.py" upstream.json "$staging" >edits.txt
    # shellcheck disable=SC2046
    go mod edit $(cat edits.txt)
    pkgs="$(for p in "$@"; do printf 'k8s.io/kubernetes/cmd/%s ' "$p"; done)"
    tags="selinux,notest,grpcnotrace"
    # shellcheck disable=SC2046
    go get -tags="$tags" $(for p in $pkgs; do printf '%s@v%s ' "$p" "$K8S_VERSION"; done)
    ldf="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ldf="$ldf -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
      ldf="$ldf -X $p.buildDate=2000-01-01T00:00:00Z"
    done
    # shellcheck disable=SC2086
    go build -mod=mod -trimpath -tags="$tags" -ldflags="$ldf" -o "$OUT/" $pkgs
  )
  rm -rf "$work"
}

build_etcd() {
  if reports "etcd Version: $ETCD_VERSION" "$OUT/etcd" --version; then
    log "etcd v$ETCD_VERSION: cached"; return
  fi
  local work; work="$(mktemp -d)"
  (
    cd "$work"
    go mod init local/etcdbin >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$work"
  "$OUT/etcd" --version | sed -n 1p
}

build_kwok() {
  if reports "$KWOK_VERSION" "$OUT/kwok" --version && [ -d "$OUT/kwok-stages" ]; then
    log "kwok v$KWOK_VERSION: cached"; return
  fi
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  # kwok v0.8 has no built-in stages: take upstream's default set from the module cache.
  local stages f
  stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  rm -rf "$OUT/kwok-stages"; mkdir -p "$OUT/kwok-stages"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cp "$stages/$f" "$OUT/kwok-stages/"
  done
  chmod u+w "$OUT"/kwok-stages/*
  "$OUT/kwok" --version
}

build_helm() {
  if reports "v$HELM_VERSION" "$OUT/helm" version --short; then
    log "helm v$HELM_VERSION: cached"; return
  fi
  # Without these ldflags Helm 3 renders offline (`helm template`, `helm lint`) as if for
  # Kubernetes 1.20; stamp the minor we target so .Capabilities matches the local cluster.
  local kmin="${K8S_VERSION#1.}" v="helm.sh/helm/v3"
  kmin="${kmin%%.*}"
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w \
    -X $v/internal/version.version=v$HELM_VERSION -X $v/internal/version.gitTreeState=clean \
    -X $v/pkg/chartutil.k8sVersionMajor=1 -X $v/pkg/chartutil.k8sVersionMinor=$kmin \
    -X $v/pkg/lint/rules.k8sVersionMajor=1 -X $v/pkg/lint/rules.k8sVersionMinor=$kmin" \
    "$v/cmd/helm@v$HELM_VERSION"
  "$OUT/helm" version --short
}

build_promtool() {
  if [ -x "$OUT/promtool" ] && [ -x "$OUT/prometheus" ] && [ -x "$OUT/alertmanager" ] \
    && [ -f "$OUT/alertmanager-templates/default.tmpl" ]; then
    log "prometheus, promtool, alertmanager: cached"; return
  fi
  # Unpack Debian's packages instead of installing them: installing starts daemons on :9090/:9093.
  local work; work="$(mktemp -d)"
  (
    cd "$work"
    apt-get download prometheus prometheus-alertmanager >/dev/null 2>&1 \
      || { apt-get update >/dev/null; apt-get download prometheus prometheus-alertmanager; }
    for deb in ./*.deb; do dpkg-deb -x "$deb" x; done
    install -m0755 x/usr/bin/promtool x/usr/bin/prometheus x/usr/bin/prometheus-alertmanager "$OUT/"
    mv "$OUT/prometheus-alertmanager" "$OUT/alertmanager"
    # Debian's Alertmanager reads its notification templates from this fixed path.
    rm -rf "$OUT/alertmanager-templates"
    cp -r x/usr/share/prometheus/alertmanager "$OUT/alertmanager-templates"
  )
  rm -rf "$work"
  "$OUT/promtool" --version 2>&1 | sed -n 1p
}

build_kstatus() {
  # Our own small program (hack/kstatus; go.mod pins sigs.k8s.io/cli-utils and the k8s
  # libraries): rebuilt whenever its sources change, recorded by their digest.
  local src="$HERE/kstatus" sum
  sum="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -d' ' -f1)"
  if [ -x "$OUT/kstatus" ] && [ "$(cat "$OUT/kstatus.sha256" 2>/dev/null)" = "$sum" ]; then
    log "kstatus: cached"; return
  fi
  (cd "$src" && go build -mod=readonly -buildvcs=false -trimpath -ldflags "-s -w" -o "$OUT/kstatus" .)
  echo "$sum" >"$OUT/kstatus.sha256"
  echo '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"probe"}}' | "$OUT/kstatus" >/dev/null
  log "kstatus: built from $src"
}

what=("$@"); [ ${#what[@]} -gt 0 ] || what=(all)
for w in "${what[@]}"; do
  case "$w" in
    all) for t in k8s etcd kwok promtool helm kstatus s3; do timed "$t" "build_$t"; done ;;
    k8s | etcd | kwok | helm | promtool | kstatus | kubelet | coredns | s3) timed "$w" "build_$w" ;;
    *) log "unknown tool: $w"; exit 2 ;;
  esac
done
echo "$OUT"
