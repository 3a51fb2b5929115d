#!/usr/bin/env bash
# make demo: a whole gateway on this machine. Generates legacy exports, starts a sandbox PUI receiver over
# mutual TLS, ingests, supervises, sends, and shows what happened. Everything lives in var/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=var/demo
ESGATE=$PWD/.build/release/esgate
rm -rf "$DEMO" && mkdir -p "$DEMO/drop" "$DEMO/adapters" "$DEMO/receiver"
say() { printf '\n== %s\n' "$*"; }

say "certificates: a development CA, the receiver's server certificate, our client certificate CN=410103"
certs/make-certs.sh "$DEMO/certs" 410103 > /dev/null

say "sample legacy exports (GB18030, CRLF, Chinese headers, quoted commas and line breaks)"
python3 tools/gen_cases.py --rows 5000 --quirks --out "$DEMO/drop/approvals-20260105.csv"
sleep 1
cp "$DEMO/drop/approvals-20260105.csv" "$DEMO/drop/approvals-20260105-resent.csv"   # must not be ingested twice
printf '办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注\r\n410103001202601059999999,XK0001,食品流通许可,410103001,二七区行政服务中心,王伟,410103199001011230,02,承办,李娜,2026-02-30 09:00:00,10,20,,日期不存在\r\n' > "$DEMO/drop/approvals-bad-date.csv"
ls -l "$DEMO/drop"

say "sandbox receiver (esgate receive): mutual TLS, schema and SM3 digest checks, receipts"
"$ESGATE" receive --port 0 --cert "$DEMO/certs/server.pem" --key "$DEMO/certs/server.key" --ca "$DEMO/certs/ca.pem" \
  --reference-data reference/reference-data.xml --state "$DEMO/receiver" > "$DEMO/receiver/port.txt" 2> "$DEMO/receiver/log.txt" &
RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -qE '[0-9]+' "$DEMO/receiver/port.txt" 2>/dev/null && break; sleep 0.1; done
PORT=$(grep -oE '[0-9]+' "$DEMO/receiver/port.txt" | tail -1)
echo "listening on https://127.0.0.1:$PORT"

cat > "$DEMO/gateway.yaml" <<YAML
district: "410103"
state_dir: state
adapters_dir: adapters
mappings_dir: ../../mappings
reference_data: ../../reference/reference-data.xml
log_level: warning
receivers:
  - name: province
    url: https://127.0.0.1:$PORT/pui
    division: "410000"
    ca_file: certs/ca.pem
    cert_file: certs/client.pem
    key_file: certs/client.key
YAML
sed -e 's|^  folder:.*|  folder: ../drop|' adapters/gen-cases-drop.yaml > "$DEMO/adapters/gen-cases-drop.yaml"
export ESGATE_CONFIG=$DEMO/gateway.yaml

say "esgate config check"
"$ESGATE" config check
say "esgate certs check"
"$ESGATE" certs check || true
say "esgate run --once: ingest → supervise → send"
"$ESGATE" run --once
say "esgate adapter status"
"$ESGATE" adapter status || true
say "esgate journal stats"
"$ESGATE" journal stats
say "esgate journal list --type Application --limit 2 (records as journaled, as PUI XML; identity numbers masked)"
"$ESGATE" journal list --type Application --limit 2
say "esgate quarantine list (held back with the reason; replayable after a fix)"
"$ESGATE" quarantine list
say "esgate alert list --limit 5 (the sample data is from January 2026, so late reports (XK08) dominate)"
"$ESGATE" alert list --limit 5 || true
say "esgate uplink status"
"$ESGATE" uplink status
