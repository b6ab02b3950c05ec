#!/usr/bin/env bash
# Print the path of a Helm 3 binary, building it once if none is available.
#
#   deploy/tools/ensure-helm.sh            # -> /path/to/helm on stdout (logs on stderr)
#   HELM=$(deploy/tools/ensure-helm.sh) && "$HELM" version
#
# Order: $HELM_BIN if set and executable; `helm` on PATH (a v3.x); the cached build in
# $RAPPORT_GO_CACHE/bin (default ~/.cache/rapport/go/bin); otherwise
# `go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION` through the Go module proxy, with
# GOPATH, GOMODCACHE and GOCACHE all under $RAPPORT_GO_CACHE so a rerun is instant.
# The first build takes a few minutes on 2 cores. Idempotent; safe to run concurrently
# (a lock serialises builds).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
CACHE="${RAPPORT_GO_CACHE:-${HOME}/.cache/rapport/go}"
BIN_DIR="${CACHE}/bin"
TARGET="${BIN_DIR}/helm-${HELM_VERSION}"

log() { echo "ensure-helm: $*" >&2; }

if [[ -n "${HELM_BIN:-}" && -x "${HELM_BIN}" ]]; then
  echo "${HELM_BIN}"
  exit 0
fi

if on_path="$(command -v helm 2>/dev/null)"; then
  if "${on_path}" version --short 2>/dev/null | grep -q '^v3\.'; then
    echo "${on_path}"
    exit 0
  fi
  log "ignoring ${on_path}: not Helm 3"
fi

if [[ -x "${TARGET}" ]]; then
  echo "${TARGET}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "no helm on PATH and no Go toolchain to build one; install Go >= 1.24 or Helm ${HELM_VERSION}"
  exit 1
fi

mkdir -p "${BIN_DIR}"
cd "${CACHE}"  # outside any Go module
exec 9>"${CACHE}/.helm-build.lock"
flock 9
if [[ -x "${TARGET}" ]]; then  # built by a concurrent run while we waited
  echo "${TARGET}"
  exit 0
fi

log "building helm ${HELM_VERSION} with $(go version | cut -d' ' -f3) (first time only; takes minutes)"
start=$(date +%s)
export GOPATH="${CACHE}/gopath" GOMODCACHE="${CACHE}/mod" GOCACHE="${CACHE}/build"
export GOBIN="${CACHE}/build-bin" CGO_ENABLED=0 GOFLAGS="-buildvcs=false -modcacherw"
# Like Helm's own Makefile: stamp the version, and the Kubernetes version of the client-go it
# is built with (the default for `helm template`/`lint` capabilities; unstamped it is 1.20).
go mod download "helm.sh/helm/v3@${HELM_VERSION}"
client_go="$(grep -E '^[[:space:]]*k8s.io/client-go v' "${GOMODCACHE}/helm.sh/helm/v3@${HELM_VERSION}/go.mod" | awk '{print $2}')"
k8s_minor="$(echo "${client_go}" | cut -d. -f2)"
[[ "${k8s_minor}" =~ ^[0-9]+$ ]] || { log "cannot read client-go version from helm's go.mod"; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done
go install -trimpath -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
mv -f "${GOBIN}/helm" "${TARGET}.tmp"
mv -f "${TARGET}.tmp" "${TARGET}"
ln -sfn "helm-${HELM_VERSION}" "${BIN_DIR}/helm"
log "built ${TARGET} (Kubernetes 1.${k8s_minor} capabilities) in $(( $(date +%s) - start ))s"
echo "${TARGET}"
