#!/usr/bin/env bash
# podman as `make image` and `make image-test` run it (arguments are passed on):
#   deploy/tools/podman.sh run --rm IMAGE ...
# - runc (crun refuses hosts with hybrid cgroup v1/v2) with the cgroupfs manager (no systemd
#   session needed); override with PODMAN_RUNTIME / PODMAN_CGROUP_MANAGER.
# - `run` and `create` get the open-files and processes limits this shell has (nproc at most
#   kernel.pid_max): podman's defaults (about a million) are above what a container host inside
#   a VM or sandbox may grant, and runc then fails with "error setting rlimit type 7 (or 6):
#   operation not permitted".
set -euo pipefail
runtime="${PODMAN_RUNTIME:-$(command -v runc || echo /usr/sbin/runc)}"
global=(--runtime "${runtime}" --cgroup-manager="${PODMAN_CGROUP_MANAGER:-cgroupfs}")

limit() {  # limit <soft> <hard> [cap]: "soft:hard", both at most cap, "unlimited" -> cap
  local soft="$1" hard="$2" cap="${3:-1048576}"
  [[ "${soft}" == unlimited ]] && soft="${cap}"
  [[ "${hard}" == unlimited ]] && hard="${cap}"
  ((soft > cap)) && soft="${cap}"
  ((hard > cap)) && hard="${cap}"
  echo "${soft}:${hard}"
}

case "${1:-}" in
  run | create)
    pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)"
    command="$1"
    shift
    set -- "${command}" \
      --ulimit "nofile=$(limit "$(ulimit -Sn)" "$(ulimit -Hn)")" \
      --ulimit "nproc=$(limit "$(ulimit -Su)" "$(ulimit -Hu)" "${pid_max}")" \
      "$@"
    ;;
esac
exec podman "${global[@]}" "$@"
