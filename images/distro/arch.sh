#!/bin/bash
# minimal-arch: Arch Linux bootstrap tarball from WRENN_ARCH_MIRROR, packages via pacman in
# a chroot.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
. "$HERE/lib.sh"
root="$1"
need_mirror WRENN_ARCH_MIRROR Arch
curl -fsSL "$WRENN_ARCH_MIRROR/iso/latest/archlinux-bootstrap-x86_64.tar.zst" \
  | tar --zstd -x -C "$root" --strip-components=1
echo "Server = $WRENN_ARCH_MIRROR/\$repo/os/\$arch" > "$root/etc/pacman.d/mirrorlist"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount --bind "$root" "$root"
trap 'umount "$root"' EXIT
chroot "$root" /bin/sh -c 'pacman-key --init && pacman-key --populate archlinux &&
  pacman -Sy --noconfirm socat chrony iproute2 tini sudo wget curl ca-certificates git procps-ng'
