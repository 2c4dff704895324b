#!/usr/bin/env bash
# End-to-end pps over veth, one run, same topology: the bare AF_XDP forwarder (xdpfwd, the
# I/O floor) against xvsd in DR and NAT-less UDP DR mode (conn table, scheduling, TTL, MAC rewrite).
#   ns G: xdpfwd --gen g0 (core 0, 64 B UDP, 4096 flows) -> f0 =[forwarder on core 1]=> f1 -> ns S
# The sink is the kernel stack in S (rx_packets of s0 counted over the flood).
# usage (root): scripts/floor-vs-xvs.sh [ROUNDS]   env: SECS (8)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root"; exit 1; }
ROUNDS=${1:-2}; SECS=${SECS:-8}
cargo build --release -q -p xvs-dataplane --features afxdp --example xdpfwd
cargo build --release -q -p xvs-control --bins
XF=$PWD/target/release/examples/xdpfwd; XVSD=$PWD/target/release/xvsd; XVSADM=$PWD/target/release/xvsadm
P=xf$$; G=${P}g; S=${P}s; OUT=$(mktemp -d); FWD=
cleanup() { set +e; [ -n "$FWD" ] && kill "$FWD" 2>/dev/null; wait 2>/dev/null; ip netns del $G 2>/dev/null; ip netns del $S 2>/dev/null; ip link del ${P}f0 2>/dev/null; ip link del ${P}f1 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT INT TERM
ip netns add $G; ip netns add $S
ip link add ${P}g0 type veth peer name ${P}f0; ip link set ${P}g0 netns $G
ip link add ${P}s0 type veth peer name ${P}f1; ip link set ${P}s0 netns $S
for i in ${P}f0 ${P}f1; do sysctl -qw net.ipv6.conf.$i.disable_ipv6=1; ip link set $i up; done
ip -n $G link set ${P}g0 up; ip -n $S link set ${P}s0 up; ip -n $S addr add 198.18.1.1/24 dev ${P}s0
MAC_F0=$(cat /sys/class/net/${P}f0/address)
MAC_S0=$(ip -n $S -o link show ${P}s0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
MAC_G0=$(ip -n $G -o link show ${P}g0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
boost() { sleep 0.3; echo -20 > /proc/$1/autogroup 2>/dev/null || true; }
flood() {
  sleep 1.5
  local rx0 rx1
  rx0=$(ip netns exec $S cat /sys/class/net/${P}s0/statistics/rx_packets)
  ip netns exec $G setsid taskset -c 0 $XF --gen ${P}g0 --dst-mac $MAC_F0 --secs $SECS > $OUT/gen 2>/dev/null & local gen=$!
  boost $gen; wait $gen
  rx1=$(ip netns exec $S cat /sys/class/net/${P}s0/statistics/rx_packets)
  echo $(( (rx1 - rx0) / SECS ))
}
floor() {
  setsid taskset -c 1 $XF ${P}f0 ${P}f1 --dst-mac $MAC_S0 --secs $((SECS+3)) > $OUT/fwd 2>/dev/null & FWD=$!
  boost $FWD; local r; r=$(flood); wait $FWD 2>/dev/null || true; FWD=; echo "$r"
}
xvs() {
  local sock=$OUT/xvs.sock
  setsid $XVSD --socket $sock --iface ${P}f0 --iface ${P}f1 --addr ${P}f0=198.18.0.254/24 \
    --addr ${P}f1=198.18.1.254/24 --neigh 198.18.1.1=$MAC_S0 --neigh 198.18.0.1=$MAC_G0 \
    --workers 1 --cores 1 --poll busy > $OUT/xvsd.log 2>&1 & FWD=$!
  for _ in $(seq 100); do [ -S $sock ] && break; sleep 0.1; done
  boost $FWD
  XVS_SOCKET=$sock $XVSADM -A -u 198.18.1.1:9 -s wlc
  XVS_SOCKET=$sock $XVSADM -a -u 198.18.1.1:9 -r 198.18.1.1:9 -g
  local r; r=$(flood)
  kill $FWD; wait $FWD 2>/dev/null || true; FWD=; sleep 0.5; echo "$r"
}
echo "round  floor_pps  xvs_dr_pps  ratio"
for i in $(seq "$ROUNDS"); do
  f=$(floor); x=$(xvs)
  echo "$i  $f  $x  $(awk -v a="$x" -v b="$f" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
