#!/usr/bin/env bash
# `make image`: build deploy/Dockerfile with podman, then print the image's size and what is
# inside it (Python, Rapport and its key packages, the base).
#
#   deploy/tools/build-image.sh                       # -> localhost/rapport:<version>
#   IMAGE=registry.example.org/rapport:0.1.0 deploy/tools/build-image.sh
#   PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:... deploy/tools/build-image.sh
#
# Installs podman, buildah, runc and debootstrap when missing (deploy/tools/ensure-podman.sh)
# and picks the base image with deploy/tools/base-image.sh (the public python image, or one
# made from Debian packages when no registry is reachable). Layers are cached by podman: a
# rebuild after a code change reruns only the application layers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
PODMAN="${HERE}/podman.sh"

log() { echo "image: $*" >&2; }

"${HERE}/ensure-podman.sh"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "${REPO}/pyproject.toml" | head -1)"
IMAGE="${IMAGE:-localhost/rapport:${VERSION}}"
BASE="$("${HERE}/base-image.sh")"

revision=unknown created=unknown source=unknown
if git -C "${REPO}" rev-parse HEAD >/dev/null 2>&1; then
  revision="$(git -C "${REPO}" rev-parse HEAD)"
  # The commit's time, not the build's: rebuilding the same commit reuses every layer.
  created="$(TZ=UTC git -C "${REPO}" log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)"
  source="$(git -C "${REPO}" remote get-url origin 2>/dev/null || echo unknown)"
fi

# The CA bundle pip inside the build trusts (a TLS-intercepting proxy's CA, when this host
# has one): this host's, passed as a build secret, so no layer keeps it.
secret=()
CA_BUNDLE="${CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
if [[ -s "${CA_BUNDLE}" ]]; then
  secret=(--secret "id=ca-bundle,src=${CA_BUNDLE}")
fi

log "building ${IMAGE} from deploy/Dockerfile on ${BASE}"
started="$(date +%s)"
# --format docker keeps HEALTHCHECK (the OCI format has no field for it); --network host
# lets pip reach PyPI without a bridge network.
nice -n 19 "${PODMAN}" build --format docker --network host --layers \
  -f "${REPO}/deploy/Dockerfile" --ignorefile "${REPO}/deploy/Dockerfile.dockerignore" \
  --build-arg PYTHON_IMAGE="${BASE}" \
  --build-arg VERSION="${VERSION}" \
  --build-arg REVISION="${revision}" \
  --build-arg CREATED="${created}" \
  --build-arg SOURCE="${source}" \
  "${secret[@]}" -t "${IMAGE}" "${REPO}" >&2
log "built in $(($(date +%s) - started)) s"

size="$("${PODMAN}" image inspect --format '{{.Size}}' "${IMAGE}")"
echo "image:   ${IMAGE} ($("${PODMAN}" image inspect --format '{{.Id}}' "${IMAGE}" | cut -c1-12))"
echo "size:    $((size / 1000000)) MB (${size} bytes, uncompressed)"
echo "base:    ${BASE}"
# What is inside, read by the image's own Python on a read-only root as its own user.
"${PODMAN}" run --rm --read-only --network none --no-healthcheck --entrypoint python "${IMAGE}" -c '
import importlib.metadata as metadata, platform, sys
os_release = dict(
    line.rstrip().split("=", 1) for line in open("/etc/os-release") if "=" in line
)
print("os:     ", os_release.get("PRETTY_NAME", "?").strip(chr(34)))
print("python: ", platform.python_version(), sys.executable)
names = ["rapport", "fastapi", "uvicorn", "faststream", "aiokafka", "sqlalchemy", "sqlmodel",
         "alembic", "asyncpg", "redis", "pydantic", "cryptography", "numpy", "ortools"]
for name in names:
    print(f"{name + chr(58):<13}", metadata.version(name))
'
