# Wrenn — build, test, run. See README.md.
#   make dev    set everything up and run Wrenn on this machine
#   make test   set everything up and run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

export CARGO_TARGET_DIR ?= /var/tmp/wrenn-target
export WRENN_DIR ?= /var/lib/wrenn
HOST_TRIPLE := x86_64-unknown-linux-gnu
ENVD_STATIC := $(CARGO_TARGET_DIR)/$(HOST_TRIPLE)/release/envd
CARGO ?= cargo

.PHONY: help deps services build envd-static check fmt clippy semver sqlx-prepare test contract dev images rootfs-% reinject-envd bench soak clean-dev

help:
	@echo "make dev      set up and run Wrenn (control plane, agent, local PostgreSQL/Redis, base image)"
	@echo "make test     set up and run every test (real PostgreSQL, Redis and gVisor capsules)"
	@echo "make build    release binaries into builds/"
	@echo "make check    fmt + clippy -D warnings + tests"
	@echo "make contract schemathesis against a real wrenn-cp over its /openapi.json"
	@echo "make images   build the platform base images (minimal-busybox, minimal-debian)"
	@echo "make bench    run the BENCHMARKS.md figures"
	@echo "make soak     a 10-minute load of capsule cycles (WRENN_SOAK_SECS, WRENN_SOAK_CLIENTS): latencies, errors, memory growth"
	@echo "make sqlx-prepare  regenerate .sqlx/ (checked queries' offline data) after changing a query"

deps:
	@bash scripts/deps.sh

services: deps
	@bash scripts/services.sh >/dev/null

# envd is linked statically (glibc, crt-static) so one binary runs in every image.
# A separate --target keeps these RUSTFLAGS from invalidating the host build.
envd-static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p wrenn-envd --target $(HOST_TRIPLE)
	@mkdir -p builds && cp $(ENVD_STATIC) builds/envd

build: deps envd-static
	$(CARGO) build --release -p wrenn-core -p wrenn-agent -p wrenn-cli
	@mkdir -p builds
	cp $(CARGO_TARGET_DIR)/release/wrenn-cp $(CARGO_TARGET_DIR)/release/wrenn-agent $(CARGO_TARGET_DIR)/release/wrenn builds/
	bash scripts/web.sh build
	@rm -rf builds/web && mkdir -p builds/web && cp -r web/dist builds/web/
	@ls -l builds/

fmt:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

images: deps envd-static
	bash images/build.sh busybox
	bash images/build.sh debian

rootfs-%: deps envd-static
	bash images/build.sh $*

reinject-envd: envd-static
	bash images/reinject-envd.sh builds/envd

# The test command of README.md. Installs and starts what the tests need, builds the static envd
# and the images the agent tests boot, then runs every test of the workspace and the dashboard's
# browser tests (real Chromium against a real wrenn-cp). The agent's suites run one test at a
# time: each test boots its own agent and gVisor capsules, and two of them at once saturate a
# two-core machine, where runsc (20240729) now and then writes checkpoint images that do not
# restore (agent/README.md, "Pause tiers"). Last, the contract run (scripts/contract.sh):
# schemathesis checks a real wrenn-cp against its own OpenAPI document.
test: deps envd-static
	@bash scripts/images-ensure.sh
	@eval "$$(bash scripts/services.sh)"; status=0; \
	  bash scripts/semver.sh || status=1; \
	  $(CARGO) test --workspace --exclude wrenn-agent --no-fail-fast || status=1; \
	  $(CARGO) test -p wrenn-agent --no-fail-fast -- --test-threads=1 || status=1; \
	  bash scripts/web.sh test || status=1; \
	  bash scripts/contract.sh || status=1; \
	  exit $$status

contract: deps
	@bash scripts/contract.sh

semver:
	@bash scripts/semver.sh

# Builds never reach a database: the checked queries compile against the committed .sqlx/
# (SQLX_OFFLINE=true in .cargo/config.toml). This regenerates it from a scratch database with
# every migration applied; commit the result.
sqlx-prepare: deps
	@bash scripts/sqlx-prepare.sh

check: fmt clippy test

dev: deps
	@bash scripts/dev.sh

bench: deps envd-static
	@bash scripts/bench.sh

# Long-running (10 minutes by default), so not part of `make test`; see bench/src/bin/soak.rs.
soak: deps envd-static
	@bash scripts/soak.sh

clean-dev:
	rm -rf .wrenn-dev
