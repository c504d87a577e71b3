#!/bin/bash
# minimal-busybox: busybox-static and nothing else (a few MB; fast tests).
set -euo pipefail
root="$1"
bb="${WRENN_BUSYBOX:-/bin/busybox}"
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || ldd "$bb" 2>&1 | grep -q 'not a dynamic' \
  || { echo "error: $bb is not a static busybox (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,var/tmp,home}
install -m 0755 "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] && continue
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
echo 'root:*:19000:0:99999:7:::' > "$root/etc/shadow"
chmod 0640 "$root/etc/shadow"
echo wrenn > "$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
chmod 1777 "$root/tmp" "$root/var/tmp"
