#!/usr/bin/env bash
# Install the Debian packages that real local nodes and the local image builds need.
# Idempotent: apt-get runs only when a tool is missing (so a warm machine needs no network).
set -euo pipefail

# What must exist on the host, and the Debian 12 package that brings it.
wanted=(
  "/usr/sbin/runc runc"                                       # the OCI runtime containerd calls
  "/usr/lib/cni/bridge containernetworking-plugins"           # bridge, host-local, loopback
  "/usr/bin/mmdebstrap mmdebstrap"                            # the base image's root filesystem
  "/usr/bin/buildah buildah"                                  # Dockerfiles -> OCI images
  "/usr/bin/catatonit catatonit"                              # the sandbox (pause) process
  "/usr/sbin/iptables iptables"                               # kube-proxy's Service rules
)

missing=()
for entry in "${wanted[@]}"; do
  read -r path package <<<"$entry"
  [[ -e "$path" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages (install them as root): ${missing[*]}" >&2
  exit 1
fi
echo "[host-packages] installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
