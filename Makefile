# arch-sim: two commands do everything.  `make reproduce` (main job), `make test` (tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test reproduce lab wrk venv lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "arch-sim needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# wrk drives the real servers.  As root we install it; otherwise we say how.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "wrk not found: installing it with apt-get"; \
	    (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk)); \
	  else \
	    echo "wrk not found: install it with 'sudo apt-get install wrk' (Debian/Ubuntu)"; \
	    echo "or build it from https://github.com/wg/wrk; tests that need it will be skipped."; \
	  fi; }

test: $(STAMP) wrk
	$(PY) -m pytest

reproduce: $(STAMP) wrk
	$(VENV)/bin/arch-sim reproduce $(if $(FULL),,--quick) $(if $(OUT),--out $(OUT),)

lab: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
