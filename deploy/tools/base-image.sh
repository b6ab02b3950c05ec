#!/usr/bin/env bash
# Print the name of a Python base image for deploy/Dockerfile, making one from Debian packages
# when the public one cannot be pulled.
#
#   deploy/tools/base-image.sh        # -> e.g. python:3.11-slim-bookworm, or
#                                     #    localhost/rapport-python:3.11-slim-bookworm
#
# Order: $PYTHON_IMAGE when set (used as given: pulled by the build if needed); the public
# default ($PUBLIC_IMAGE) when it is present or can be pulled; otherwise a stand-in built here:
#   1. debootstrap --variant=minbase of $SUITE into $RAPPORT_IMAGE_CACHE (default
#      ~/.cache/rapport/image), kept as a tarball so later runs skip it;
#   2. `podman import` of that tarball as localhost/rapport-debian:$SUITE;
#   3. deploy/tools/python-base.Containerfile on top (Debian's python3, venv, CA certificates,
#      security updates) as localhost/rapport-python:3.11-slim-$SUITE.
# Each step is skipped when its result exists. Idempotent; concurrent runs serialise on a lock.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE="${SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PUBLIC_IMAGE="${PUBLIC_IMAGE:-python:3.11-slim-${SUITE}}"
CACHE="${RAPPORT_IMAGE_CACHE:-${HOME}/.cache/rapport/image}"
DEBIAN_IMAGE="localhost/rapport-debian:${SUITE}"
LOCAL_IMAGE="localhost/rapport-python:3.11-slim-${SUITE}"
PODMAN=("${HERE}/podman.sh")

log() { echo "base-image: $*" >&2; }

if [[ -n "${PYTHON_IMAGE:-}" ]]; then
  echo "${PYTHON_IMAGE}"
  exit 0
fi

if "${PODMAN[@]}" image exists "${PUBLIC_IMAGE}" \
  || timeout 300 "${PODMAN[@]}" pull -q "docker.io/library/${PUBLIC_IMAGE}" >/dev/null 2>&1; then
  echo "${PUBLIC_IMAGE}"
  exit 0
fi
log "${PUBLIC_IMAGE} cannot be pulled: using ${LOCAL_IMAGE} (Debian packages)"

mkdir -p "${CACHE}"
exec 9>"${CACHE}/.lock"
flock 9

if "${PODMAN[@]}" image exists "${LOCAL_IMAGE}"; then
  echo "${LOCAL_IMAGE}"
  exit 0
fi

TARBALL="${CACHE}/debian-${SUITE}-minbase.tar"
if [[ ! -s "${TARBALL}" ]]; then
  ROOTFS="$(mktemp -d "${CACHE}/rootfs.XXXXXX")"
  trap 'rm -rf "${ROOTFS}"' EXIT
  chmod 755 "${ROOTFS}"  # mktemp makes it 0700: it becomes the image's /
  log "debootstrap ${SUITE} from ${MIRROR} (a few minutes, once)"
  nice -n 19 debootstrap --variant=minbase "${SUITE}" "${ROOTFS}" "${MIRROR}" >&2
  # What debootstrap leaves behind that an image does not need.
  rm -rf "${ROOTFS}"/var/cache/apt/archives/*.deb "${ROOTFS}"/var/lib/apt/lists/* \
    "${ROOTFS}"/var/log/* "${ROOTFS}"/dev/* "${ROOTFS}"/proc/* "${ROOTFS}"/sys/* \
    "${ROOTFS}"/run/* "${ROOTFS}"/tmp/*
  tar --numeric-owner --xattrs -C "${ROOTFS}" -cf "${TARBALL}.partial" .
  mv "${TARBALL}.partial" "${TARBALL}"
  rm -rf "${ROOTFS}"
  trap - EXIT
fi

if ! "${PODMAN[@]}" image exists "${DEBIAN_IMAGE}"; then
  log "importing ${TARBALL} as ${DEBIAN_IMAGE}"
  "${PODMAN[@]}" import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "${TARBALL}" "${DEBIAN_IMAGE}" >&2
fi

log "building ${LOCAL_IMAGE} (Debian's python3 and the point release's updates)"
nice -n 19 "${PODMAN[@]}" build --network host --layers=false \
  -f "${HERE}/python-base.Containerfile" \
  --build-arg DEBIAN_IMAGE="${DEBIAN_IMAGE}" --build-arg SUITE="${SUITE}" \
  --build-arg MIRROR="${MIRROR}" --build-arg SECURITY_MIRROR="${SECURITY_MIRROR}" \
  -t "${LOCAL_IMAGE}" "${HERE}" >&2
echo "${LOCAL_IMAGE}"
