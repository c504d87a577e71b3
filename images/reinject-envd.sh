#!/bin/bash
# Replaces envd (and the init script) in every built template without rebuilding it.
#
#   images/reinject-envd.sh [ENVD_BINARY]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=images/lib.sh
. "$HERE/lib.sh"
envd="$(find_envd "${1:-}")"
shopt -s nullglob
for t in "$(images_dir)/teams/$PLATFORM_TEAM"/*/; do
  t="${t%/}"
  [ -d "$t/rootfs" ] || continue
  [ -d "$t/checkpoint" ] && { echo "skip $t (snapshot template: its memory holds the old envd)"; continue; }
  install -m 0755 "$envd" "$t/rootfs/usr/local/bin/.envd.new"
  mv "$t/rootfs/usr/local/bin/.envd.new" "$t/rootfs/usr/local/bin/envd"
  install -m 0755 "$HERE/wrenn-init" "$t/rootfs/usr/local/bin/wrenn-init"
  make_ext4 "$t/rootfs" "$t/.rootfs.ext4.new"
  mv "$t/.rootfs.ext4.new" "$t/rootfs.ext4"
  echo "envd replaced in $t"
done
