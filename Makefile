# callpop: `make run` starts the demo; `make test` runs every test.
# Both install what they need first (a .venv from the pinned requirements, npm packages for the
# extension, Debian's chromium for browser tests, caddy for the TLS deployment test, redis-server for
# the cluster tests); a second run skips what is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LIBPHONE := extension/vendor/libphonenumber-max.js

.PHONY: run test bench soak deps dev-deps extension extension-package chromium caddy redis clean

run: deps extension
	$(BIN)/callpop demo

# Every stage runs whatever an earlier one said; each reports, and the target fails if any did.
test: dev-deps extension chromium caddy redis
	@failed=""; \
	PYTHONASYNCIODEBUG=1 $(BIN)/python -m pytest || failed="$$failed python"; \
	node --test extension/tests/ || failed="$$failed extension"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: python tests and extension tests passed"

bench: dev-deps redis
	$(BIN)/python -m bench

soak: dev-deps
	$(BIN)/python -m pytest -m soak --timeout 900

deps: $(VENV)/.runtime
dev-deps: $(VENV)/.dev

# The pinned requirements, then this checkout as the callpop package (editable, no other
# dependencies): `.venv/bin/callpop`, and imports and data files found as an installed copy finds them.
$(VENV)/.runtime: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# libphonenumber-js from npm, copied into the extension (content scripts cannot import modules).
extension: $(LIBPHONE)
$(LIBPHONE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(dir $@)
	cp node_modules/libphonenumber-js/bundle/libphonenumber-max.js $@

# Browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The deployment test (tests/deploy/) runs Debian's caddy in front of a hub and a console.
caddy:
	@test -x /usr/bin/caddy || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq caddy >/dev/null; }

# The cluster tests (tests/cluster/) and benchmarks run Debian's redis-server on a free port.
redis:
	@test -x /usr/bin/redis-server || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# The extension as an admin installs it for every agent (deploy/README.md): a versioned zip, the
# CRX signed with the admin's key and the updates.xml the hub serves from CALLPOP_EXTENSION_DIR.
#   make extension-package EXTENSION_KEY=/path/to/key.pem HUB_URL=https://callpop.example.com
EXTENSION_OUT ?= dist/extension
extension-package: extension
	node extension/tools/package.js --key "$(EXTENSION_KEY)" --hub-url "$(HUB_URL)" --out "$(EXTENSION_OUT)"

clean:
	rm -rf $(VENV) node_modules extension/vendor .pytest_cache dist
