# Tend: the two README commands and their parts. Everything here runs on a fresh Debian 12 with only
# the Rust toolchain: `setup` installs the rest.
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := python3 procps prometheus

.PHONY: setup demo test check lint unit e2e bench

## Install what the build and the tests need (idempotent; apt only when something is missing).
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v python3 >/dev/null || { echo "python3 is required by the tests"; exit 1; }

## Set up, build, and run the console headless on its embedded demo (http://127.0.0.1:7878).
demo: setup
	$(CARGO) run --release --bin tend -- serve

## Set up and pass every check and test.
test: setup lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace --no-fail-fast
