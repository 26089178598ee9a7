#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy into a cache outside the clone.
# Prints the bin directory on its last line. Idempotent: a complete cache is reused as is.
# Usage: tools/build-binaries.sh [--print-dir] [control-plane|node]
#   control-plane (default): kube-apiserver, controller-manager, scheduler, etcd, kwok, helm
#   node: what real nodes run: kubelet, containerd (+ ctr, the runc shim), CoreDNS, kube-proxy
# Each set has its own cache directory named by its pins, so a changed pin rebuilds only its set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pins.env
source "$here/pins.env"

print_dir=false
[[ "${1:-}" == "--print-dir" ]] && { print_dir=true; shift; }
set_name=${1:-control-plane}
cache_root=${RINGLEADER_CACHE:-$HOME/.cache/ringleader}
case "$set_name" in
  control-plane)
    cache="$cache_root/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
    binaries=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl helm) ;;
  node)
    cache="$cache_root/node-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-coredns-$COREDNS_VERSION"
    binaries=(kubelet containerd ctr containerd-shim-runc-v2 coredns kube-proxy) ;;
  *) echo "unknown binary set: $set_name (control-plane or node)" >&2; exit 2 ;;
esac
bin="$cache/bin"

complete() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
# --print-dir: say where the binaries live (or will), without building anything.
if $print_dir || complete; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "Go 1.26 or newer is needed to build the local cluster" >&2; exit 1; }
mkdir -p "$bin"
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { echo "[build-binaries] $*" >&2; }

build_kubernetes() {  # cmd names under k8s.io/kubernetes/cmd/
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local dir="$work/kubernetes"
  mkdir -p "$dir" && cd "$dir"
  go mod init ringleader.local/k8s-build >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  # Every staging module the release replaces with ./staging is taken at its published version.
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")
  [[ -n "$staging" ]] || { log "no staging modules found in $gomod"; exit 1; }
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    for m in $staging; do echo "replace $m => $m $K8S_STAGING_VERSION"; done
  } >>go.mod
  local ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ver+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ver+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ver+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  local cmd
  for cmd in "$@"; do
    log "building $cmd $K8S_VERSION"
    go build -trimpath -ldflags "-s -w $ver" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
}

build_etcd() {
  local dir="$work/etcd"
  mkdir -p "$dir" && cd "$dir"
  go mod init ringleader.local/etcd-build >/dev/null 2>&1
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >>go.mod
  log "building etcd $ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
}

build_containerd() {
  local dir="$work/containerd" module=github.com/containerd/containerd/v2
  mkdir -p "$dir" && cd "$dir"
  go mod init ringleader.local/containerd-build >/dev/null 2>&1
  echo "require $module $CONTAINERD_VERSION" >>go.mod
  # Static binaries without the snapshotters that need C libraries or kernel features unused here.
  local tags="no_btrfs no_devmapper no_zfs"
  local ver="-X $module/version.Version=$CONTAINERD_VERSION -X $module/version.Package=$module"
  local cmd
  for cmd in containerd ctr containerd-shim-runc-v2; do
    log "building $cmd $CONTAINERD_VERSION"
    go build -trimpath -tags "$tags" -ldflags "-s -w $ver" -o "$bin/$cmd" "$module/cmd/$cmd"
  done
}

build_go_install() {  # module-path version [ldflags]
  log "building $1 $2"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w ${3:-}" "$1@$2"
}

build_control_plane() {
  [[ -x "$bin/etcd" ]] || build_etcd
  [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/kube-scheduler" ]] ||
    build_kubernetes kube-apiserver kube-controller-manager kube-scheduler
  [[ -x "$bin/kwok" ]] || build_go_install sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
  [[ -x "$bin/kwokctl" ]] || build_go_install sigs.k8s.io/kwok/cmd/kwokctl "$KWOK_VERSION"
  [[ -x "$bin/helm" ]] || build_go_install helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
}

build_node() {
  [[ -x "$bin/containerd" && -x "$bin/ctr" && -x "$bin/containerd-shim-runc-v2" ]] || build_containerd
  [[ -x "$bin/coredns" ]] || build_go_install github.com/coredns/coredns "$COREDNS_VERSION"
  [[ -x "$bin/kubelet" ]] || build_kubernetes kubelet
  [[ -x "$bin/kube-proxy" ]] || build_kubernetes kube-proxy
}

"build_${set_name//-/_}"
complete || { log "incomplete build in $bin"; exit 1; }
echo "$bin"
