#!/usr/bin/env bash
# Installs the system packages Wrenn needs to build, test and run on a Debian 12 host.
# Idempotent: does nothing when everything is present. Needs root (or sudo).
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have protoc        || need+=(protobuf-compiler)
have mmdebstrap    || need+=(mmdebstrap)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
have mkfs.ext4     || need+=(e2fsprogs)
have ip            || need+=(iproute2)
have cc            || need+=(build-essential)
have pkg-config    || need+=(pkg-config)
have curl          || need+=(curl)
have psql          || need+=(postgresql postgresql-client)
have redis-server  || need+=(redis-server)
have file          || need+=(file)
have nft           || need+=(nftables)
have unshare       || need+=(util-linux)
# The E2B SDK tests install the Python SDK into venvs.
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)

updated=0
apt_update() { [ "$updated" -eq 1 ] || { $SUDO apt-get update -q; updated=1; }; }

if [ "${#need[@]}" -gt 0 ]; then
    echo "deps: installing ${need[*]}"
    apt_update
    $SUDO apt-get install -y -q "${need[@]}"
fi

# gVisor: the runsc in bookworm itself is from 2022 (ptrace only); the backports build has systrap.
# Add the backports suite to the existing apt source rather than naming a mirror.
runsc_ok() { have runsc && [[ "$(runsc --version 2>/dev/null)" =~ version\ 0\.0~20(2[4-9]|[3-9][0-9]) ]]; }
if ! runsc_ok; then
    src=/etc/apt/sources.list.d/debian.sources
    if [ -f "$src" ] && ! grep -q 'bookworm-backports' "$src"; then
        $SUDO sed -i 's/^Suites: bookworm bookworm-updates$/& bookworm-backports/' "$src"
    elif [ ! -f "$src" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        line=$(grep -E '^deb .* bookworm main' /etc/apt/sources.list | head -n1 || true)
        [ -n "$line" ] && echo "${line/ bookworm / bookworm-backports }" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
    fi
    updated=0; apt_update
    $SUDO apt-get install -y -q -t bookworm-backports runsc
fi
echo "deps: ok (runsc $(runsc --version 2>/dev/null | head -n1 | awk '{print $3}'))"
