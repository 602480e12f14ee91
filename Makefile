# The two commands of the README:
#   make run    the embedded pipeline with a simulated fleet (summary, then serves until Ctrl-C)
#   make test   everything CI checks
# Both install what they need first (make setup): apt packages, libchdb.so, Go modules, npm test deps.

GO      ?= go
ARGS    ?=
BIN     := bin/minecart

.PHONY: setup build run test test-short vet bench bench-ratios soak soak-scale transfers-soak chaos chaos-short fairness clean

setup:
	@bash infra/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/minecart

run: build
	./$(BIN) run $(ARGS)

vet:
	gofmt -l $$(git ls-files '*.go') | (! grep .) || (echo "gofmt: the files above need formatting" && false)
	$(GO) vet ./...
	docker-compose --env-file infra/docker/example.env config -q

# The schemas tests check our Avro framing with a stock reader (avsc, installed by setup);
# the web faces' browser tests need Debian's chromium (installed by setup).
TEST_ENV := MINECART_NODE_PATH=$${MINECART_TOOLS_DIR:-$$HOME/.cache/minecart}/avsc/node_modules MINECART_REQUIRE_NODE=1 MINECART_REQUIRE_KUBECONFORM=1 MINECART_REQUIRE_CHROMIUM=1

test: setup vet
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 25m ./...

test-short: setup
	$(GO) test -short -count=1 ./...

# Benchmarks print figures and ratios against baselines measured in the same run.
bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# The rows of issue 19's table, each against a baseline measured in the same run
# (about 10 minutes on 2 cores): ends with RATIO/BYTES/P99MS <name> <value> goal <goal> lines.
bench-ratios: setup
	bash .ci/bench-ratios

# Long runs (docs/scale.md, section 1 "Soak and scaling runs on one machine"): the fleet through the embedded broker and
# ClickHouse with every stage a process from its own main (loadtest/soak). Samples RSS and CPU
# per process, lag and records/s per stage every 10 s; ends with a summary table, also written
# to soak-report.txt. Data (about 24 GB of Kafka log and 8 GB of ClickHouse for 20,000 x 2) goes under $TMPDIR.
# SOAK_FLAGS: e.g. -soak.kafka 127.0.0.1:19860 -soak.keep. soak-scale: N = 1, 2, 4 replicas per stage.
SOAK_VEHICLES ?= 20000
SOAK_DAYS     ?= 2
SOAK_FLAGS    ?=
SOAK_SCALE_VEHICLES ?= 5000
SOAK_RUN      := $(GO) test -count=1 -timeout 12h -v -run '^TestSoak$$' ./loadtest/soak/ -soak.run

soak: setup
	$(SOAK_RUN) -soak.vehicles $(SOAK_VEHICLES) -soak.days $(SOAK_DAYS) -soak.replicas 1 -soak.out $(CURDIR)/soak-report.txt $(SOAK_FLAGS)

soak-scale: setup
	$(SOAK_RUN) -soak.vehicles $(SOAK_SCALE_VEHICLES) -soak.days 1 -soak.replicas 1,2,4 -soak.out $(CURDIR)/soak-scale-report.txt $(SOAK_FLAGS)

# Transfers (docs/economy.md): the concurrency test with 100,000 random transfers among 100
# accounts from 32 clients across a settlement restart (make test runs 10,000; 2,000 under -race).
transfers-soak: setup
	MINECART_TRANSFERS=100000 $(GO) test -count=1 -timeout 30m -v -run '^TestTransfersConcurrent$$' ./services/settlement/api/

# The chaos suite (docs/reliability.md): kill -9 at random moments, compared with an
# uninterrupted run. The short form also runs inside `make test` (go test ./...).
chaos: setup
	$(GO) test -count=1 -timeout 120m -v ./loadtest/chaos/ -chaos.long

chaos-short: setup
	$(GO) test -count=1 -timeout 20m -v ./loadtest/chaos/

# Issue 15's fairness table: a month of 10,000 vehicles with every honest edge case and fraud
# class through the pure scoring code (docs/scoring.md, "Fairness"); ARGS="-vehicles 1000" for less.
fairness: setup
	$(GO) run ./loadtest/fairness $(ARGS)

clean:
	rm -rf bin .minecart
