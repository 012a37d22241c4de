# Tend: the two README commands and their parts. Everything here runs on a fresh Debian 12 with only
# the Rust toolchain: `setup` installs the rest.
SHELL := /bin/bash
CARGO ?= cargo
# The docker source's tests: a private dockerd and busybox for registry-free images; python3-venv for
# the HTTP fuzzer's virtualenv (schemathesis from PyPI).
APT_PACKAGES := python3 python3-venv procps prometheus fonts-dejavu-core chromium docker.io busybox-static
# The desktop app (Tauri v2: WebKitGTK and the tray's libraries) and its tests: a virtual display, a
# session bus, WebKitWebDriver for tauri-driver, a notification daemon, `import` for screenshots, and a
# Secret Service keyring (gnome-keyring, read back with secret-tool) for the tokens of added hosts.
APT_PACKAGES += libwebkit2gtk-4.1-dev build-essential libssl-dev libayatana-appindicator3-dev librsvg2-dev \
  libxdo-dev pkg-config xvfb xauth webkit2gtk-driver dbus-x11 dunst imagemagick gnome-keyring libsecret-tools

.PHONY: setup demo test check lint ui-lint unit e2e bench bench-smoke soak http-fuzz ui ui-test bench-ui bench-desktop desktop desktop-test

## Install what the build and the tests need (idempotent; apt only when something is missing).
setup:
	@# The toolchain pinned in rust-toolchain.toml, with rustfmt and clippy (rustup would also install it
	@# on the first cargo call here; older rustups install it through `rustup show`).
	@if command -v rustup >/dev/null; then rustup toolchain install >/dev/null 2>&1 || rustup show >/dev/null; fi
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v python3 >/dev/null || { echo "python3 is required by the tests"; exit 1; }
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is required to build the web UI (ui/)"; exit 1; }
	@command -v tauri-driver >/dev/null || $(CARGO) install tauri-driver --locked

## Set up, build, and run the console headless on its embedded demo (http://127.0.0.1:7878).
demo: setup ui
	$(CARGO) run --release --bin tend -- serve

## Set up and pass every check and test. The UI is built first: the desktop app embeds ui/dist.
test: setup ui lint unit ui-test desktop-test bench-smoke http-fuzz

## Formatting and lints: rustfmt and clippy for the Rust code, biome for ui/ (ui-lint).
lint: ui-lint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The web UI's format and lint check (biome, pinned in ui/package.json; config in ui/biome.json): reports,
## never writes, and fails on warnings too. `cd ui && npm run format` applies the formatting and safe fixes.
ui-lint: ui/node_modules/.package-lock.json
	cd ui && npm run lint

unit:
	$(CARGO) test --workspace --no-fail-fast

## HTTP fuzzing of a live `tend serve` (127.0.0.1, a token, a small pool of demo-workers): schemathesis
## (pinned, installed into target/fuzz-venv on first use) sends generated requests to every operation of
## the served OpenAPI document, with a fixed seed and 60 examples per operation (~40 s), and holds the
## answers to the document (every schemathesis check; the one exception is explained in the script).
http-fuzz:
	$(CARGO) build --bin tend
	tests/http_fuzz.sh

## The web UI (ui/, TypeScript + Vite): dependencies at the versions of package-lock.json, then ui/dist,
## which `tend serve` serves at /. `npm install`, not `npm ci`: npm 11 leaves other platforms' optional
## packages (rollup's) out of the lock file and then its own `npm ci` refuses that lock file.
ui/node_modules/.package-lock.json: ui/package.json ui/package-lock.json
	cd ui && npm install --no-audit --no-fund

ui: ui/node_modules/.package-lock.json
	cd ui && npm run build

## Browser end-to-end tests: a real `tend serve` (demo) with the built UI, driven by Debian's chromium
## through playwright-core (ui/e2e/browser.test.mjs). Screenshots of every screen: ui/e2e/screenshots/.
ui-test: setup ui
	$(CARGO) build --bin tend
	cd ui && node --test e2e/browser.test.mjs e2e/hub.test.mjs

## UI benchmark: 500 synthetic workers updating at 1 Hz in chromium, frame times recorded; writes the
## "UI" section of docs/PERFORMANCE.md (~1 min; not part of `make test`).
bench-ui: setup ui
	cd ui && node e2e/bench-ui.mjs --write ../docs/PERFORMANCE.md
	cd ui && BENCH_WORKERS=5000 node e2e/bench-ui.mjs --write ../docs/PERFORMANCE.md

## Benchmarks (never part of the tests' pass/fail; ~25 min on 2 cores, run it on a quiet machine):
## release build, then the table, printed and written into docs/PERFORMANCE.md. Glances, the peer,
## is installed from PyPI into target/bench/glances-venv on first use (needs python3-venv).
bench: setup
	@dpkg -s python3-venv >/dev/null 2>&1 || python3 -c 'import ensurepip' 2>/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv || echo "no python3-venv: Glances will be skipped"; }
	$(CARGO) build --release -p tend -p tend-bench
	./target/release/tend-bench --write docs/PERFORMANCE.md
	$(MAKE) bench-ui
	$(MAKE) bench-desktop

## The desktop app's cost (~12 min): the release tend-desktop under Xvfb and the web console in chromium,
## on the demo and on 500 attached processes, per screen, visible and hidden; writes the "Desktop app"
## section of docs/PERFORMANCE.md.
bench-desktop: setup ui
	$(CARGO) build --release -p tend -p tend-desktop
	cd ui && xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node e2e/bench-desktop.mjs --write ../docs/PERFORMANCE.md

## The bench with tiny sizes (N=10-20, 3 s windows, 3 trials, no peers, a 20 s soak): checks that it
## still runs (~1 min, debug build). Its table goes to target/bench/smoke.md and is shown only when a section fails.
bench-smoke:
	$(CARGO) build -p tend -p tend-bench
	@mkdir -p target/bench
	./target/debug/tend-bench --smoke > target/bench/smoke.md || { cat target/bench/smoke.md; exit 1; }

## The soak (section 7 of docs/PERFORMANCE.md, its own block): a release `tend serve` with 20 workers
## recycled every few seconds, 200 attached processes, an API poller and an SSE client, sampled every
## 10 s for SOAK_SECS (default 1 h; not part of `make bench`). Reports the RSS slope, fds, threads, DB size.
SOAK_SECS ?= 3600
soak:
	$(CARGO) build --release -p tend -p tend-bench
	./target/release/tend-bench --only soak --soak-secs $(SOAK_SECS) --write docs/PERFORMANCE.md

## The desktop app (src-tauri/, Tauri v2) on the embedded demo, or on TEND_CONFIG. Its demo workers run
## the headless `tend` built beside it (lighter than a process that maps WebKitGTK).
desktop: setup ui
	$(CARGO) build -p tend -p tend-desktop
	./target/debug/tend-desktop

## Desktop end-to-end tests: the built app under Xvfb and a private session bus, driven by tauri-driver
## and WebKitWebDriver (ui/e2e/desktop.test.mjs; screenshot in ui/e2e/screenshots/desktop.png).
## The notification test (real D-Bus + dunst) is a cargo test of tend-desktop, run by `make unit`.
desktop-test: setup ui
	$(CARGO) build -p tend -p tend-desktop
	cd ui && xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node --test e2e/desktop.test.mjs
