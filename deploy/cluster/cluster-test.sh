#!/usr/bin/env bash
# `make cluster-test`: a single-node Kubernetes (cluster.sh), the image loaded into it, the
# project's local stack listening on the pods' bridge, then tests/deploy/cluster (helm install,
# the flow through the Services, helm upgrade with no failed request, helm uninstall). Stops
# the node and that stack afterwards unless RAPPORT_CLUSTER_KEEP=1.
#
#   IMAGE=localhost/rapport:0.1.0 deploy/cluster/cluster-test.sh [pytest arguments]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
IMAGE="${IMAGE:?IMAGE names the image to install (make cluster-test sets it)}"
PYTHON="${REPO}/.venv/bin/python"

cleanup() {
  local status=$?
  if [[ "${RAPPORT_CLUSTER_KEEP:-}" == 1 ]]; then
    echo "cluster-test: left running (RAPPORT_CLUSTER_KEEP=1); stop with: " \
      "deploy/cluster/cluster.sh down; RAPPORT_STACK_DIR=${RAPPORT_STACK_DIR:-} python -m rapport.stack down" >&2
  else
    "${PYTHON}" -m rapport.stack down >&2 || true
    "${HERE}/cluster.sh" down || true
  fi
  exit "${status}"
}

"${HERE}/cluster.sh" up
eval "$("${HERE}/cluster.sh" env)"
export RAPPORT_CLUSTER_HOST
# The tests' stack: the project's own, on its own ports and folder, answering on the bridge's
# address too (the pods cannot reach the host's loopback), never the stack `make test` uses.
export RAPPORT_STACK_HOST="${RAPPORT_CLUSTER_HOST}"
export RAPPORT_STACK_DIR="${RAPPORT_CLUSTER_STACK_DIR:-${RAPPORT_CLUSTER_DIR}/stack}"
export RAPPORT_STACK_KAFKA_PORT="${RAPPORT_CLUSTER_KAFKA_PORT:-39092}"
export RAPPORT_STACK_PG_PORT="${RAPPORT_CLUSTER_PG_PORT:-35432}"
export RAPPORT_STACK_REDIS_PORT="${RAPPORT_CLUSTER_REDIS_PORT:-36379}"
unset RAPPORT_TEST_KAFKA_BOOTSTRAP RAPPORT_TEST_DATABASE_URL RAPPORT_TEST_REDIS_URL
trap cleanup EXIT
"${HERE}/cluster.sh" load "${IMAGE}"
"${PYTHON}" -m rapport.stack up >/dev/null
cd "${REPO}"
RAPPORT_IMAGE="${IMAGE}" "${PYTHON}" -m pytest tests/deploy/cluster -v -s -p no:cacheprovider "$@"
