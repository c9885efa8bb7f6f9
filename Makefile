# Set-up and checks for ssma-tf. Every target creates what it needs from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo test-jax clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The whole workflow in miniature on synthetic RGB-D data (see tools/demo.py): about 11 minutes on 2 idle CPU cores, plus installing the environment.
demo: $(STAMP)
	$(BIN)/python tools/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# The model code also runs on the JAX backend; jax is not a dependency, so this target adds it.
test-jax: $(STAMP)
	$(BIN)/pip install --quiet "jax[cpu]"
	$(BIN)/python -m pytest -q tests/test_jax_backend.py

clean:
	rm -rf $(VENV) .venv-jax demo_output .pytest_cache
