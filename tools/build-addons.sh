#!/usr/bin/env bash
# Build the optional schedulers of the local cluster from the Go module proxy: Kueue, Volcano
# (scheduler + controller-manager) and scheduler-plugins' coscheduling. Each goes into a cache
# directory of its own outside the clone, keyed by its pins, with its CRDs copied from the
# module's own files; a complete cache is reused as is.
# Prints "NAME DIR" for each addon asked for (DIR holds bin/ and crds/).
# Usage: tools/build-addons.sh [--print-dir] ADDON...    (ADDON: kueue, volcano, coscheduling)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pins.env
source "$here/pins.env"

cache_root=${RINGLEADER_CACHE:-$HOME/.cache/ringleader}
print_only=false
if [[ "${1:-}" == "--print-dir" ]]; then print_only=true; shift; fi
log() { echo "[build-addons] $*" >&2; }

addon_dir() {
  case $1 in
    kueue) echo "$cache_root/addon-kueue-$KUEUE_VERSION" ;;
    volcano) echo "$cache_root/addon-volcano-$VOLCANO_VERSION-apis-$VOLCANO_APIS_VERSION" ;;
    coscheduling) echo "$cache_root/addon-coscheduling-$SCHEDULER_PLUGINS_VERSION" ;;
    *) log "unknown addon '$1' (known: kueue, volcano, coscheduling)"; exit 2 ;;
  esac
}

addon_binaries() {
  case $1 in
    kueue) echo kueue ;;
    volcano) echo vc-scheduler vc-controller-manager ;;
    coscheduling) echo coscheduling-scheduler ;;
  esac
}

complete() {  # addon
  local dir b
  dir=$(addon_dir "$1")
  [[ -f "$dir/crds/.complete" ]] || return 1
  for b in $(addon_binaries "$1"); do [[ -x "$dir/bin/$b" ]] || return 1; done
}

module_dir() {  # module@version: its extracted directory in the module cache
  go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'
}

module_gomod() {  # module@version: its go.mod file in the module cache
  go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p'
}

# The module's replace lines that name a published version: they are what it was tested with.
# Local-path replacements (./staging/...) have no version and are dropped; the caller replaces
# those modules with a published release.
published_replaces() {  # go.mod
  sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?([^[:space:]/]+[^[:space:]]*)([[:space:]]+v[^[:space:]]+)?[[:space:]]+=>[[:space:]]+([^.[:space:]][^[:space:]]*)[[:space:]]+(v[^[:space:]]+)[[:space:]]*$#replace \2\3 => \4 \5#p' "$1"
}

# Replace lines from the module's own, with the pinned exceptions ("PATH=VERSION ...") swapped in:
# the proxy serves some releases' dependencies only at a neighbouring patch version.
replaces_with_overrides() {  # go.mod overrides
  local line path overridden
  published_replaces "$1" | while read -r line; do
    path=$(awk '{print $2}' <<<"$line")
    overridden=false
    for pair in $2; do [[ "${pair%%=*}" == "$path" ]] && overridden=true; done
    $overridden || echo "$line"
  done
  for pair in $2; do echo "replace ${pair%%=*} => ${pair%%=*} ${pair#*=}"; done
}

throwaway_module() {  # dir name: a fresh module to build another module's commands from
  mkdir -p "$1" && cd "$1"
  go mod init "ringleader.local/$2-build" >/dev/null 2>&1
}

copy_crds() {  # destination source-files... (copied last: its stamp marks the build complete)
  local dest=$1; shift
  mkdir -p "$dest"
  cp "$@" "$dest/"
  chmod u+w "$dest"/*.yaml  # the module cache is read-only; a rebuild must overwrite
  touch "$dest/.complete"
}

build_kueue() {  # dir work
  local module="sigs.k8s.io/kueue@$KUEUE_VERSION"
  # Kueue's go.mod has no replace lines, so `go install` builds it as released.
  log "building kueue $KUEUE_VERSION"
  GOBIN="$1/bin" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
    "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"
  local src
  src=$(module_dir "$module")
  # Its webhooks, as the release registers them (rewritten to this host's address at start).
  mkdir -p "$1/webhooks"
  cp "$src/config/components/webhook/manifests.yaml" "$1/webhooks/"
  chmod u+w "$1/webhooks/manifests.yaml"
  copy_crds "$1/crds" "$src"/config/components/crd/bases/*.yaml
}

build_volcano() {  # dir work
  local module="volcano.sh/volcano@$VOLCANO_VERSION"
  throwaway_module "$2/volcano" volcano
  {
    echo "require volcano.sh/volcano $VOLCANO_VERSION"
    published_replaces "$(module_gomod "$module")"
    # Volcano builds its APIs from ./staging; the release published from the same tree.
    echo "replace volcano.sh/apis => volcano.sh/apis $VOLCANO_APIS_VERSION"
  } >>go.mod
  local flags="-s -w -X volcano.sh/volcano/pkg/version.Version=$VOLCANO_VERSION" cmd
  for cmd in scheduler controller-manager; do
    log "building volcano $cmd $VOLCANO_VERSION"
    go build -trimpath -ldflags "$flags" -o "$1/bin/vc-$cmd" "volcano.sh/volcano/cmd/$cmd"
  done
  copy_crds "$1/crds" "$(module_dir "$module")"/config/crd/volcano/bases/*.yaml
}

build_coscheduling() {  # dir work
  local module="sigs.k8s.io/scheduler-plugins@$SCHEDULER_PLUGINS_VERSION"
  throwaway_module "$2/scheduler-plugins" scheduler-plugins
  {
    echo "require sigs.k8s.io/scheduler-plugins $SCHEDULER_PLUGINS_VERSION"
    replaces_with_overrides "$(module_gomod "$module")" "$SCHEDULER_PLUGINS_REPLACES"
  } >>go.mod
  # It reports the Kubernetes release it is built from: the scheduler framework checks its
  # emulation version against that, and a plugin release number fails the check.
  local k8s
  k8s=$(sed -nE 's#.*k8s.io/kubernetes => k8s.io/kubernetes (v[^[:space:]]+).*#\1#p' go.mod)
  log "building scheduler-plugins' scheduler $SCHEDULER_PLUGINS_VERSION (Kubernetes $k8s)"
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s" \
    -o "$1/bin/coscheduling-scheduler" sigs.k8s.io/scheduler-plugins/cmd/scheduler
  copy_crds "$1/crds" "$(module_dir "$module")"/manifests/coscheduling/crd.yaml
}

work=""
remove_work() { [[ -z "$work" ]] || rm -rf "$work"; }
trap remove_work EXIT

build() {  # addon
  local dir started=$SECONDS
  dir=$(addon_dir "$1")
  mkdir -p "$dir/bin" "$cache_root"
  work=$(mktemp -d "$cache_root/build.XXXXXX")
  ( "build_$1" "$dir" "$work" )
  log "$1 built in $((SECONDS - started)) s"
  remove_work
}

[[ $# -gt 0 ]] || { log "usage: $0 [--print-dir] ADDON... (kueue, volcano, coscheduling)"; exit 2; }
for addon in "$@"; do
  dir=$(addon_dir "$addon")
  if ! $print_only && ! complete "$addon"; then
    command -v go >/dev/null || { log "Go 1.26 or newer is needed to build $addon"; exit 1; }
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    build "$addon"
    complete "$addon" || { log "incomplete build in $dir"; exit 1; }
  fi
  echo "$addon $dir"
done
