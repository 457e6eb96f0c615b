#!/usr/bin/env bash
# vibrad stage: the directory suite against a real etcd (Debian's etcd-server), the
# multi-host test (three vibrad processes, real cgroups, namespaces, tc and traffic) and the
# dps role's tests (three dps daemons on loopback, real cgroup CPU weights). Needs
# root; VIBRA_REQUIRE_PRIVILEGED=1 turns any "SKIPPED" into a failure. Under 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
CURRENT=setup
trap 'echo "vibrad stage FAILED at step: $CURRENT" >&2' ERR
step() { CURRENT="$*"; printf -- '--- vibrad: %s\n' "$*"; }

step "apt packages (etcd-server for the directory, iproute2 for ip/tc, util-linux for nsenter/unshare)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends etcd-server iproute2 util-linux >/dev/null
# Debian's postinst may start a system etcd on 2379; the tests start their own on other ports.
etcd --version
[ "$(id -u)" = 0 ] || { echo "vibrad stage needs root" >&2; exit 1; }

step "check-config on the example configurations (agent role, dps role)"
cargo run -q -p vibrad -- check-config integration/vibrad/vibrad.example.toml
cargo run -q -p vibrad -- check-config integration/vibrad/vibrad.dps.example.toml

step "traffic source for the multi-host test"
cargo build -q -p vibra-host --bin vibra-host-load

step "vibrad tests on both directories and three hosts, and the dps role's (tests/dps.rs: three dps daemons through faulty relays, and with real cgroups whose weights follow the shares); skipping is a failure"
VIBRA_REQUIRE_PRIVILEGED=1 cargo test -p vibrad -- --nocapture 2>&1 | tee target/vibrad-tests.log
grep -q 'SKIPPED' target/vibrad-tests.log && { echo "a vibrad test skipped" >&2; exit 1; }
echo "vibrad stage passed"
