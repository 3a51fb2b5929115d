# esgate: build, demo, tests and benchmarks. Quick start on a fresh Debian 12 machine, as root:
#   make demo      install what is missing, build, and run the gateway on generated sample data
#   make test      run every test
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

# Debian packages: C libraries esgate wraps, the tools the tests and benchmarks use.
BUILD_PACKAGES := pkg-config libcurl4-openssl-dev libxml2-dev libsqlite3-dev libyaml-dev libssl-dev \
                  libmicrohttpd-dev libgnutls28-dev unixodbc-dev
TOOL_PACKAGES  := sqlite3 python3 python3-pip openssl time
# ODBC drivers and the database servers the ODBC tests start themselves (on loopback, in a temporary folder).
ODBC_PACKAGES  := unixodbc libsqliteodbc odbc-postgresql odbc-mariadb postgresql mariadb-server
SWIFT          := swift

.PHONY: all deps build release demo test bench bench-uplink bench-odbc schema clean

all: build

# Installs only what is missing (apt-get update once, when something is).
deps:
	@missing=$$(for p in $(BUILD_PACKAGES) $(TOOL_PACKAGES) $(ODBC_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@python3 -c "import lxml" 2>/dev/null || python3 -m pip install --quiet lxml
	@python3 -c "import spyne" 2>/dev/null || python3 -m pip install --quiet "spyne==2.14.0"
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6.3 toolchain not found (expected in /opt/swift/usr/bin)"; exit 1; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The bundled demo: generated legacy exports, a sandbox receiver over mutual TLS, ingest → supervise → send.
demo: release
	tools/demo.sh

# A crash in the test process must fail the run, not hang it: Swift's crash backtracer once stalled after printing
# the registers until CI's limit, so it prints only the crashed thread, without the image list, and the whole run
# is cut off after 25 minutes (a full run takes 2-4).
TEST_TIME_LIMIT := 1500
test: deps
	$(SWIFT) build --build-tests
	SWIFT_BACKTRACE=enable=yes,interactive=no,color=no,threads=crashed,images=none \
	  timeout --kill-after=30 $(TEST_TIME_LIMIT) $(SWIFT) test --skip-build

bench: release
	tools/bench.sh

bench-uplink: release
	tools/bench-uplink.sh
# 1M rows from PostgreSQL through the ODBC adapter vs pyodbc fetchmany(10000) on the same driver.
bench-odbc: release
	@python3 -c "import pyodbc" 2>/dev/null || python3 -m pip install --quiet pyodbc
	tools/bench-odbc.sh

# Regenerates the schema embedded in the binary and docs/record-types.md from schema/pui-v1.xsd (tests check both).
schema:
	python3 tools/embed_schema.py
	python3 tools/record_types_doc.py

clean:
	rm -rf .build var bench-work bench-work-uplink bench-odbc-work
