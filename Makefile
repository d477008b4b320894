# arch-sim: two commands do everything.  `make reproduce` (main job), `make test` (tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test reproduce lab wrk trace-tools venv lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "arch-sim needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# wrk drives the real servers; nginx-light, apache2 and lighttpd are the peer servers; curl is
# used by the tests.  As root we install what is missing with apt-get; otherwise we say how.
# The web servers' packages start a system service on port 80 when installed: their maintainer
# scripts start it through invoke-rc.d or deb-systemd-invoke, which first ask the policy script
# $(POLICY_RC) and skip the start when it exits 101 ("action forbidden").  Nothing here uses
# those services (the harness starts each peer itself, from its own config, on a free port), so
# while installing we put such a script in place, unless the machine has one already, and
# remove it afterwards: no service binds port 80 even briefly and none has to be stopped, and
# two packages never fight over the port, whether or not systemd runs (containers have none).
TOOLS := wrk:wrk nginx:nginx-light apache2:apache2 lighttpd:lighttpd curl:curl perf:linux-perf
# bpftrace: only the tracing benchmarks use it (benchmarks/wake_audit.py, staged_cycles.py and
# the .bt scripts): `make trace-tools`.  perf (above) counts switches and traces for calibrate.
TRACE_TOOLS := bpftrace:bpftrace
POLICY_RC ?= /usr/sbin/policy-rc.d
# $(call install_tools,CMD:PACKAGE ...): apt-get install each package whose command is missing
define install_tools
	@if [ "$$(id -u)" = 0 ] && [ ! -e $(POLICY_RC) ]; then \
	  printf '#!/bin/sh\n# make (arch-sim): no service starts while tools install\nexit 101\n' \
	    > $(POLICY_RC) && chmod 755 $(POLICY_RC) && trap 'rm -f $(POLICY_RC)' EXIT INT TERM; \
	fi; \
	for pair in $(1); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "$$cmd not found: installing $$pkg with apt-get"; \
	    apt-get install -y -qq $$pkg >/dev/null 2>&1 || \
	      (apt-get update -qq && apt-get install -y -qq $$pkg) || \
	      echo "warning: could not install $$pkg; what needs $$cmd will say so"; \
	  else \
	    echo "$$cmd not found: install it with 'sudo apt-get install $$pkg' (Debian/Ubuntu);"; \
	    echo "what needs it will say so (tests that need it are skipped)."; \
	  fi; \
	done
endef

wrk:
	$(call install_tools,$(TOOLS))

trace-tools:
	$(call install_tools,$(TRACE_TOOLS))

# The model-only tests (marker `parallel`, tests/conftest.py) run on both CPUs at once, whole
# files to a worker; the rest - real servers under real load, pinned to CPU 0 and 1 - one at a
# time after them.  Both always run; the target fails if either does.
test: $(STAMP) wrk
	$(PY) -m pytest -m parallel -n 2 --dist loadfile; a=$$?; \
	$(PY) -m pytest -m "not parallel"; b=$$?; \
	test $$a -eq 0 -a $$b -eq 0

reproduce: $(STAMP) wrk
	$(VENV)/bin/arch-sim reproduce $(if $(FULL),,--quick) $(if $(OUT),--out $(OUT),)

# JupyterLab is an extra: installed once (stamp file), again only when pyproject.toml changes.
# Options for jupyter go in LAB_ARGS, e.g. make lab LAB_ARGS="--ip 0.0.0.0 --no-browser".
LAB_STAMP := $(VENV)/.installed-lab
LAB_ARGS  ?=

$(LAB_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[dev,lab]'
	@touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
