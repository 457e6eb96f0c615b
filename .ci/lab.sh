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

run_step "main job: cargo run --release -p vibra-lab -- reproduce"
rm -rf target/vibra-lab
report=target/vibra-lab-report.txt
started=$(date +%s)
cargo run --release -q -p vibra-lab -- reproduce > "$report"
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
echo "$experiments experiments, $reports reports, $figures figures"
[ "$reports" -eq "$experiments" ] || { echo "expected $experiments reports" >&2; false; }
[ "$figures" -ge "$experiments" ] || { echo "expected at least one figure each" >&2; false; }
echo "lab stage ok"
