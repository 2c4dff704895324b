#!/usr/bin/env bash
# The xvs demo: install what is needed, build, create a client, a director and three real
# servers in network namespaces, start xvsd on the director's veths (AF_XDP), configure a NAT
# service with xvsadm, send real HTTP requests through the VIP, show the listing and the
# counters, and remove everything again (also on failure or Ctrl-C). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (network namespaces, AF_XDP)"; exit 1; }
scripts/setup.sh
# XVS_PROFILE=debug skips the (slow, LTO) release build when trying things out.
PROFILE=${XVS_PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -q -p xvs-control --bins; else cargo build -q -p xvs-control --bins; fi
BIN=$PWD/target/$PROFILE
P="xd$$"                     # unique prefix for this run
TMP=$(mktemp -d /tmp/xvs-demo.XXXXXX)
SOCK=$TMP/xvs.sock
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${P}c" "${P}d" "${P}s" "${P}r0" "${P}r1" "${P}r2"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== topology: client ${P}c -- [d0] xvsd [d1] -- bridge -- real servers ${P}r0..2"
for ns in c d s r0 r1 r2; do ip netns add "$P$ns"; ip -n "$P$ns" link set lo up; done
ip -n "${P}s" link add br0 type bridge; ip -n "${P}s" link set br0 up
ip link add d0 netns "${P}d" type veth peer name c0 netns "${P}c"
ip link add d1 netns "${P}d" type veth peer name sd netns "${P}s"
ip -n "${P}s" link set sd master br0; ip -n "${P}s" link set sd up
ip -n "${P}d" link set d0 up; ip -n "${P}d" link set d1 up
ip -n "${P}c" link set c0 up
ip -n "${P}c" addr add 198.18.1.2/24 dev c0
ip -n "${P}c" route add default via 198.18.1.1
ip netns exec "${P}c" ethtool -K c0 tx off >/dev/null
for i in 0 1 2; do
  ns="${P}r$i"
  ip link add r0 netns "$ns" type veth peer name "s$i" netns "${P}s"
  ip -n "${P}s" link set "s$i" master br0; ip -n "${P}s" link set "s$i" up
  ip -n "$ns" link set r0 up
  ip -n "$ns" addr add "198.18.2.1$i/24" dev r0
  ip -n "$ns" route add default via 198.18.2.1
  ip netns exec "$ns" ethtool -K r0 tx off >/dev/null
  mkdir -p "$TMP/www$i"; echo "hello from real server r$i (198.18.2.1$i)" > "$TMP/www$i/index.html"
  ip netns exec "$ns" /usr/bin/python3 -m http.server --bind 198.18.2.1$i --directory "$TMP/www$i" 80 \
    >"$TMP/http$i.log" 2>&1 &
  PIDS+=($!)
done

echo "== starting xvsd on ${P}d (d0: clients, d1: real servers)"
ip netns exec "${P}d" "$BIN/xvsd" --socket "$SOCK" --iface d0 --iface d1 \
  --addr d0=198.18.1.1/24 --addr d1=198.18.2.1/24 --workers 1 >"$TMP/xvsd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "xvsd did not start:"; cat "$TMP/xvsd.log"; exit 1; }
for i in 0 1 2; do
  for _ in $(seq 50); do ip netns exec "${P}r$i" ss -Hltn 'sport = :80' | grep -q LISTEN && break; sleep 0.1; done
done

export XVS_SOCKET=$SOCK
echo "== configuring with xvsadm"
set -x
"$BIN/xvsadm" -A -t 198.18.1.100:80 -s rr
"$BIN/xvsadm" -a -t 198.18.1.100:80 -r 198.18.2.10:80 -m
"$BIN/xvsadm" -a -t 198.18.1.100:80 -r 198.18.2.11:80 -m
"$BIN/xvsadm" -a -t 198.18.1.100:80 -r 198.18.2.12:80 -m -w 2
"$BIN/xvsadm" -Ln
set +x

echo "== 8 requests from the client to the VIP 198.18.1.100:80"
for n in $(seq 8); do
  printf '  request %d: ' "$n"
  ip netns exec "${P}c" curl -sS --max-time 5 http://198.18.1.100/ || echo "(failed)"
done

echo "== xvsadm -Ln --stats"
"$BIN/xvsadm" -Ln --stats
echo "== xvsadm -Lnc"
"$BIN/xvsadm" -Lnc
echo "== done; cleaning up"
