#!/bin/bash
# minimal-alpine: Alpine minirootfs from WRENN_ALPINE_MIRROR (version WRENN_ALPINE_VERSION,
# default 3.22.0), packages added with its own apk inside a chroot.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
. "$HERE/lib.sh"
root="$1"
need_mirror WRENN_ALPINE_MIRROR Alpine
ver="${WRENN_ALPINE_VERSION:-3.22.0}"
branch="v${ver%.*}"
curl -fsSL "$WRENN_ALPINE_MIRROR/$branch/releases/x86_64/alpine-minirootfs-$ver-x86_64.tar.gz" \
  | tar -xz -C "$root"
printf '%s/%s/main\n%s/%s/community\n' "$WRENN_ALPINE_MIRROR" "$branch" "$WRENN_ALPINE_MIRROR" "$branch" \
  > "$root/etc/apk/repositories"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" /sbin/apk add --no-cache socat chrony iproute2 tini sudo wget curl ca-certificates git procps
