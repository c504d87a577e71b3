# Shared helpers of the image builders (sourced).
PLATFORM_TEAM=0000000000000000000000000

die() { echo "error: $*" >&2; exit 1; }

images_dir() { echo "${WRENN_IMAGES_DIR:-${WRENN_DIR:-/var/lib/wrenn}/images}"; }

# template_dir N -> the platform template directory of reserved id N (base36, 25 chars).
template_dir() { printf '%s/teams/%s/%025d\n' "$(images_dir)" "$PLATFORM_TEAM" "$1"; }

find_envd() {
  for c in "${1:-}" "${WRENN_ENVD:-}" "$REPO/builds/envd" \
           "${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}/x86_64-unknown-linux-gnu/release/envd"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return; fi
  done
  die "no envd binary: build it (RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p wrenn-envd --target x86_64-unknown-linux-gnu) or pass its path"
}

# install_wrenn ROOT ENVD: envd, the init script, wrenn-user with passwordless sudo.
install_wrenn() {
  local root="$1" envd="$2"
  install -D -m 0755 "$envd" "$root/usr/local/bin/envd"
  install -D -m 0755 "$HERE/wrenn-init" "$root/usr/local/bin/wrenn-init"
  mkdir -p "$root/run/wrenn" "$root/tmp" "$root/home/wrenn-user" "$root/etc/sudoers.d"
  chmod 1777 "$root/tmp"
  if ! grep -q '^wrenn-user:' "$root/etc/passwd" 2>/dev/null; then
    echo 'wrenn-user:x:1000:1000:Wrenn user:/home/wrenn-user:/bin/sh' >> "$root/etc/passwd"
    echo 'wrenn-user:x:1000:' >> "$root/etc/group"
    [ -f "$root/etc/shadow" ] && echo 'wrenn-user:!:19000:0:99999:7:::' >> "$root/etc/shadow"
  fi
  chown 1000:1000 "$root/home/wrenn-user"
  echo 'wrenn-user ALL=(ALL) NOPASSWD:ALL' > "$root/etc/sudoers.d/wrenn-user"
  chmod 0440 "$root/etc/sudoers.d/wrenn-user"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$root/etc/wrenn-release"
}

# make_ext4 ROOT IMAGE: the same tree as an ext4 image for microVM runtimes (no loop mount).
make_ext4() {
  local root="$1" img="$2" kb
  kb=$(du -sk "$root" | cut -f1)
  kb=$(( kb + kb / 4 + 65536 ))
  mkfs.ext4 -q -F -L wrenn-root -d "$root" "$img" "${kb}K"
}

# replace_dir NEW OLD: atomically put NEW where OLD is (rename; the old tree is removed after).
replace_dir() {
  local new="$1" old="$2"
  if [ -e "$old" ]; then
    local trash
    trash="$(dirname "$old")/.old-$(basename "$old")-$$"
    mv "$old" "$trash"
    mv "$new" "$old"
    rm -rf "$trash"
  else
    mv "$new" "$old"
  fi
  chmod 0755 "$old"
}

# need_mirror VAR NAME: fail clearly when a distro mirror is not configured or not reachable.
need_mirror() {
  local var="$1" name="$2" url="${!1:-}"
  [ -n "$url" ] || die "$name needs a mirror: set $var (e.g. an http(s) URL of a $name mirror)"
  curl -fsS -m 10 -o /dev/null "$url" 2>/dev/null || curl -sS -m 10 -o /dev/null "$url" \
    || die "$name mirror $url ($var) is not reachable from this host"
}
