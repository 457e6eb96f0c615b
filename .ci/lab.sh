#!/usr/bin/env bash
# vibra-lab stage: the README's main job, run exactly as a user runs it, must finish, report
# every experiment beside the dissertation and draw every figure as SVG.
set -euo pipefail
cd "$(dirname "$0")/.."

step=""
trap 'echo "lab stage FAILED at step: $step" >&2' ERR
run_step() { step="$1"; printf '\n----- lab: %s -----\n' "$1"; }

run_step "release build of vibra-lab"
cargo build --release -p vibra-lab

# The experiments on the real testbed (root, namespaces, nginx, vibra-proxy) run with --quick
# in their own stage (.ci/testbed.sh), after the packages and the proxy they need are built.
run_step "main job: cargo run --release -p vibra-lab -- reproduce --no-testbed"
rm -rf target/vibra-lab
report=target/vibra-lab-report.txt
started=$(date +%s)
cargo run --release -q -p vibra-lab -- reproduce --no-testbed > "$report"
echo "main job took $(( $(date +%s) - started )) s"
sed -n '/^== summary ==/,$p' "$report"

run_step "every experiment ran and every figure is an SVG"
if grep -q "FAILED" "$report"; then
  echo "an experiment failed" >&2
  false
fi
figures=0
while IFS= read -r path; do
  head -c 4 "$path" | grep "<svg" >/dev/null || { echo "not an SVG: $path" >&2; false; }
  figures=$((figures + 1))
done < <(sed -n 's/^figure: //p' "$report")
experiments=$(cargo run --release -q -p vibra-lab -- list | wc -l)
reports=$(grep -c "^ours vs dissertation:" "$report")
skipped=$(grep -c "^== .*: SKIPPED: --no-testbed ==" "$report" || true)
echo "$experiments experiments, $reports reports, $skipped on the testbed (their own stage), $figures figures"
[ $((reports + skipped)) -eq "$experiments" ] || { echo "expected $experiments reports" >&2; false; }
[ "$figures" -ge "$reports" ] || { echo "expected at least one figure each" >&2; false; }
echo "lab stage ok"
