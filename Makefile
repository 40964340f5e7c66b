# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv if absent and installs everything; re-running is fast
# because the install is keyed on a stamp file that depends on pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The local CPU build. GPU users: install a CUDA torch into .venv first
# (see README) and run `make TORCH_SPEC=` to keep it.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mirage-gym demo

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(VENV)/bin/mirage-gym bench

clean:
	rm -rf $(VENV) runs .pytest_cache
