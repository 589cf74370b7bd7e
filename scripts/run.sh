#!/usr/bin/env bash
# `make run` / `make gdb`: boot Frond on this terminal with one NIC: virtio-net, or QEMU's
# igb (an Intel 82576) with NIC=igb (or FROND_NIC=igb); frond-qemu builds its -device.
#
# As root (with iproute2): a network namespace `frond-run` holding a tap `frond0`
# (host end 10.33.0.1/24); QEMU runs inside the namespace (`ip netns exec`), the guest is
# 10.33.0.2/24. The namespace, and with it the tap, is deleted on exit by a trap, also on
# Ctrl-C or a kill. All traffic stays inside the namespace.
# Otherwise: QEMU user-mode networking with restrict=on (the guest reaches nothing
# outside) and host forwards on 127.0.0.1 for the HTTP and echo services.
#
# usage: scripts/run.sh FROND_QEMU [frond-qemu run arguments...]; APPEND adds to the
# kernel command line.
set -euo pipefail

QEMU_TOOL=$1
shift
NS=frond-run
TAP=frond0
HOST_IP=10.33.0.1
GUEST_IP=10.33.0.2
MAC=52:54:00:12:34:56
NIC_MODEL=${NIC:-${FROND_NIC:-virtio}}

if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && [ "${FROND_NET:-tap}" = tap ]; then
  cleanup() {
    local pids
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
  }
  cleanup
  trap cleanup EXIT
  trap 'exit 130' INT TERM HUP
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" tuntap add dev "$TAP" mode tap
  ip -n "$NS" addr add "$HOST_IP/24" dev "$TAP"
  ip -n "$NS" link set "$TAP" up
  cat >&2 <<MSG
run: network namespace $NS, tap $TAP ($HOST_IP/24); Frond is $GUEST_IP. In another shell:
run:   ip netns exec $NS ping $GUEST_IP
run:   ip netns exec $NS curl http://$GUEST_IP/
run:   ip netns exec $NS nc $GUEST_IP 7             (TCP echo; -u for UDP echo)
run: the namespace is removed when QEMU exits (Ctrl-A X, or \`quit\` at the prompt).
MSG
  ip netns exec "$NS" "$QEMU_TOOL" run --append "ip=$GUEST_IP/24 gw=$HOST_IP ${APPEND:-}" \
    --nic "$NIC_MODEL" --mac "$MAC" "$@" -- \
    -netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no"
else
  HTTP=${FROND_HTTP_PORT:-8080}
  ECHO=${FROND_ECHO_PORT:-8007}
  cat >&2 <<MSG
run: not root (or FROND_NET=user): user-mode networking with restrict=on. Frond is 10.0.2.15
run: inside QEMU; from this machine:
run:   curl http://127.0.0.1:$HTTP/
run:   nc 127.0.0.1 $ECHO             (TCP echo; nc -u 127.0.0.1 $ECHO for UDP echo)
run: (ping cannot cross user-mode networking.)
MSG
  "$QEMU_TOOL" run --append "${APPEND:-}" --nic "$NIC_MODEL" --mac "$MAC" "$@" -- \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$HTTP-:80,hostfwd=tcp:127.0.0.1:$ECHO-:7,hostfwd=udp:127.0.0.1:$ECHO-:7"
fi
