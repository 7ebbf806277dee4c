#!/usr/bin/env bash
# WADO-RS whole-study retrieve A/B with the server's CPU time per MB (issue 13 item 2): two
# builds (each a repo with dist/) side by side on PostgreSQL, each provisioned once and
# loaded with the studies the harness's wado phase reads (the first third of the data set,
# by C-STORE over one association: run.sh's g1), then the wado phase alternated, order
# flipped every repeat. Per run: MB/s from the shared harness (its Python client, over
# HTTPS/1.1), CPU-ms/MB from /proc/PID/stat (utime+stime, every thread) of the server and
# its minor page faults per MB (fresh memory for every chunk shows there).
# On a shared machine the MB/s moves with other people's load; the CPU-ms/MB much less.
#   usage: scripts/bench-wado-cpu.sh OLD_REPO NEW_REPO DATASET [REPEAT=6]
#   env: AB_WORK (default /tmp/pacs-bench/wado-ab), WADO_STUDIES (default 5),
#        TRESOR_BENCH_HTTP_PORT / TRESOR_BENCH_DIMSE_PORT (default 18743 / 13062; old: +1)
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") ds=$(realpath "$3") repeat=${4:-6}
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH_HARNESS:-$here/../../shared/bench}
[ -x "$bench/run.sh" ] || bench=/work/shared/bench
base=${AB_WORK:-/tmp/pacs-bench/wado-ab}
out=$base/results.jsonl
mkdir -p "$base"; : > "$out"
http=${TRESOR_BENCH_HTTP_PORT:-18743} dimse=${TRESOR_BENCH_DIMSE_PORT:-13062}
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
faults() { awk '{print $10}' "/proc/$1/stat"; }
declare -A pid
for side in new old; do
  repo=$new port=$http dport=$dimse
  [ "$side" = old ] && repo=$old port=$((http + 1)) dport=$((dimse + 1))
  TRESOR_BENCH_HTTP_PORT=$port TRESOR_BENCH_DIMSE_PORT=$dport BENCH_TRESOR_REPO=$repo \
    node "$here/bench-provision.mjs" "$base/$side" --pg >/dev/null
  pid[$side]=$(cat "$base/$side/tresor.pid")
  PHASES=cstore "$bench/run.sh" "$base/$side/target.env" "$ds" 2>>"$base/run.log" | grep -q cstore_single
  # Three retrieves to warm the JIT, not counted: with one, the first repeats still moved.
  for _ in 1 2 3; do PHASES=wado "$bench/run.sh" "$base/$side/target.env" "$ds" >/dev/null 2>>"$base/run.log"; done
done
uptime | sed 's/^/# /' >&2
for r in $(seq 1 "$repeat"); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for side in $order; do
    c0=$(cpu "${pid[$side]}") f0=$(faults "${pid[$side]}")
    line=$(PHASES=wado "$bench/run.sh" "$base/$side/target.env" "$ds" 2>>"$base/run.log" | grep wado_rs_study || true)
    c1=$(cpu "${pid[$side]}") f1=$(faults "${pid[$side]}")
    [ -n "$line" ] || { echo "# $side: no result (see $base/run.log)" >&2; continue; }
    echo "$line" | SIDE=$side R=$r FAULTS=$((f1 - f0)) CPU_S=$(awk "BEGIN{print ($c1-$c0)/$tck}") python3 -c '
import json, os, sys
o = json.loads(sys.stdin.readline()); o.update(side=os.environ["SIDE"], repeat=int(os.environ["R"]))
o["cpu_ms_per_mb"] = round(float(os.environ["CPU_S"]) * 1000 / o["mb"], 2)
o["minor_faults_per_mb"] = round(int(os.environ["FAULTS"]) / o["mb"], 1); print(json.dumps(o))' >>"$out"
    tail -1 "$out" | cut -c1-200 >&2
  done
done
uptime | sed 's/^/# /' >&2
for side in new old; do kill "${pid[$side]}" 2>/dev/null || true; done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
g = lambda s, k: [r[k] for r in rows if r["side"] == s]
if g("old", "mb_per_s") and g("new", "mb_per_s"):
    o, n = statistics.median(g("old", "mb_per_s")), statistics.median(g("new", "mb_per_s"))
    co, cn = statistics.median(g("old", "cpu_ms_per_mb")), statistics.median(g("new", "cpu_ms_per_mb"))
    print("| metric | old MB/s | new MB/s | new/old | old CPU-ms/MB | new CPU-ms/MB | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| wado_rs_study | {o:.1f} | {n:.1f} | {n/o:.2f} | {co:.2f} | {cn:.2f} | {len(g('old','mb'))}+{len(g('new','mb'))} |")
    fo, fn = statistics.median(g("old", "minor_faults_per_mb")), statistics.median(g("new", "minor_faults_per_mb"))
    print(f"| minor page faults per MB | | | | {fo:.1f} | {fn:.1f} | |")
    print(f"| (best run) | {max(g('old','mb_per_s')):.1f} | {max(g('new','mb_per_s')):.1f} | | {min(g('old','cpu_ms_per_mb')):.2f} | {min(g('new','cpu_ms_per_mb')):.2f} | |")
PY
echo "raw: $out" >&2
