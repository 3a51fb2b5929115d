#!/usr/bin/env bash
# End-to-end benchmark: the generated file (1,000,000 rows by default) dropped, ingested and pushed to a loopback
# `esgate receive --acknowledge-only` over mutual TLS (certificates from certs/make-certs.sh), timed until the
# receiver has acknowledged everything (`run --once` returned; `esgate uplink status` lag 0 is checked after).
# Everything durable (WAL, synchronous=FULL, packages fixed before their first send). Reference, in the same run:
# iconv + sqlite3 .import of the same rows, as in tools/bench.sh; BENCH_REPEAT runs of each in turn, medians.
# Writes a "## End to end" section into docs/benchmarks.md (other sections are kept).
#
#   tools/bench-uplink.sh                      BENCH_ROWS=20000 tools/bench-uplink.sh (a quick check)
#   ESGATE=.build/debug/esgate BENCH_ROWS=20000 tools/bench-uplink.sh   (any binary; figures are for release)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${BENCH_ROWS:-1000000}
WORK=${BENCH_WORK:-bench-work-uplink}
ESGATE=$PWD/${ESGATE:-.build/release/esgate}
[ -x "$ESGATE" ] || { echo "bench-uplink: $ESGATE not found (swift build -c release)" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK/drop" "$WORK/adapters" "$WORK/state" "$WORK/receiver"
WORK=$(cd "$WORK" && pwd)
cp -r mappings "$WORK/mappings"
sed -e 's|^  folder:.*|  folder: ../drop|' -e 's|^  ready:.*|  ready: rename|' adapters/gen-cases-drop.yaml > "$WORK/adapters/gen-cases-drop.yaml"
certs/make-certs.sh "$WORK/certs" 410103 > /dev/null

echo "generating $ROWS rows (GB18030, CRLF)…"
python3 tools/gen_cases.py --rows "$ROWS" --out "$WORK/cases.csv"
BYTES=$(stat -c %s "$WORK/cases.csv")
sync
now() { date +%s.%N; }

# This machine kind is a VM whose neighbours make single runs vary by ±10-20% (the reference as much as esgate):
# the two are run in turn BENCH_REPEAT times (default 3), each esgate run on a new state directory and a new
# receiver, and the medians compared; the spread is reported too.
REPEAT=${BENCH_REPEAT:-3}
: > "$WORK/runs.txt"
RECEIVER=
trap 'if [ -n "$RECEIVER" ]; then kill $RECEIVER 2>/dev/null || true; fi' EXIT
for run in $(seq "$REPEAT"); do
  echo "run $run/$REPEAT — reference: iconv + sqlite3 .import (WAL, synchronous=FULL)…"
  rm -f "$WORK/cases-utf8.csv" "$WORK/reference.sqlite"*
  sync
  t0=$(now)
  iconv -f GB18030 -t UTF-8 "$WORK/cases.csv" > "$WORK/cases-utf8.csv"
  sqlite3 "$WORK/reference.sqlite" "PRAGMA journal_mode=WAL;" "PRAGMA synchronous=FULL;" \
    ".mode csv" ".import $WORK/cases-utf8.csv cases" > /dev/null 2>&1
  t1=$(now)
  REF_ROWS=$(sqlite3 "$WORK/reference.sqlite" "SELECT count(*) FROM cases")
  rm -f "$WORK/cases-utf8.csv" "$WORK/reference.sqlite"*

  echo "run $run/$REPEAT — loopback receiver: esgate receive --acknowledge-only over mutual TLS…"
  rm -rf "$WORK/receiver" "$WORK/state" "$WORK/drop" && mkdir -p "$WORK/receiver" "$WORK/state" "$WORK/drop"
  "$ESGATE" receive --port 0 --cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" --ca "$WORK/certs/ca.pem" \
    --acknowledge-only --state "$WORK/receiver" > "$WORK/receiver/port.txt" 2> "$WORK/receiver/log.txt" &
  RECEIVER=$!
  for _ in $(seq 200); do grep -qE ':[0-9]+/' "$WORK/receiver/port.txt" 2>/dev/null && break; sleep 0.1; done
  PORT=$(grep -oE ':[0-9]+/' "$WORK/receiver/port.txt" | tr -d ':/' | tail -1)
  [ -n "$PORT" ] || { echo "bench-uplink: the receiver did not start: $(cat "$WORK/receiver/log.txt")" >&2; exit 1; }

  # Supervision (alerts) is not part of this measurement; reference data from the file, nothing fetched.
  cat > "$WORK/gateway.yaml" <<YAML
district: "410103"
state_dir: state
log_level: warning
supervision: false
reference_data: $PWD/reference/reference-data.xml
receivers:
  - name: province
    url: https://127.0.0.1:$PORT/pui
    division: "410000"
    ca_file: certs/ca.pem
    cert_file: certs/client.pem
    key_file: certs/client.key
YAML

  echo "run $run/$REPEAT — esgate: CSV drop → mapping → schema validation → journal → packages (exc-c14n, SM3) → mutual TLS…"
  sync
  t2=$(now)
  cp "$WORK/cases.csv" "$WORK/drop/cases.csv"
  /usr/bin/time -v -o "$WORK/time.txt" "$ESGATE" run --once --json --config "$WORK/gateway.yaml" > "$WORK/esgate.json"
  t3=$(now)
  # The check that everything was acknowledged is not timed; a run --once that stopped early (a failing
  # receiver) is followed by uplink run --once until the lag is 0, and the time runs until then.
  lag() { "$ESGATE" uplink status --json --config "$WORK/gateway.yaml" | python3 -c "import json,sys; print(json.load(sys.stdin)['status']['receivers'][0]['lag'])"; }
  LAG=$(lag)
  while [ "$LAG" != 0 ]; do
    echo "lag $LAG after run --once; uplink run --once…"
    "$ESGATE" uplink run --once --config "$WORK/gateway.yaml" > /dev/null || true
    t3=$(now)
    LAG=$(lag)
  done
  kill $RECEIVER 2>/dev/null || true
  wait $RECEIVER 2>/dev/null || true
  RECEIVER=
  ES_ROWS=$(python3 -c "import json;print(json.load(open('$WORK/esgate.json'))['files'][0]['counts']['rows'])")
  RECORDS=$(sqlite3 "$WORK/state/journal.sqlite" "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM record_chunks")
  SENT=$(sqlite3 "$WORK/state/journal.sqlite" "SELECT coalesce(sum(accepted),0) || ' ' || count(*) FROM uplink_packages WHERE receiver='province' AND state='receipted'")
  RSS_KB=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
  echo "$t0 $t1 $REF_ROWS $t2 $t3 $ES_ROWS $RECORDS $SENT $RSS_KB" >> "$WORK/runs.txt"
done

python3 - "$ROWS" "$BYTES" "$WORK/runs.txt" "$ESGATE" <<'PY'
import datetime, os, platform, re, statistics, sys
rows, size, runs_file, binary = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = []
for line in open(runs_file):
    t0, t1, ref_rows, t2, t3, es_rows, records, accepted, packages, rss_kb = line.split()
    runs.append(dict(ref_s=float(t1) - float(t0), ref_rows=int(ref_rows), es_s=float(t3) - float(t2), es_rows=int(es_rows),
                     records=int(records), accepted=int(accepted), packages=int(packages), rss_kb=int(rss_kb)))
n = len(runs)
ref_s = statistics.median(r["ref_s"] for r in runs)
es_s = statistics.median(r["es_s"] for r in runs)
ref_rows, es_rows = runs[-1]["ref_rows"], runs[-1]["es_rows"]
ref_rate, es_rate = ref_rows / ref_s, es_rows / es_s
ratios = sorted((r["es_rows"] / r["es_s"]) / (r["ref_rows"] / r["ref_s"]) for r in runs)
rss_mb = max(r["rss_kb"] for r in runs) / 1024
last = runs[-1]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
machine = f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"
build = "release" if "/release/" in binary else "debug"
spread = f"{n} runs in turn, medians; per-run ratios {ratios[0]:.2f}-{ratios[-1]:.2f}; reference {min(r['ref_s'] for r in runs):.2f}-{max(r['ref_s'] for r in runs):.2f} s, esgate {min(r['es_s'] for r in runs):.2f}-{max(r['es_s'] for r in runs):.2f} s"
section = f"""## End to end

Measured by `tools/bench-uplink.sh` ({n} runs in turn, medians) on {datetime.date.today().isoformat()} ({build} build; {machine}):
{rows:,} rows of `tools/gen_cases.py` ({size/1e6:.0f} MB) dropped, ingested and pushed over mutual TLS to a loopback
`esgate receive --acknowledge-only`, timed until `run --once` returned with everything acknowledged (checked
afterwards: `uplink status` lag 0).

| what | seconds | rows/s |
|---|---|---|
| reference: `iconv -f GB18030 -t UTF-8` + `sqlite3 .import` into a WAL table, synchronous=FULL | {ref_s:.2f} | {ref_rate:,.0f} |
| esgate: drop → mapping → validation → journal → packages (Body in canonical form + SM3, fixed in SQLite before sending) → mTLS → receipts | {es_s:.2f} | {es_rate:,.0f} |

- Ratio esgate / reference: **{es_rate/ref_rate:.2f}** (target ≥ 0.6; {spread}).
- Gateway peak RSS: **{rss_mb:.1f} MB** (`esgate run --once`, highest of the runs).
- {last['records']:,} journal records from {last['es_rows']:,} rows; {last['accepted']:,} acknowledged in {last['packages']:,} packages.
"""
path = "docs/benchmarks.md"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
# Replace an existing "## End to end" section (up to the next "## " heading), else append.
pattern = re.compile(r"^## End to end\n.*?(?=^## |^<!-- |\Z)", re.S | re.M)
text = pattern.sub(lambda _: section + "\n", text, count=1) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text.rstrip("\n") + "\n")
print(section)
bad = [r for r in runs if r["accepted"] != r["records"]]
if bad:
    sys.exit(f"bench-uplink: {bad[0]['records']} records journaled but {bad[0]['accepted']} acknowledged")
PY
