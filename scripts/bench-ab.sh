#!/usr/bin/env bash
# A/B ingest benchmark of two Tresor builds on one busy machine: old and new run
# alternately (order flipped every repeat), same data set, same clients, on the
# embedded database and on PostgreSQL; medians and new/old ratios at the end.
#   usage: scripts/bench-ab.sh OLD_REPO NEW_REPO DATASET [REPEAT=3]
#   env: PHASES (default "cstore cstore_par stow"; also echo, qido, meta, cfind...), AB_DBS (default "embedded pg"), AB_OUT
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") ds=$(realpath "$3") repeat=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH_HARNESS:-$here/../../shared/bench}
[ -x "$bench/run.sh" ] || bench=/work/shared/bench
out=${AB_OUT:-/tmp/pacs-bench/ab-$(date +%s).jsonl}
mkdir -p "$(dirname "$out")"
export PHASES=${PHASES:-cstore cstore_par stow}
export TRESOR_BENCH_HTTP_PORT=${TRESOR_BENCH_HTTP_PORT:-18443} TRESOR_BENCH_DIMSE_PORT=${TRESOR_BENCH_DIMSE_PORT:-12762}
uptime | sed 's/^/# /' >&2
for r in $(seq 1 "$repeat"); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for db in ${AB_DBS:-embedded pg}; do
    for side in $order; do
      repo=$old; [ "$side" = new ] && repo=$new
      work=/tmp/pacs-bench/ab-$side
      flag=""; [ "$db" = pg ] && flag="--pg"
      BENCH_TRESOR_REPO=$repo node "$here/bench-provision.mjs" "$work" $flag >/dev/null
      "$bench/run.sh" "$work/target.env" "$ds" 2>>"$out.log" | SIDE=$side DB=$db R=$r python3 -c '
import json, os, sys
for l in sys.stdin:
    o = json.loads(l); o.update(side=os.environ["SIDE"], db=os.environ["DB"], repeat=int(os.environ["R"])); print(json.dumps(o))' >>"$out"
      kill "$(cat "$work/tresor.pid")" 2>/dev/null || true
      sleep 1
    done
  done
done
uptime | sed 's/^/# /' >&2
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# Rates (inst/s: higher is better) and latencies (median ms of each run: lower is better).
for field, unit in (("inst_per_s", "inst/s"), ("median_ms", "p50 ms")):
    keys = sorted({(r["db"], r["metric"]) for r in rows if field in r})
    if not keys: continue
    print(f"| db | metric | old {unit} (median) | new {unit} (median) | new/old | runs |")
    print("|---|---|---:|---:|---:|---:|")
    for db, m in keys:
        v = {s: [r[field] for r in rows if r["db"] == db and r["metric"] == m and r["side"] == s and field in r] for s in ("old", "new")}
        if not v["old"] or not v["new"]: continue
        o, n = statistics.median(v["old"]), statistics.median(v["new"])
        print(f"| {db} | {m} | {o:.1f} | {n:.1f} | {n/o:.2f} | {len(v['old'])}+{len(v['new'])} |")
    print()
PY
echo "raw: $out" >&2
