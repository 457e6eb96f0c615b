#!/usr/bin/env bash
# Linux host-controller stage: vibra-host's tests against real cgroups, network namespaces,
# veth pairs and tc qdiscs, with real CPU and traffic load. They need root; here they must run:
# VIBRA_REQUIRE_PRIVILEGED=1 turns any "SKIPPED" into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
CURRENT=setup
trap 'echo "host stage FAILED at step: $CURRENT" >&2' ERR
step() { CURRENT="$*"; printf -- '--- host: %s\n' "$*"; }

step "apt packages (iproute2 for ip/tc, util-linux for taskset)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends iproute2 util-linux >/dev/null

step "cgroup layout and kernel features seen by the tests"
grep cgroup /proc/self/mountinfo | awk '{print $5, $(NF-2), $NF}'
[ "$(id -u)" = 0 ] || { echo "host stage needs root" >&2; exit 1; }

step "Linux backend tests (real cgroups, netns, veth, netlink tbf checked against tc; skipping is a failure)"
VIBRA_REQUIRE_PRIVILEGED=1 cargo test -p vibra-host --lib --test linux -- --nocapture 2>&1 | tee target/host-linux-tests.log
grep -q 'SKIPPED' target/host-linux-tests.log && { echo "a Linux backend test skipped" >&2; exit 1; }
echo "host stage passed"
