#!/bin/bash
# minimal-fedora: Fedora container base image tarball from WRENN_FEDORA_MIRROR (release
# WRENN_FEDORA_RELEASE), packages via dnf in a chroot.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
. "$HERE/lib.sh"
root="$1"
need_mirror WRENN_FEDORA_MIRROR Fedora
rel="${WRENN_FEDORA_RELEASE:-42}"
curl -fsSL "$WRENN_FEDORA_MIRROR/releases/$rel/Container/x86_64/images/rootfs.tar.xz" \
  | tar -xJ -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" dnf -y install --setopt=install_weak_deps=False \
  socat chrony iproute tini sudo wget curl ca-certificates git procps-ng
chroot "$root" dnf clean all
