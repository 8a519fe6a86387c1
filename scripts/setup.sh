#!/bin/bash
# Installs, with apt, what Kiln and its tests need on a Debian 12 host. The list is packaging/control's (the same one
# the Debian package declares), never one of this script's own.
# Usage: scripts/setup.sh [build|test]   build: building the tool and images, disks and boot tests (Depends and
#                                              Build-Depends); test: also the tests' tools and qemu (Recommends and
#                                              X-Test-Depends)
#        scripts/setup.sh --print [build|test]   prints the packages, one a line, and installs nothing
# Once every package is installed it writes out/.setup-MODE, a copy of packaging/control, which ./kiln (out/kiln) compares with
# packaging/control to skip this script while the list is unchanged.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
control="$repo/packaging/control"
print=
if [ "${1:-}" = --print ]; then print=1; shift; fi
mode="${1:-build}"
case $mode in
  build) fields=(X-Essential-Used Depends Build-Depends) ;;
  test) fields=(X-Essential-Used Depends Build-Depends Recommends X-Test-Depends) ;;
  *) echo "scripts/setup.sh: unknown mode '$mode' (build or test)" >&2; exit 2 ;;
esac

# The packages of the named fields of a deb822 file: comma-separated, continuation lines start with a space; a version
# or architecture restriction is dropped and of alternatives (a | b) the first is taken.
need=()
field=
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    '#'*) continue ;;
    [[:space:]]*) value=$line ;;
    *:*) field=${line%%:*}; value=${line#*:} ;;
    *) field=; continue ;;
  esac
  want=
  for f in "${fields[@]}"; do [ "$f" = "$field" ] && want=1; done
  [ -n "$want" ] || continue
  IFS=, read -ra items <<<"$value"
  for item in "${items[@]}"; do
    item=${item%%|*}
    item=${item%%[(\[]*}
    item=${item//[[:space:]]/}
    [ -n "$item" ] && need+=("$item")
  done
done <"$control"
if [ ${#need[@]} -eq 0 ]; then
  echo "scripts/setup.sh: no packages found in $control" >&2
  exit 1
fi
if [ -n "$print" ]; then
  printf '%s\n' "${need[@]}"
  exit 0
fi

# One dpkg-query for all of them.
declare -A installed=()
while read -r status p; do
  [ "$status" = ii ] && installed[$p]=1
done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${need[@]}" 2>/dev/null || true)
missing=()
for p in "${need[@]}"; do
  [ -n "${installed[$p]:-}" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "kiln: needs root to install: ${missing[*]}" >&2
    exit 2
  fi
  echo "kiln: installing with apt: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" >&2
fi

# The stamp: this list, installed. test installs what build does, so it stamps both. Best effort: without it (out/
# not writable) the next call only checks again.
stamps=("$mode")
[ "$mode" = test ] && stamps+=(build)
for s in "${stamps[@]}"; do
  { mkdir -p "$repo/out" && cp "$control" "$repo/out/.setup-$s.tmp" && mv -f "$repo/out/.setup-$s.tmp" "$repo/out/.setup-$s"; } 2>/dev/null || true
done
