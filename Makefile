# esgate: build, demo, tests and benchmarks. Quick start on a fresh Debian 12 machine, as root:
#   make demo      install what is missing, build, and run the gateway on generated sample data
#   make test      run every test
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

# Debian packages: C libraries esgate wraps, the tools the tests and benchmarks use.
BUILD_PACKAGES := pkg-config libcurl4-openssl-dev libxml2-dev libsqlite3-dev libyaml-dev libssl-dev \
                  libmicrohttpd-dev libgnutls28-dev unixodbc-dev
TOOL_PACKAGES  := sqlite3 python3 python3-pip openssl time
SWIFT          := swift
DEMO           := var/demo

.PHONY: all deps build release demo test bench schema clean

all: build

# Installs only what is missing (apt-get update once, when something is).
deps:
	@missing=$$(for p in $(BUILD_PACKAGES) $(TOOL_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6.3 toolchain not found (expected in /opt/swift/usr/bin)"; exit 1; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The bundled demo: generates legacy exports, drops them, ingests them, and shows what happened.
demo: release
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/drop
	@echo "== generating sample legacy exports (GB18030, CRLF, Chinese headers, quoted commas and line breaks)"
	python3 tools/gen_cases.py --rows 5000 --quirks --out $(DEMO)/drop/approvals-20260105.csv
	@echo "== the same export dropped again under another name (must not be ingested twice)"
	sleep 1; cp $(DEMO)/drop/approvals-20260105.csv $(DEMO)/drop/approvals-20260105-resent.csv
	@printf '办件编号,事项编码,事项名称,部门编码,部门名称,申请人,证件号码,环节代码,环节名称,办理人,办理时间,承诺时限,法定时限,收费金额,备注\r\n410103001202601059999999,XK0001,食品流通许可,410103001,二七区行政服务中心,王伟,410103199001011237,02,承办,李娜,2026-02-30 09:00:00,10,20,,日期不存在\r\n' > $(DEMO)/drop/approvals-bad-date.csv
	@echo "== checking the configuration"
	ESGATE_STATE=$(DEMO)/state ESGATE_DROP=$(CURDIR)/$(DEMO)/drop .build/release/esgate config check
	@echo "== ingesting (esgate run --once)"
	ESGATE_STATE=$(DEMO)/state ESGATE_DROP=$(CURDIR)/$(DEMO)/drop .build/release/esgate run --once
	@echo "== journal"
	ESGATE_STATE=$(DEMO)/state ESGATE_DROP=$(CURDIR)/$(DEMO)/drop .build/release/esgate journal stats
	@echo "== quarantine (held back with the reason, replayable after a fix)"
	ESGATE_STATE=$(DEMO)/state ESGATE_DROP=$(CURDIR)/$(DEMO)/drop .build/release/esgate quarantine list

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: release
	tools/bench.sh

# Regenerates the schema embedded in the binary from schema/pui-v1.xsd (a test checks they agree).
schema:
	python3 tools/embed_schema.py

clean:
	rm -rf .build var bench-work
