#!/usr/bin/env bash
# Ingest A/B with the server's CPU time per instance (issue 13): on a shared machine the
# wall-clock rate moves with other people's load, the CPU milliseconds per instance much
# less. Two builds (each a repo with dist/), alternated, order flipped every repeat, on the
# embedded database and on PostgreSQL; per phase (C-STORE 1 association, C-STORE over
# PARALLEL associations, STOW-RS in batches of STOW_BATCH, all over TLS) inst/s from the
# shared harness and CPU-ms/instance from /proc/PID/stat (utime+stime) of the server.
#   usage: scripts/bench-ingest-cpu.sh OLD_REPO NEW_REPO DATASET [REPEAT=1]
#   env: AB_FROM (repeat number to start at; even: new first), AB_DBS (default "embedded pg"), AB_WORK (default /tmp/pacs-bench/cpu-ab), ports
#        TRESOR_BENCH_HTTP_PORT / TRESOR_BENCH_DIMSE_PORT (default 18543 / 12862)
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") ds=$(realpath "$3") repeat=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH_HARNESS:-$here/../../shared/bench}
[ -x "$bench/run.sh" ] || bench=/work/shared/bench
base=${AB_WORK:-/tmp/pacs-bench/cpu-ab}
out=$base/results.jsonl
mkdir -p "$base"; : > "$out"
export TRESOR_BENCH_HTTP_PORT=${TRESOR_BENCH_HTTP_PORT:-18543} TRESOR_BENCH_DIMSE_PORT=${TRESOR_BENCH_DIMSE_PORT:-12862}
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
uptime | sed 's/^/# /' >&2
first=${AB_FROM:-1} # AB_FROM=2: start with the new build
for r in $(seq "$first" $((first + repeat - 1))); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for db in ${AB_DBS:-embedded pg}; do
    for side in $order; do
      repo=$old; [ "$side" = new ] && repo=$new
      work=$base/$side
      flag=""; [ "$db" = pg ] && flag="--pg"
      BENCH_TRESOR_REPO=$repo node "$here/bench-provision.mjs" "$work" $flag >/dev/null
      pid=$(cat "$work/tresor.pid")
      for phase in cstore cstore_par stow; do
        c0=$(cpu "$pid")
        line=$(PHASES=$phase "$bench/run.sh" "$work/target.env" "$ds" 2>>"$base/run.log" | grep inst_per_s || true)
        c1=$(cpu "$pid")
        [ -n "$line" ] || { echo "# $side $db $phase: no result (see $base/run.log)" >&2; continue; }
        echo "$line" | SIDE=$side DB=$db R=$r CPU_S=$(awk "BEGIN{print ($c1-$c0)/$tck}") python3 -c '
import json, os, sys
o = json.loads(sys.stdin.readline()); o.update(side=os.environ["SIDE"], db=os.environ["DB"], repeat=int(os.environ["R"]))
o["cpu_ms_per_inst"] = round(float(os.environ["CPU_S"]) * 1000 / o["n"], 2); print(json.dumps(o))' >>"$out"
        tail -1 "$out" >&2
      done
      kill "$pid" 2>/dev/null || true
      sleep 1
    done
  done
done
uptime | sed 's/^/# /' >&2
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["db"], r["metric"]) for r in rows})
print("| db | metric | old inst/s | new inst/s | new/old | old CPU-ms/inst | new CPU-ms/inst | runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for db, m in keys:
    g = lambda s, k: [r[k] for r in rows if r["db"] == db and r["metric"] == m and r["side"] == s]
    if not g("old", "inst_per_s") or not g("new", "inst_per_s"): continue
    o, n = statistics.median(g("old", "inst_per_s")), statistics.median(g("new", "inst_per_s"))
    co, cn = statistics.median(g("old", "cpu_ms_per_inst")), statistics.median(g("new", "cpu_ms_per_inst"))
    print(f"| {db} | {m} | {o:.1f} | {n:.1f} | {n/o:.2f} | {co:.1f} | {cn:.1f} | {len(g('old','n'))}+{len(g('new','n'))} |")
PY
echo "raw: $out" >&2
