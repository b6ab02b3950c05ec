#!/usr/bin/env bash
# Install what `make image` and `make image-test` need, once: Debian's podman, buildah, runc
# (podman runs with runc and the cgroupfs manager, see deploy/tools/podman.sh) and
# debootstrap (the Debian base image when the public one cannot be pulled).
#
#   deploy/tools/ensure-podman.sh       # idempotent: apt-get only runs for missing packages
#
# Needs root or sudo, and apt (Debian 12 or later, Ubuntu 22.04 or later).
set -euo pipefail

PACKAGES=(podman buildah runc conmon debootstrap containernetworking-plugins)

log() { echo "ensure-podman: $*" >&2; }

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("${package}")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "missing ${missing[*]} and no apt-get here: install them with your package manager"
  exit 1
fi
sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  sudo=(sudo)
fi
# Wait for another apt run (a concurrent job) instead of failing on the lock.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=900)
log "installing ${missing[*]}"
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
