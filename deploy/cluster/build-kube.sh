#!/usr/bin/env bash
# Build Kubernetes' components and etcd from their Go modules, once, and print the folder of the
# binaries (kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd).
#
#   BIN=$(deploy/cluster/build-kube.sh)
#
# The module deploy/cluster/kube/ requires k8s.io/kubernetes and replaces each k8s.io/* staging
# module with its published release (see its go.mod). Everything is cached outside the checkout:
# the Go module and build caches in $RAPPORT_GO_CACHE (default ~/.cache/rapport/go, shared with
# ensure-helm.sh), the binaries in $RAPPORT_CLUSTER_CACHE/kube-<version>-<go.sum hash>/ (default
# ~/.cache/rapport/cluster), so a rerun with the same go.mod/go.sum builds nothing. The first
# build takes long on 2 shared cores: it runs at the lowest priority with one compile at a time
# (GOMAXPROCS=1, -p 1). A lock serialises concurrent runs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE="${HERE}/kube"
GO_CACHE="${RAPPORT_GO_CACHE:-${HOME}/.cache/rapport/go}"
CLUSTER_CACHE="${RAPPORT_CLUSTER_CACHE:-${HOME}/.cache/rapport/cluster}"
COMMANDS=(etcd kube-apiserver kubectl kube-scheduler kube-controller-manager kubelet kube-proxy)

log() { echo "build-kube: $*" >&2; }

command -v go >/dev/null 2>&1 || { log "no Go toolchain (install Go >= 1.22)"; exit 1; }
version="$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "${MODULE}/go.mod" | head -1)"
[[ -n "${version}" ]] || { log "cannot read the k8s.io/kubernetes version from ${MODULE}/go.mod"; exit 1; }
stamp="$(cat "${MODULE}/go.mod" "${MODULE}/go.sum" | cksum | cut -d' ' -f1)"
OUT="${CLUSTER_CACHE}/kube-${version}-${stamp}"

all_built() {
  local cmd
  for cmd in "${COMMANDS[@]}"; do [[ -x "${OUT}/${cmd}" ]] || return 1; done
}

if all_built; then echo "${OUT}"; exit 0; fi

mkdir -p "${OUT}" "${GO_CACHE}"
exec 9>"${CLUSTER_CACHE}/.build.lock"
flock 9
if all_built; then echo "${OUT}"; exit 0; fi

export GOPATH="${GO_CACHE}/gopath" GOMODCACHE="${GO_CACHE}/mod" GOCACHE="${GO_CACHE}/build"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -modcacherw -mod=readonly" GOTOOLCHAIN=local
export GOMAXPROCS="${RAPPORT_BUILD_GOMAXPROCS:-1}"
minor="$(echo "${version}" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

cd "${MODULE}"
log "Kubernetes ${version} with $(go version | cut -d' ' -f3) into ${OUT} (first time only; long)"
for cmd in "${COMMANDS[@]}"; do
  [[ -x "${OUT}/${cmd}" ]] && continue
  if [[ "${cmd}" == etcd ]]; then pkg=./etcd; else pkg="k8s.io/kubernetes/cmd/${cmd}"; fi
  start=$(date +%s)
  nice -n 19 go build -p "${RAPPORT_BUILD_JOBS:-1}" -trimpath -ldflags "${ldflags}" \
    -o "${OUT}/${cmd}.tmp" "${pkg}"
  mv -f "${OUT}/${cmd}.tmp" "${OUT}/${cmd}"
  log "built ${cmd} in $(( $(date +%s) - start ))s"
done
echo "${OUT}"
