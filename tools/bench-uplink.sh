#!/usr/bin/env bash
# End-to-end benchmark: the generated file (1,000,000 rows by default) dropped, ingested and pushed to a loopback
# `esgate receive --acknowledge-only` over mutual TLS (certificates from certs/make-certs.sh), timed until the
# receiver has acknowledged everything (`esgate uplink status` lag 0). Everything durable (WAL, synchronous=FULL,
# packages fixed before their first send). Reference, in the same run: iconv + sqlite3 .import of the same rows,
# as in tools/bench.sh. Writes a "## End to end" section into docs/benchmarks.md (other sections are kept).
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

echo "reference: iconv + sqlite3 .import (WAL, synchronous=FULL)…"
t0=$(now)
iconv -f GB18030 -t UTF-8 "$WORK/cases.csv" > "$WORK/cases-utf8.csv"
sqlite3 "$WORK/reference.sqlite" "PRAGMA journal_mode=WAL;" "PRAGMA synchronous=FULL;" \
  ".mode csv" ".import $WORK/cases-utf8.csv cases" > /dev/null 2>&1
t1=$(now)
REF_ROWS=$(sqlite3 "$WORK/reference.sqlite" "SELECT count(*) FROM cases")
rm -f "$WORK/cases-utf8.csv" "$WORK/reference.sqlite"*

echo "loopback receiver: esgate receive --acknowledge-only over mutual TLS…"
"$ESGATE" receive --port 0 --cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" --ca "$WORK/certs/ca.pem" \
  --acknowledge-only --state "$WORK/receiver" > "$WORK/receiver/port.txt" 2> "$WORK/receiver/log.txt" &
RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null || true' EXIT
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

echo "esgate: CSV drop → mapping → schema validation → journal → packages (exc-c14n, SM3) → mutual TLS…"
t2=$(now)
cp "$WORK/cases.csv" "$WORK/drop/cases.csv"
/usr/bin/time -v -o "$WORK/time.txt" "$ESGATE" run --once --json --config "$WORK/gateway.yaml" > "$WORK/esgate.json"
lag() { "$ESGATE" uplink status --json --config "$WORK/gateway.yaml" | python3 -c "import json,sys; print(json.load(sys.stdin)['status']['receivers'][0]['lag'])"; }
LAG=$(lag)
while [ "$LAG" != 0 ]; do   # run --once stopped early (a failing receiver): push the rest, still timed
  echo "lag $LAG after run --once; uplink run --once…"
  "$ESGATE" uplink run --once --config "$WORK/gateway.yaml" > /dev/null || true
  LAG=$(lag)
done
t3=$(now)
ES_ROWS=$(python3 -c "import json;print(json.load(open('$WORK/esgate.json'))['files'][0]['counts']['rows'])")
RECORDS=$(sqlite3 "$WORK/state/journal.sqlite" "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM record_chunks")
SENT=$(sqlite3 "$WORK/state/journal.sqlite" "SELECT coalesce(sum(accepted),0), count(*) FROM uplink_packages WHERE receiver='province' AND state='receipted'")
RSS_KB=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")

python3 - "$ROWS" "$BYTES" "$t0" "$t1" "$REF_ROWS" "$t2" "$t3" "$ES_ROWS" "$RECORDS" "$SENT" "$RSS_KB" "$ESGATE" <<'PY'
import datetime, os, platform, re, subprocess, sys
rows, size, t0, t1, ref_rows, t2, t3, es_rows, records, sent, rss_kb, binary = sys.argv[1:]
rows, size, ref_rows, es_rows, records, rss_kb = map(int, (rows, size, ref_rows, es_rows, records, rss_kb))
accepted, packages = map(int, sent.split("|"))
t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
ref_s, es_s = t1 - t0, t3 - t2
ref_rate, es_rate = ref_rows / ref_s, es_rows / es_s
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
machine = f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"
build = "release" if "/release/" in binary else "debug"
section = f"""## End to end

Measured by `tools/bench-uplink.sh` on {datetime.date.today().isoformat()} ({build} build; {machine}):
{rows:,} rows of `tools/gen_cases.py` ({size/1e6:.0f} MB) dropped, ingested and pushed over mutual TLS to a loopback
`esgate receive --acknowledge-only`, timed until the receiver acknowledged everything (`uplink status` lag 0).

| what | seconds | rows/s |
|---|---|---|
| reference: `iconv -f GB18030 -t UTF-8` + `sqlite3 .import` into a WAL table, synchronous=FULL | {ref_s:.2f} | {ref_rate:,.0f} |
| esgate: drop → mapping → validation → journal → packages (Body in canonical form + SM3, fixed in SQLite before sending) → mTLS → receipts | {es_s:.2f} | {es_rate:,.0f} |

- Ratio esgate / reference: **{es_rate/ref_rate:.2f}** (target ≥ 0.6).
- Gateway peak RSS: **{rss_kb/1024:.1f} MB** (`esgate run --once`).
- {records:,} journal records from {es_rows:,} rows; {accepted:,} acknowledged in {packages:,} packages.
"""
path = "docs/benchmarks.md"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
# Replace an existing "## End to end" section (up to the next "## " heading), else append.
pattern = re.compile(r"^## End to end\n.*?(?=^## |^<!-- |\Z)", re.S | re.M)
text = pattern.sub(lambda _: section + "\n", text, count=1) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text.rstrip("\n") + "\n")
print(section)
if accepted != records:
    sys.exit(f"bench-uplink: {records} records journaled but {accepted} acknowledged")
PY
