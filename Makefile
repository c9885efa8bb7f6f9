# Set-up and checks for ssma-tf. Every target creates what it needs from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo three-modalities test-jax clean

# Re-installs when the packaging changes (dependencies, extras, console commands).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The whole workflow in miniature on synthetic RGB-D data (`ssma-demo`, ssma_tf/cli/demo.py): about 6 minutes on 2 idle CPU cores (AMD EPYC; 11 on an Intel Xeon), plus installing the environment.
demo: $(STAMP)
	$(BIN)/python tools/demo.py

# SSMA over RGB, depth and a synthetic thermal modality against SSMA over each pair, two seeds
# (bench/three_modalities.py, docs/multimodal.md).
three-modalities: $(STAMP)
	$(BIN)/python bench/three_modalities.py --output three_modalities_output

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# The model code also runs on the JAX backend; jax is an extra, so this target adds it.
test-jax: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,jax]'
	$(BIN)/python -m pytest -q tests/test_jax_backend.py

clean:
	rm -rf $(VENV) .venv-jax demo_output three_modalities_output .pytest_cache
