#!/usr/bin/env bash
# A single-node Kubernetes on this machine, for `make cluster-test`:
#
#   deploy/cluster/cluster.sh up       # build/install what is missing, start everything, wait
#   deploy/cluster/cluster.sh env      # the KUBECONFIG/KUBECTL/HELM/… lines to `eval`
#   deploy/cluster/cluster.sh load IMAGE   # podman image -> containerd's k8s.io namespace
#   deploy/cluster/cluster.sh down     # stop everything, remove the pods' network and the
#                                      # cluster's state; keep certificates, binaries, images
#
# What runs (each a plain background process, logs and pids in $RAPPORT_CLUSTER_DIR):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler (built from their Go modules by
# build-kube.sh), containerd (Debian) with runc and the cgroupfs driver, kubelet, kube-proxy
# (iptables) and the CNI bridge plugin (Debian's containernetworking-plugins) on the bridge
# $BRIDGE with pod network $POD_CIDR; Services in $SERVICE_CIDR. All API endpoints listen on
# 127.0.0.1; the bridge's address ($BRIDGE_IP, an address of this host) is how pods reach the
# host (the local Kafka, PostgreSQL and Redis listen there too, see tests/deploy/cluster).
# Needs root (network, cgroups, containerd).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
DIR="${RAPPORT_CLUSTER_DIR:-/var/lib/rapport-cluster}"
NODE="${RAPPORT_CLUSTER_NODE:-rapport-node}"
BRIDGE="${RAPPORT_CLUSTER_BRIDGE:-rapport0}"
POD_CIDR="${RAPPORT_CLUSTER_POD_CIDR:-10.244.0.0/24}"
BRIDGE_IP="${POD_CIDR%.*}.1"
SERVICE_CIDR="${RAPPORT_CLUSTER_SERVICE_CIDR:-10.96.0.0/24}"
API_SERVICE_IP="${SERVICE_CIDR%.*}.1"
PAUSE_IMAGE="localhost/rapport-pause:3.10"
CONTAINERD_SOCK="${DIR}/containerd/containerd.sock"
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack openssl podman iproute2)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

ensure_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("${package}")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=900)
  "${apt[@]}" update >&2
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2
  # Debian's package enables containerd's own service where systemd runs: this cluster runs
  # its own containerd with its own socket and folders, so that one is left alone.
}

binaries() {
  BIN="$("${HERE}/build-kube.sh")"
  HELM="$("${REPO}/deploy/tools/ensure-helm.sh")"
  mkdir -p "${DIR}"
  echo "${BIN}" >"${DIR}/bin-dir"
}

# --- certificates --------------------------------------------------------------------------
cert() {  # cert NAME CN [O] [SANS]: a key and a certificate signed by the cluster's CA
  local name="$1" cn="$2" org="${3:-}" sans="${4:-}" subject
  [[ -s "${DIR}/pki/${name}.crt" ]] && return 0
  subject="/CN=${cn}"
  [[ -n "${org}" ]] && subject="/O=${org}${subject}"
  openssl genrsa -out "${DIR}/pki/${name}.key" 2048 2>/dev/null
  openssl req -new -key "${DIR}/pki/${name}.key" -subj "${subject}" -out "${DIR}/pki/${name}.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=clientAuth,serverAuth"
    [[ -n "${sans}" ]] && echo "subjectAltName=${sans}"
  } >"${DIR}/pki/${name}.ext"
  openssl x509 -req -in "${DIR}/pki/${name}.csr" -CA "${DIR}/pki/ca.crt" -CAkey "${DIR}/pki/ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "${DIR}/pki/${name}.ext" \
    -out "${DIR}/pki/${name}.crt" 2>/dev/null
}

kubeconfig() {  # kubeconfig NAME: a kubeconfig for the certificate NAME
  local name="$1"
  cat >"${DIR}/${name}.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rapport
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ${DIR}/pki/ca.crt
users:
- name: ${name}
  user:
    client-certificate: ${DIR}/pki/${name}.crt
    client-key: ${DIR}/pki/${name}.key
contexts:
- name: rapport
  context: {cluster: rapport, user: ${name}}
current-context: rapport
EOF
}

pki() {
  mkdir -p "${DIR}/pki"
  if [[ ! -s "${DIR}/pki/ca.crt" ]]; then
    openssl genrsa -out "${DIR}/pki/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "${DIR}/pki/ca.key" -subj "/CN=rapport-cluster-ca" -days 30 \
      -out "${DIR}/pki/ca.crt"
  fi
  cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:${BRIDGE_IP},IP:${API_SERVICE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin rapport-admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert kubelet "system:node:${NODE}" system:nodes "IP:127.0.0.1,IP:${BRIDGE_IP},DNS:${NODE}"
  [[ -s "${DIR}/pki/sa.key" ]] || openssl genrsa -out "${DIR}/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "${DIR}/pki/sa.key" -pubout -out "${DIR}/pki/sa.pub" 2>/dev/null
  for name in admin controller-manager scheduler kube-proxy kubelet; do kubeconfig "${name}"; done
}

# --- processes -----------------------------------------------------------------------------
start() {  # start NAME COMMAND...: in the background, its pid in $DIR/NAME.pid
  local name="$1"
  shift
  if [[ -s "${DIR}/${name}.pid" ]] && kill -0 "$(cat "${DIR}/${name}.pid")" 2>/dev/null; then
    return 0
  fi
  log "starting ${name}"
  setsid "$@" >>"${DIR}/logs/${name}.log" 2>&1 </dev/null &
  echo $! >"${DIR}/${name}.pid"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what="$1" seconds="$2" deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) > deadline)); then
      log "${what} not ready after ${seconds}s; the last lines of its log:"
      tail -n 30 "${DIR}/logs/${what}.log" >&2 || true
      return 1
    fi
    sleep 2
  done
}

healthy() {  # healthy URL: answers 200 (client certificate: admin)
  curl -fsS --max-time 5 --cacert "${DIR}/pki/ca.crt" --cert "${DIR}/pki/admin.crt" \
    --key "${DIR}/pki/admin.key" "$1"
}

network() {
  # The bridge exists before any pod, so the host's services can listen on its address first.
  if ! ip link show "${BRIDGE}" >/dev/null 2>&1; then
    ip link add "${BRIDGE}" type bridge
  fi
  ip addr replace "${BRIDGE_IP}/${POD_CIDR#*/}" dev "${BRIDGE}"
  ip link set "${BRIDGE}" up
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  mkdir -p "${DIR}/cni/net.d"
  cat >"${DIR}/cni/net.d/10-rapport.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "rapport",
  "plugins": [
    {"type": "bridge", "bridge": "${BRIDGE}", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${BRIDGE_IP}"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "${DIR}/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
}

containerd_config() {
  mkdir -p "${DIR}/containerd"
  cat >"${DIR}/containerd/config.toml" <<EOF
version = 2
root = "${DIR}/containerd/root"
state = "${DIR}/containerd/state"
[grpc]
  address = "${CONTAINERD_SOCK}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  enable_selinux = false
  disable_apparmor = true
  # Kubernetes asks for oom_score_adj -998 (sandboxes) and -997 (Guaranteed pods); lowering it
  # needs CAP_SYS_RESOURCE, which a host inside a sandbox may lack ("failed to update
  # /proc/self/oom_score_adj: Permission denied"): never go below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc || echo /usr/sbin/runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${DIR}/cni/net.d"
EOF
}

ctr_() { ctr --address "${CONTAINERD_SOCK}" --namespace k8s.io "$@"; }

load_image() {  # load_image IMAGE: from podman's storage into containerd (skipped if same id)
  local image="$1" id
  id="$("${REPO}/deploy/tools/podman.sh" image inspect --format '{{.Id}}' "${image}")"
  if ctr_ images ls -q "name==${image}" 2>/dev/null | grep -q . &&
    [[ "$(cat "${DIR}/images/$(echo "${image}" | tr '/:' '__')" 2>/dev/null)" == "${id}" ]]; then
    return 0
  fi
  log "loading ${image} into containerd"
  mkdir -p "${DIR}/images"
  "${REPO}/deploy/tools/podman.sh" save --format docker-archive "${image}" | ctr_ images import -
  echo "${id}" >"${DIR}/images/$(echo "${image}" | tr '/:' '__')"
}

pause_image() {
  if ! "${REPO}/deploy/tools/podman.sh" image exists "${PAUSE_IMAGE}"; then
    log "building ${PAUSE_IMAGE} (static pause, FROM scratch)"
    local context
    context="$(mktemp -d)"
    cc -Os -static -o "${context}/pause" "${HERE}/pause/pause.c"
    cp "${HERE}/pause/Containerfile" "${context}/"
    "${REPO}/deploy/tools/podman.sh" build --format docker -t "${PAUSE_IMAGE}" "${context}" >&2
    rm -rf "${context}"
  fi
  load_image "${PAUSE_IMAGE}"
}

kubelet_config() {
  cat >"${DIR}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://${CONTAINERD_SOCK}
address: ${BRIDGE_IP}  # the node's address: the API server reaches it there (exec, logs)
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${DIR}/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${DIR}/pki/kubelet.crt
tlsPrivateKeyFile: ${DIR}/pki/kubelet.key
failSwapOn: false
resolvConf: /etc/resolv.conf
podCIDR: ${POD_CIDR}
maxPods: 60
serializeImagePulls: false
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
}

up() {
  [[ "$(id -u)" -eq 0 ]] || die "needs root (network, cgroups, containerd)"
  ensure_packages
  binaries
  mkdir -p "${DIR}/logs" "${DIR}/etcd" "${DIR}/kubelet"
  chmod 700 "${DIR}/etcd"
  pki
  network
  start etcd "${BIN}/etcd" --name rapport --data-dir "${DIR}/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster rapport=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  wait_for etcd 120 curl -fsS --max-time 5 http://127.0.0.1:2381/health
  start kube-apiserver "${BIN}/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --bind-address 127.0.0.1 --advertise-address "${BRIDGE_IP}" --secure-port 6443 \
    --service-cluster-ip-range "${SERVICE_CIDR}" --allow-privileged=false \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --client-ca-file "${DIR}/pki/ca.crt" \
    --tls-cert-file "${DIR}/pki/apiserver.crt" --tls-private-key-file "${DIR}/pki/apiserver.key" \
    --kubelet-client-certificate "${DIR}/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "${DIR}/pki/apiserver-kubelet-client.key" \
    --service-account-key-file "${DIR}/pki/sa.pub" \
    --service-account-signing-key-file "${DIR}/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --endpoint-reconciler-type lease --profiling=false \
    --kubelet-preferred-address-types InternalIP
  wait_for kube-apiserver 300 healthy https://127.0.0.1:6443/readyz
  start kube-controller-manager "${BIN}/kube-controller-manager" \
    --kubeconfig "${DIR}/controller-manager.kubeconfig" \
    --authentication-kubeconfig "${DIR}/controller-manager.kubeconfig" \
    --authorization-kubeconfig "${DIR}/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "${DIR}/pki/sa.key" --root-ca-file "${DIR}/pki/ca.crt" \
    --cluster-signing-cert-file "${DIR}/pki/ca.crt" --cluster-signing-key-file "${DIR}/pki/ca.key" \
    --allocate-node-cidrs=false --controllers '*,-cloud-node-lifecycle' --profiling=false
  start kube-scheduler "${BIN}/kube-scheduler" --kubeconfig "${DIR}/scheduler.kubeconfig" \
    --authentication-kubeconfig "${DIR}/scheduler.kubeconfig" \
    --authorization-kubeconfig "${DIR}/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  containerd_config
  start containerd containerd --config "${DIR}/containerd/config.toml"
  wait_for containerd 60 ctr_ version
  pause_image
  kubelet_config
  start kubelet "${BIN}/kubelet" --config "${DIR}/kubelet.yaml" \
    --kubeconfig "${DIR}/kubelet.kubeconfig" --root-dir "${DIR}/kubelet" \
    --hostname-override "${NODE}" --node-ip "${BRIDGE_IP}" --v 1
  start kube-proxy "${BIN}/kube-proxy" --kubeconfig "${DIR}/kube-proxy.kubeconfig" \
    --hostname-override "${NODE}" --cluster-cidr "${POD_CIDR}" --proxy-mode iptables \
    --bind-address 127.0.0.1 --metrics-bind-address 127.0.0.1:10249 \
    --healthz-bind-address 127.0.0.1:10256 --conntrack-max-per-core 0
  wait_for kubelet 300 "${BIN}/kubectl" --kubeconfig "${DIR}/admin.kubeconfig" wait \
    --for=condition=Ready "node/${NODE}" --timeout 5s
  wait_for kube-proxy 120 curl -fsS --max-time 5 http://127.0.0.1:10256/healthz
  log "node ${NODE} is Ready ($("${BIN}/kubectl" --kubeconfig "${DIR}/admin.kubeconfig" version 2>/dev/null | tr '\n' ' '))"
}

env_lines() {
  binaries
  echo "export KUBECONFIG=${DIR}/admin.kubeconfig"
  echo "export RAPPORT_KUBECTL=${BIN}/kubectl"
  echo "export RAPPORT_HELM=${HELM}"
  echo "export RAPPORT_CLUSTER_HOST=${BRIDGE_IP}"
  echo "export RAPPORT_CLUSTER_DIR=${DIR}"
}

down() {
  local name pid i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    name="${COMPONENTS[i]}"
    [[ -s "${DIR}/${name}.pid" ]] || continue
    pid="$(cat "${DIR}/${name}.pid")"
    [[ "${pid}" =~ ^[0-9]+$ && "${pid}" -gt 1 ]] || continue
    # The kubelet is stopped by now (reverse order): the pods' containers go while containerd
    # still answers.
    [[ "${name}" == containerd ]] && stop_containers
    kill "${pid}" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "${pid}" 2>/dev/null || break; sleep 1; done
    kill -9 "${pid}" 2>/dev/null || true
    rm -f "${DIR}/${name}.pid"
  done
  # containerd-shim-runc-v2 processes of this containerd (their command line names its socket).
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address ${CONTAINERD_SOCK}" || true); do
    kill -9 "${pid}" 2>/dev/null || true
  done
  for mount in $(awk -v dir="${DIR}/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "${mount}" 2>/dev/null || true
  done
  kube_proxy_cleanup
  ip link del "${BRIDGE}" 2>/dev/null || true
  # The cluster's state goes (the next `up` starts an empty cluster); the certificates, the
  # built binaries and containerd's images stay.
  rm -rf "${DIR}/etcd" "${DIR}/kubelet" "${DIR}/cni/ipam"
  log "stopped"
}

stop_containers() {  # every container of this containerd, then the pods' network namespaces
  local id netns
  for id in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -s SIGKILL "${id}" 2>/dev/null || true
  done
  sleep 2
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "${id}" 2>/dev/null || true; done
  for netns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
    if ip -n "${netns}" -4 addr show 2>/dev/null | grep -q "inet ${POD_CIDR%.*}\."; then
      ip netns delete "${netns}" 2>/dev/null || true
    fi
  done
}

kube_proxy_cleanup() {
  if [[ -n "${BIN:-}" && -x "${BIN}/kube-proxy" ]]; then
    "${BIN}/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true
  fi
  # What kube-proxy's cleanup leaves, and the kubelet's own chains (KUBE-FIREWALL, the
  # canaries, KUBE-MARK-MASQ): the jumps to them, then the chains.
  local cmd table rule chain
  for cmd in iptables ip6tables; do
    command -v "${cmd}" >/dev/null 2>&1 || continue
    for table in filter nat mangle; do
      "${cmd}" -t "${table}" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | sed 's/^-A/-D/' |
        while read -r rule; do eval "${cmd} -t ${table} ${rule}" 2>/dev/null || true; done || true
      for chain in $("${cmd}" -t "${table}" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
        "${cmd}" -t "${table}" -F "${chain}" 2>/dev/null || true
      done
      for chain in $("${cmd}" -t "${table}" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
        "${cmd}" -t "${table}" -X "${chain}" 2>/dev/null || true
      done
    done
  done
}

case "${1:-}" in
  up) up ;;
  env) env_lines ;;
  load) load_image "${2:?image}" ;;
  down) BIN="$(cat "${DIR}/bin-dir" 2>/dev/null || true)"; down ;;
  *) die "usage: $0 up|env|load IMAGE|down" ;;
esac
