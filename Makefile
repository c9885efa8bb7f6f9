# Set-up and checks for ssma-tf. Every target creates what it needs from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo adapt-demo fusion-table three-modalities test-jax clean semisup-evidence

# Re-installs when the packaging changes (dependencies, extras, console commands). The deploy extra
# (OpenVINO, NNCF, LiteRT) is installed so that the tests of the OpenVINO/TFLite exports run.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,deploy]'
	touch $(STAMP)

# The whole workflow in miniature on synthetic RGB-D data (`ssma-demo`, ssma_tf/cli/demo.py): minutes on 2 CPU cores,
# plus installing the environment (README, "Timing", gives measured runs).
demo: $(STAMP)
	$(BIN)/python tools/demo.py

# Few labels (12 of 200 synthetic scenes, 2 seeds): supervised only, ClassMix and DepthMix for
# AdapNet++ (RGB) and SSMA, depth-guided label selection and depth pretraining
# (docs/semi_supervised.md); into ./semisup_output, resumable.
semisup-evidence: $(STAMP)
	$(BIN)/python tools/semi_supervised_experiment.py

# Domain adaptation in miniature (ssma_tf/cli/adaptation_demo.py, docs/adaptation.md): synthetic day scenes ->
# the same kind of scenes at dusk; source only, ABN, SAC and target labels, two seeds, AdapNet++ and SSMA.
adapt-demo: $(STAMP)
	$(BIN)/python -m ssma_tf.cli.adaptation_demo

# SSMA against the fusion baselines of the paper's Table 17 on the synthetic RGB-D scenes, two
# seeds, same budget per arm (ssma_tf/cli/fusion_table.py, docs/fusion.md); writes fusion_output/.
fusion-table: $(STAMP)
	$(BIN)/python -m ssma_tf.cli.fusion_table --seeds 0 1

# SSMA over RGB, depth and a synthetic thermal modality against SSMA over each pair, two seeds
# (bench/three_modalities.py, docs/multimodal.md).
three-modalities: $(STAMP)
	$(BIN)/python bench/three_modalities.py --output three_modalities_output

# Two worker processes, each test file in one of them (its module fixtures built once): most of a
# test's time is single-threaded Python (building models, tracing), so on the 2-core CI machine
# this takes about half the time of one process (README, "Test suite", gives measured runs).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests

# The model code also runs on the JAX backend; jax is an extra, so this target adds it to .venv for
# good: `make test` runs tests/test_jax_backend.py too from then on (without jax it skips it).
test-jax: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,jax]'
	$(BIN)/python -m pytest -q tests/test_jax_backend.py

clean:
	rm -rf $(VENV) demo_output semisup_output adapt_output fusion_output three_modalities_output .pytest_cache
