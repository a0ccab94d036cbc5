# flow — the two commands a user needs: `make demo` (the main job) and `make test`.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/flowdba/flow/internal/cli.Version=$(VERSION)
# go test runs packages in parallel; the lab packages start real mysqld
# processes, so keep it to the machine's two cores.
TEST_P ?= 2
TEST_TIMEOUT ?= 40m

.PHONY: all build test unit demo mysql sshd fuzz bench dist clean crash-test

all: build

-include lab/mysql/mysql.mk

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/flow ./cmd/flow

## test: the whole suite (installs MySQL and OpenSSH first when missing).
test: mysql sshd
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: the files above need formatting'; exit 1; }
	$(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) ./...

## crash-test: the full SIGKILL sweep on the lab (issue #6; hours): flashback-start and -stop are
## killed right after each of their steps starts and taken up with `flow resume`, then the drill
## cycle is completed and checked. Summary: bench/crash/RESULTS.md, log: bench/crash/sweep.log.
## `make test` runs a sample of the kill points; CRASH_MATCH=REGEXP keeps some, CRASH_SKIP=REGEXP drops
## some (see crash_test.go); CRASH_SUMMARY and CRASH_LOG name other output files.
CRASH_TIMEOUT ?= 8h
CRASH_SUMMARY ?= bench/crash/RESULTS.md
CRASH_LOG ?= bench/crash/sweep.log
crash-test: mysql sshd
	@mkdir -p bench/crash
	set -o pipefail; FLOW_CRASH_SWEEP=full FLOW_CRASH_MATCH='$(CRASH_MATCH)' FLOW_CRASH_SKIP='$(CRASH_SKIP)' \
	  FLOW_CRASH_SUMMARY='$(abspath $(CRASH_SUMMARY))' \
	  $(GO) test -count=1 -v -run '^TestCrashSweep(Switchover)?$$' -timeout $(CRASH_TIMEOUT) ./playbooks/ 2>&1 | tee $(CRASH_LOG)

## unit: the fast tests only (no MySQL, no sshd).
unit:
	$(GO) test -count=1 -short ./...

## sshd: Debian's OpenSSH server for the integration tests and the lab.
sshd:
	@command -v /usr/sbin/sshd >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null; \
	  else echo "sshd: openssh-server is missing; install it (apt-get install openssh-server) as root"; exit 1; fi; }

## demo: the flashback drill end to end on a fresh lab (bench/demo.sh): builds flow, installs MySQL
## and OpenSSH when missing, lab up, verify, start, drill, stop, independent check, lab down.
## KEEP=1 leaves the lab running; DRILL_SECONDS=N, LOG_LEVEL=info tune it.
demo:
	@GO='$(GO)' MAKE='$(MAKE)' bash bench/demo.sh

fuzz:
	$(GO) test ./engine -run='^$$' -fuzz=FuzzLoad -fuzztime=$${FUZZTIME:-5m}

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./engine ./gtid

dist:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/flow-linux-amd64 ./cmd/flow
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/flow-linux-arm64 ./cmd/flow

clean:
	rm -rf bin dist
