#!/usr/bin/env bash
# Install what xvs needs to build and test on Debian (idempotent, non-interactive).
set -euo pipefail
need=(clang llvm libelf-dev zlib1g-dev libpcap-dev m4 pkg-config iproute2 ethtool tcpdump nftables curl python3)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
