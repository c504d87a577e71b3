#!/bin/bash
# Builds a platform base template.
#
#   images/build.sh busybox|debian|ubuntu|alpine|arch|fedora [ENVD_BINARY]
#
# Output: $WRENN_IMAGES_DIR/teams/0000000000000000000000000/<template id>/{rootfs/,rootfs.ext4}
# (WRENN_IMAGES_DIR defaults to $WRENN_DIR/images, WRENN_DIR to /var/lib/wrenn).
# envd: the path given, else $WRENN_ENVD, else builds/envd, else the static build in the
# shared target dir. The build happens in a temporary directory next to the target and
# is renamed into place, so a template is either the old one or the complete new one.
#
# Mirrors (the distros that cannot be fetched from every network take them as config):
#   WRENN_DEBIAN_MIRROR  (optional, mmdebstrap default otherwise)
#   WRENN_UBUNTU_MIRROR, WRENN_ALPINE_MIRROR, WRENN_ARCH_MIRROR, WRENN_FEDORA_MIRROR
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=images/lib.sh
. "$HERE/lib.sh"

distro="${1:-}"
envd="$(find_envd "${2:-}")"
[ -n "$distro" ] || die "usage: $0 busybox|debian|ubuntu|alpine|arch|fedora [ENVD_BINARY]"

case "$distro" in
  ubuntu) id=0 ;; alpine) id=1 ;; arch) id=2 ;; fedora) id=3 ;; debian) id=4 ;; busybox) id=5 ;;
  *) die "unknown distro '$distro'" ;;
esac
template="$(template_dir "$id")"
mkdir -p "$(dirname "$template")"
work="$(mktemp -d "$(dirname "$template")/.build-$distro-XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"

echo "building minimal-$distro into $template (envd: $envd)"
"$HERE/distro/$distro.sh" "$root"
# The recipe's hash: scripts/images-ensure.sh rebuilds an image whose recipe changed.
mkdir -p "$root/etc"
sha256sum "$HERE/distro/$distro.sh" | cut -d' ' -f1 > "$root/etc/wrenn-image-recipe"
install_wrenn "$root" "$envd"
make_ext4 "$root" "$work/rootfs.ext4"
replace_dir "$work" "$template"
trap - EXIT
echo "minimal-$distro ready: $template"
