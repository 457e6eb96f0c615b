#!/usr/bin/env bash
# DPS live stage (issue 15, item 5): `vibra-lab reproduce fig5.7-live --quick` three times on
# real processes (Open MPI's patterns with the PMPI hook, host cgroups with a CFS quota and a
# burner, one vibrad dps role per host, their ledgers on one real etcd) and its direction over
# the 3 repeats, enforced (the median of the per-repeat bank / static ratios): the bank at
# least 15% faster than static at the smallest share, within 7% of static at 0.5. Then a run
# interrupted with SIGINT must leave no cgroup, namespace, process (etcd among them) or folder
# behind.
set -euo pipefail
cd "$(dirname "$0")/.."

step=""
trap 'echo "dps-live stage FAILED at step: $step" >&2' ERR
run_step() { step="$1"; printf '\n----- dps-live: %s -----\n' "$1"; }
stage_started=$(date +%s)

run_step "system packages (Open MPI, make, etcd for the daemons' directory)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev make gcc libc6-dev \
  etcd-server >/dev/null

run_step "release build of vibra-lab and vibrad"
cargo build --release -p vibra-lab -p vibrad

# Nothing of a run may stay behind: host cgroups vibra-live-*, VM namespaces vl*, folders.
leftovers() {
  { ls /sys/fs/cgroup/*/ /sys/fs/cgroup/ 2>/dev/null | grep '^vibra-live-' || true
    ip netns list 2>/dev/null | grep -E '^vl[0-9a-f]{6}v[0-9]+' || true
    ls "${TMPDIR:-/tmp}" | grep '^vibra-live-' || true
    pgrep -f 'vibrad --config .*vibra-live-' || true
    pgrep -f 'etcd --name vl' || true; }
}

out=target/vibra-lab-live
rm -rf "$out"
mkdir -p "$out"
run_step "fig5.7-live --quick, 3 repeats (VIBRA_REQUIRE_PRIVILEGED=1: no skip)"
for run in 1 2 3; do
  printf 'run %s: load before: %s\n' "$run" "$(uptime)"
  started=$(date +%s)
  VIBRA_REQUIRE_PRIVILEGED=1 target/release/vibra-lab reproduce fig5.7-live --quick --json \
    --out "$out/run$run" > "$out/run$run.json" 2> "$out/run$run.log" || {
      tail -20 "$out/run$run.log" >&2; false; }
  printf 'run %s: %d s, load after: %s\n' "$run" $(( $(date +%s) - started )) "$(uptime)"
  [ -z "$(leftovers)" ] || { echo "left behind after run $run:"; leftovers; false; } >&2
done

run_step "direction over the 3 repeats (enforced)"
# Until vibrad's min_share safeguard and the calibrated work (integration/vibra-lab README,
# "DPS on real processes"), the bank's time at 0.1 was bimodal (a VM that waited through a
# period gave its whole share away, then computed at almost nothing), and the check was only
# printed.
direction=0
python3 - "$out"/run1.json "$out"/run2.json "$out"/run3.json <<'EOF' || direction=$?
import json, statistics, sys
runs = [json.loads(open(p).read().strip().splitlines()[-1])["rows"] for p in sys.argv[1:]]
shares = sorted({r["share"] for r in runs[0]})
def column(share, field):
    return [next(r[field] for r in rows if r["share"] == share) for rows in runs]
for share in shares:
    for field in ("static_s", "distributed_s", "bank_s", "static_adj_s", "distributed_adj_s", "bank_adj_s"):
        v = column(share, field)
        print(f"share {share}: {field:18} mean {statistics.mean(v):6.2f} s  sd {statistics.stdev(v):5.2f}  runs {' '.join(f'{x:.2f}' for x in v)}")
lo, hi = shares[0], shares[-1]
mean_of = lambda share, f: statistics.mean(column(share, f))
print(f"raw (unadjusted) bank vs static: {100 * (1 - mean_of(lo, 'bank_s') / mean_of(lo, 'static_s')):.1f}% faster at {lo}, "
      f"{100 * abs(mean_of(hi, 'bank_s') / mean_of(hi, 'static_s') - 1):.1f}% apart at {hi}")
# The check is on the speed-adjusted times (each run scaled by node 1's CPU time per element
# against the calibration's): the VM's speed wanders by several percent between runs. It
# compares bank and static within each repeat (their runs are tens of seconds apart) and takes
# the median over the 3 repeats: a burst of the machine's co-tenants that hits one run of one
# repeat moves the median little and the mean by a third of its size (measured per-repeat
# ratios at 0.5: 1.05, 1.11, 1.05 in the CI run that failed on the mean at 7.9%; 0.83, 0.98,
# 1.01 in a stage run here, whose mean was 6.4% on the other side). The means are printed.
def ratios(share):
    return [b / s for s, b in zip(column(share, "static_adj_s"), column(share, "bank_adj_s"))]
r_lo, r_hi = ratios(lo), ratios(hi)
gain_lo = 1 - statistics.median(r_lo)
off_hi = abs(statistics.median(r_hi) - 1)
print(f"bank / static per repeat (adjusted) at {lo}: {' '.join(f'{x:.3f}' for x in r_lo)}; at {hi}: {' '.join(f'{x:.3f}' for x in r_hi)}")
mean_lo = 1 - mean_of(lo, "bank_adj_s") / mean_of(lo, "static_adj_s")
mean_hi = abs(mean_of(hi, "bank_adj_s") / mean_of(hi, "static_adj_s") - 1)
print(f"means of the adjusted times: {100 * mean_lo:.1f}% faster at {lo}, {100 * mean_hi:.1f}% apart at {hi} (printed only)")
print(f"speed-adjusted bank vs static at {lo}, median over the repeats: {100 * gain_lo:.1f}% faster (want >= 15%)")
print(f"speed-adjusted bank vs static at {hi}, median over the repeats: {100 * off_hi:.1f}% apart (want <= 7%)")
ok = gain_lo >= 0.15 and hi == 0.5 and off_hi <= 0.07
sys.exit(0 if ok else 3)
EOF

case $direction in
  0) echo "direction: met" ;;
  3) echo "DIRECTION NOT MET: the bank was not >= 15% faster at 0.1 or not within 7% at 0.5" >&2; false ;;
  *) echo "the direction check could not read the rows (status $direction)" >&2; false ;;
esac

run_step "SIGINT in the middle of a run tears everything down"
VIBRA_REQUIRE_PRIVILEGED=1 target/release/vibra-lab reproduce fig5.8-live --quick --json \
  --out "$out/interrupted" > /dev/null 2> "$out/interrupted.log" &
pid=$!
sleep 12
kill -INT "$pid"
status=0
wait "$pid" || status=$?
echo "vibra-lab exited with $status after SIGINT"
[ "$status" -ne 0 ] || { echo "an interrupted run must fail" >&2; false; }
grep -q "interrupted" "$out/interrupted.log" || { tail -5 "$out/interrupted.log" >&2; false; }
[ -z "$(leftovers)" ] || { echo "left behind after SIGINT:"; leftovers; false; } >&2

echo "dps-live stage ok in $(( $(date +%s) - stage_started )) s"
