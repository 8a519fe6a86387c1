#!/bin/bash
# Installs, with apt, what Kiln and its tests need on a Debian 12 host, once.
# Usage: scripts/setup.sh [build|test]   (build: building images and disks; test: also the tools the tests
# compare against, and qemu for the VM boot checks)
set -euo pipefail
need=(mmdebstrap util-linux coreutils iproute2 clang libc6-dev zlib1g-dev musl-tools
  syslinux syslinux-common mtools dosfstools fdisk e2fsprogs qemu-utils)
if [ "${1:-build}" = test ]; then
  need+=(skopeo umoci busybox-static systemd-container qemu-system-x86 zstd podman vagrant)
fi
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "kiln: needs root to install: ${missing[*]}" >&2
    exit 2
  fi
  echo "kiln: installing with apt: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
