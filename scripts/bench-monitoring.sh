#!/bin/sh
# Supervision engine benchmark (docs/monitoring.md): release build, then N open cases (default 1,000,000).
#   scripts/bench-monitoring.sh                 # 1M cases: takes minutes and ~1-2 GB of disk in bench-work/
#   scripts/bench-monitoring.sh --cases 20000   # quick check
set -eu
cd "$(dirname "$0")/.."
swift build -c release -j 1 --product monitoring-bench
exec .build/release/monitoring-bench "$@"
