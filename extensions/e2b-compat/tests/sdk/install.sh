#!/usr/bin/env bash
# Installs the E2B SDK releases the compatibility tests drive, from the package registries,
# into $E2B_SDK_DIR (default /var/tmp/wrenn-e2b-sdks): one Python venv per release and one
# npm project. Re-running it is cheap: an installed release is kept.
#
# The releases tested (README "Use the E2B SDKs with Wrenn"):
#   Python 2.63.0 (v2 paths, no key-shape check) and 2.45.1 (v1 paths, validates e2b_<hex>);
#   JavaScript 2.51.0.
set -euo pipefail
dir="${E2B_SDK_DIR:-/var/tmp/wrenn-e2b-sdks}"
mkdir -p "$dir"
# The SDK tests run in parallel and each calls this: one installs, the others wait for it.
exec 9>"$dir/.install.lock"
flock 9
for v in 2.63.0 2.45.1; do
    venv="$dir/py-$v"
    if ! "$venv/bin/python" -c "import e2b" 2>/dev/null; then
        echo "e2b sdks: installing e2b $v (Python)" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "e2b==$v"
    fi
done
js="$dir/js-2.51.0"
if [ ! -f "$js/node_modules/e2b/package.json" ]; then
    echo "e2b sdks: installing e2b 2.51.0 (npm)" >&2
    rm -rf "$js" && mkdir -p "$js"
    (cd "$js" && printf '{"name":"wrenn-e2b-sdk-tests","private":true}\n' > package.json &&
        npm install --silent --no-audit --no-fund "e2b@2.51.0" >/dev/null)
fi
echo "$dir"
