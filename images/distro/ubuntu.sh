#!/bin/bash
# minimal-ubuntu: Ubuntu (minbase) via mmdebstrap from WRENN_UBUNTU_MIRROR (suite:
# WRENN_UBUNTU_SUITE, default "noble").
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
. "$HERE/lib.sh"
root="$1"
need_mirror WRENN_UBUNTU_MIRROR Ubuntu
mmdebstrap --variant=minbase --components=main,universe \
  --include=socat,chrony,iproute2,tini,sudo,wget,curl,ca-certificates,git,procps \
  "${WRENN_UBUNTU_SUITE:-noble}" "$root" "$WRENN_UBUNTU_MIRROR"
rm -rf "$root/var/lib/apt/lists/"* 2>/dev/null || true
