#!/bin/bash
# minimal-debian: Debian bookworm (minbase) with the tools every capsule image carries.
set -euo pipefail
root="$1"
# python3 with pip and venv: agents run Python first.
pkgs=socat,chrony,iproute2,tini,sudo,wget,curl,ca-certificates,git,procps,python3,python3-pip,python3-venv
args=(--variant=minbase --include="$pkgs" --skip=check/empty)
# Reusing the host's apt sources keeps mirror configuration in one place; an explicit
# mirror wins.
if [ -n "${WRENN_DEBIAN_MIRROR:-}" ]; then
  mmdebstrap "${args[@]}" bookworm "$root" "$WRENN_DEBIAN_MIRROR"
else
  mmdebstrap "${args[@]}" bookworm "$root"
fi
# E2B's defaults, so scripts written for E2B run unchanged: `python` is python3, and a user
# `user` (home /home/user, passwordless sudo) exists for the SDKs' default user.
ln -sf python3 "$root/usr/bin/python"
chroot "$root" useradd --create-home --home-dir /home/user --shell /bin/bash --uid 1000 user
echo 'user ALL=(ALL:ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/user"
chmod 0440 "$root/etc/sudoers.d/user"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* 2>/dev/null || true
