#!/usr/bin/env bash
# Makes sure the base images the tests and `make dev` boot exist under $WRENN_DIR and carry the
# current envd. Builds minimal-busybox (seconds) and minimal-debian (about a minute) when missing;
# re-injects envd and the init script when either changed since the image was built.
set -euo pipefail
cd "$(dirname "$0")/.."
WRENN_DIR="${WRENN_DIR:-/var/lib/wrenn}"
export WRENN_DIR
platform=0000000000000000000000000
envd="${ENVD_BIN:-builds/envd}"
[ -x "$envd" ] || { echo "images: $envd missing (run make envd-static)" >&2; exit 1; }
want=$(sha256sum "$envd" | cut -d' ' -f1)
want_init=$(sha256sum images/wrenn-init | cut -d' ' -f1)
sum() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

ensure() { # distro template-id
    local dir="$WRENN_DIR/images/teams/$platform/$2"
    local recipe
    recipe=$(sum "images/distro/$1.sh")
    if [ ! -d "$dir/rootfs" ]; then
        echo "images: building minimal-$1" >&2
        bash images/build.sh "$1" "$envd"
    elif [ "$(cat "$dir/rootfs/etc/wrenn-image-recipe" 2>/dev/null)" != "$recipe" ]; then
        echo "images: rebuilding minimal-$1 (its recipe images/distro/$1.sh changed)" >&2
        bash images/build.sh "$1" "$envd"
    elif [ "$(sum "$dir/rootfs/usr/local/bin/envd")" != "$want" ] ||
         [ "$(sum "$dir/rootfs/usr/local/bin/wrenn-init")" != "$want_init" ]; then
        echo "images: re-injecting envd and wrenn-init into the base images" >&2
        bash images/reinject-envd.sh "$envd"
    fi
}
ensure busybox 0000000000000000000000005
ensure debian  0000000000000000000000004
