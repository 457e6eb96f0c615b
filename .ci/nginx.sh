#!/usr/bin/env bash
# CI stage for examples/nginx (issue 6, item 5): builds ngx_http_upstream_vibra_module against
# Debian's nginx-dev with the flags the packaged nginx was built with, and runs the real-nginx
# test (a real nginx, four real back ends on loopback, `vibra-lab map` as the reference).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export DEBIAN_FRONTEND=noninteractive

step=""
begin() { step="$*"; printf '\n--- nginx stage (%ss): %s\n' "$SECONDS" "$*"; }
trap 'echo "nginx stage FAILED in step: ${step}" >&2' ERR

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

begin "install nginx, nginx-dev (headers and configure tree) and the C toolchain"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    nginx nginx-dev pkg-config gcc make python3 >/dev/null

begin "build libvibra and install it into a temporary prefix"
prefix="$work/vibra"
# the release profile .ci/ffi.sh builds with, so the library it built is reused, not rebuilt
export CARGO_PROFILE_RELEASE_DEBUG=2
bash ffi/install.sh --prefix "$prefix"

begin "build vibra-lab (the reference for where each URL goes)"
# the dev profile reuses what the workspace test stage compiled; `map` needs no speed
cargo build --quiet -p vibra-lab
vibra_lab="$root/target/debug/vibra-lab"

begin "build the module against /usr/share/nginx/src"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" examples/nginx/build.sh "$work/module"

begin "the World Cup URLs, as the wc98 crate reads them"
# wc98-urls prints every URL one per line, byte for byte; the test samples them and skips, with
# a count, those an HTTP request line cannot carry as they are. The data is found by the
# workspace's one rule ($VIBRA_DATA_DIR, else ../shared/data beside the workspace).
wc98=()
if cargo run --quiet -p wc98 --bin wc98-urls > "$work/wc98-urls"; then
    wc98=(--wc98-urls "$work/wc98-urls")
elif [ "${VIBRA_REQUIRE_DATA:-}" = 1 ]; then
    echo "no World Cup URL list, and VIBRA_REQUIRE_DATA=1 forbids running without it" >&2
    false
else
    echo "SKIPPED the real URLs: no World Cup URL list (set VIBRA_DATA_DIR); synthetic ones only" >&2
fi

begin "run the real-nginx test"
python3 examples/nginx/test/test_module.py \
    --module "$work/module/ngx_http_upstream_vibra_module.so" \
    --vibra-lab "$vibra_lab" "${wc98[@]}"

begin "ok"
