"""One `Trainer` step equals one step of the released TF1 training graph (AdapNet++, SSMA stages 2, 3).

The original is `bench/tf1_graph.py`'s `build_training_graph`, the released `train.py` rebuilt
with `tf.compat.v1` from `../shared/spec/ARCHITECTURE.md` ("Loss"): both auxiliary terms at
0.6/0.5, Adam on the poly schedule, the batch norms' update ops. The port is the trainer's own
compiled step on the first batch of its own input pipeline (records written by its own converter);
the batch that step took is checked to be the one fed to TF1. Both start from the same TF1
checkpoint (the shared AdapNet++ fixture; for SSMA one written from the spec's variable names),
with dropout off, as if resumed at step 3 (so the schedule is past lr0 and Adam's bias correction
is not the first step's).

Compared: every loss term (1e-5 relative), every gradient (1e-3 of the variable's largest
|gradient|, or float32 rounding: 1e-7 of the step's largest), every batch-norm moving statistic after the step (1e-4), and the updated weights
(1e-4) and the Adam updates divided by the learning rate (1e-3) wherever |g| is at least 1% of the
variable's largest |g| (elsewhere one step of Adam, ≈ ±lr whatever |g|, turns rounding-level
gradient differences into sign flips). The normalised updates are what notices Adam's ε: for
|g| ≲ 1e-4 the step depends on ε/(√v̂) at the 1e-3 level.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import keras
import numpy as np
import pytest

from ssma_tf import training
from ssma_tf.checkpoints import tf1_variable_map
from ssma_tf.config import config_from_dict
from ssma_tf.keras_compat import adam_slots
from tests.conftest import ROOT, shared_path
from tests.tf1_helpers import random_arrays, read_spec, write_tf1_checkpoint
from tests.training_helpers import write_records

# Small enough for two CPU cores, large enough that every eASPP branch sees real pixels (H/16 = 2).
BATCH, HEIGHT, WIDTH = 2, 32, 64
NUM_CLASSES = 12  # the fixture's and the spec listing's
# The step the comparison starts at (as if resumed): the schedule is no longer at lr0.
START_STEP = 3
SCHEDULE = {"learning_rate": 2e-3, "max_iteration": 10, "power": 0.9, "end_learning_rate": 1e-4}
BETA_1, BETA_2 = 0.9, 0.999
EPSILON = 1e-8  # Adam's ε in the released graph (TF1 default)


def _tf1_graph_module():
    """`bench/tf1_graph.py` as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("tf1_graph", ROOT / "bench" / "tf1_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tf1_graph", module)  # dataclasses look their module up there
    if sys.modules["tf1_graph"] is module:
        spec.loader.exec_module(module)
    return sys.modules["tf1_graph"]


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot labels as the released pipeline fed them (ids >= C give all zeros)."""
    return (labels[..., None] == np.arange(num_classes)).astype(np.float32)


def _step_both(work: pathlib.Path, model: str, checkpoint: str, *, stage: int | None = None) -> dict:
    """Takes one step on each side from the same weights and batch.

    Args:
        work: a scratch directory.
        model: "adapnet_pp" or "ssma".
        checkpoint: TF1 checkpoint prefix both sides start from.
        stage: SSMA stage 2 (experts trained at 0.1× the rate) or 3 (experts frozen).

    Returns:
        A dict: `terms` {name: (port, tf1)}, `gradients` {tf1 name: (port, tf1)} for every
        trained variable, `rates` {tf1 name: learning rate of the variable}, `before`/`after`
        {tf1 name: (port, tf1)} for every variable, `optimized` (the tf1 names of the variables
        the port's optimizer keeps state for), and the config.
    """
    fusion = model == "ssma"
    records = write_records(work / "train.tfrecords", BATCH, height=HEIGHT, width=WIDTH,
                            num_classes=NUM_CLASSES, fusion=fusion, seed=7)
    values = {
        "model": "SSMA" if fusion else "AdapNet_pp", "num_classes": NUM_CLASSES,
        "checkpoint": str(work / "checkpoints"), "train_data": records, "batch_size": BATCH,
        "height": HEIGHT, "width": WIDTH, "skip_step": 1, "save_step": 100, "seed": 0,
        "initialize": checkpoint, "dropout_keep_prob": 1.0, **SCHEDULE,
    }
    if fusion:
        values.update(freeze_experts=stage == 3, encoder_lr_multiplier=0.1 if stage == 2 else 1.0)
    config = config_from_dict(values, source=f"{model}-equivalence", mode="train")

    # The port: the trainer's own step, on the first batch of its own pipeline.
    # Under the global seed the trainer sets, so that the shuffle gives the trainer's order.
    keras.utils.set_random_seed(config.seed)
    batch_inputs, batch_labels = next(iter(training.make_train_dataset(config)))
    trainer = training.Trainer(config, log=lambda line: None)
    trainer.step.assign(START_STEP)
    trainer.optimizer.iterations.assign(START_STEP)
    mapping = tf1_variable_map(trainer.model)
    before = {name: variable.numpy().copy() for name, variable in mapping.items()}
    loss, terms, _, truth = trainer.train_function(trainer.iterator)
    labels = batch_labels.numpy()
    np.testing.assert_array_equal(truth.numpy(), labels.astype(np.uint8))  # the batch TF1 gets
    after = {name: variable.numpy() for name, variable in mapping.items()}
    optimizer = trainer.optimizer
    port_gradients = {}
    for name, variable in mapping.items():
        if variable.trainable:
            # Adam's first moment after one step from zero is (1 - β1)·g.
            momentum, _ = adam_slots(optimizer, variable)
            port_gradients[name] = momentum.numpy() / np.float32(1 - BETA_1)
    tracked = {id(v) for v in optimizer._trainable_variables}
    optimized = sorted(name for name, variable in mapping.items() if id(variable) in tracked)

    # The original: the TF1 training graph, restored from the same checkpoint.
    tf1_graph = _tf1_graph_module()
    graph = tf1_graph.build_training_graph(
        model, NUM_CLASSES, HEIGHT, WIDTH, aux_heads=not fusion, keep_prob=1.0,
        frozen_experts=stage == 3, encoder_lr_multiplier=0.1 if stage == 2 else 1.0,
        adam_epsilon=EPSILON, learning_rate=SCHEDULE["learning_rate"], max_iteration=SCHEDULE["max_iteration"],
        power=SCHEDULE["power"], end_learning_rate=SCHEDULE["end_learning_rate"],
    )
    images = batch_inputs if fusion else [batch_inputs]
    feed = {p: np.asarray(x) for p, x in zip(graph.inputs, images)}
    feed[graph.labels] = _one_hot(labels, NUM_CLASSES)
    variables = {v.op.name: v for v in graph.model_variables}
    with tf1_graph.session_for(graph.graph, checkpoint, var_list=graph.model_variables, optimize=False) as session:
        with graph.graph.as_default():
            # Resumed at START_STEP: the schedule's step and Adam's bias correction (β^(t) with
            # t = START_STEP + 1 for the step taken now) as the port has them.
            graph.global_step.load(START_STEP, session)
            for index, power in enumerate(graph.beta_powers):
                power.load((BETA_1 if index % 2 == 0 else BETA_2) ** (START_STEP + 1), session)
        tf1_before = session.run(variables)
        _, tf1_loss, tf1_terms, tf1_gradients, rates = session.run(
            [graph.train_op, graph.loss, graph.terms, graph.gradients, graph.learning_rates], feed)
        tf1_after = session.run(variables)
    return {
        "config": config,
        "loss": (float(loss), float(tf1_loss)),
        "terms": {k: (float(terms[k]), float(tf1_terms[k])) for k in tf1_terms},
        "port_terms": sorted(terms),
        "gradients": {k: (port_gradients.get(k), v) for k, v in tf1_gradients.items()},
        "port_trained": sorted(port_gradients),
        "optimized": optimized,
        "rates": {k: float(v) for k, v in rates.items()},
        "before": {k: (before[k], tf1_before[k]) for k in tf1_before},
        "after": {k: (after[k], tf1_after[k]) for k in tf1_after},
    }


def _relative(actual, expected) -> float:
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def _check_step(result: dict, trained: set) -> None:
    """The comparisons of the module docstring; `trained` are the names TF1 trains."""
    assert set(result["gradients"]) == trained
    assert set(result["port_trained"]) == trained, "the port trains other variables than the original"
    assert result["port_terms"] == sorted(result["terms"])
    failures = []
    for name, (port, original) in [("total", result["loss"])] + sorted(result["terms"].items()):
        if abs(port - original) > 1e-5 * abs(original):
            failures.append(f"loss {name}: {port!r} against {original!r}")
    # Rounding floor: float32 noise relative to the step's largest gradient. Some gradients are
    # that noise on both sides (SSMA's skip attention normalises N = 2 pooled values: ±1 whatever
    # its input, so the gradients of its kernel and gamma are ~1e-10 of the largest, and 1e-3 of
    # their own largest is below what one rounding upstream changes).
    floor = 1e-7 * max(float(np.max(np.abs(original))) for _, original in result["gradients"].values())
    for name, (port, original) in result["gradients"].items():
        if _relative(port, original) > 1e-3 and np.max(np.abs(port - original)) > floor:
            failures.append(f"gradient of {name}: {_relative(port, original):.2e} of its largest")
    schedule = SCHEDULE
    base = (schedule["learning_rate"] - schedule["end_learning_rate"]) * (
        1 - START_STEP / schedule["max_iteration"]) ** schedule["power"] + schedule["end_learning_rate"]
    for name, (port, original) in result["after"].items():
        port_before, original_before = result["before"][name]
        np.testing.assert_array_equal(port_before, original_before, err_msg=f"{name} started elsewhere")
        if "moving_" in name:
            if np.max(np.abs(port - original)) > 1e-4 * max(1.0, np.max(np.abs(original))):
                failures.append(f"batch-norm statistic {name} after the step")
            continue
        if name not in trained:
            # Frozen (SSMA stage 3 experts): untouched on both sides.
            if not (np.array_equal(port, port_before) and np.array_equal(original, original_before)):
                failures.append(f"frozen {name} changed")
            continue
        gradient = result["gradients"][name][1]
        rate = result["rates"][name]
        assert rate in (pytest.approx(base, rel=1e-6), pytest.approx(0.1 * base, rel=1e-6)), name
        clear = (np.abs(gradient) >= 1e-2 * np.max(np.abs(gradient))) & (np.abs(gradient) > 1e3 * EPSILON)
        if not clear.any():
            continue
        if np.max(np.abs(port - original)[clear]) > 1e-4:
            failures.append(f"updated {name}: {np.max(np.abs(port - original)[clear]):.2e}")
        update_port, update_original = (port - port_before) / rate, (original - original_before) / rate
        if np.max(np.abs(update_port - update_original)[clear]) > 1e-3:
            failures.append(f"Adam update of {name} / lr: {np.max(np.abs(update_port - update_original)[clear]):.2e}")
    assert not failures, f"{len(failures)} differences, e.g.\n" + "\n".join(failures[:12])


@pytest.fixture(scope="module")
def ssma_checkpoint(tmp_path_factory) -> str:
    """An SSMA TF1 checkpoint with random values under the spec's variable names."""
    spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    folder = tmp_path_factory.mktemp("ssma_tf1")
    return write_tf1_checkpoint(str(folder / "ssma.ckpt"), random_arrays(spec, seed=5))


def test_adapnet_pp_step_equals_the_released_graph(tmp_path, tf1_fixture_dir):
    result = _step_both(tmp_path, "adapnet_pp", str(tf1_fixture_dir / "model.ckpt"))
    assert set(result["terms"]) == {"main", "aux_up2", "aux_up1"}
    trained = {n for n in result["after"] if "moving_" not in n}
    assert len(trained) == 234
    _check_step(result, trained)


def test_ssma_stage2_step_trains_the_experts_at_a_tenth_of_the_rate(tmp_path, ssma_checkpoint):
    result = _step_both(tmp_path, "ssma", ssma_checkpoint, stage=2)
    trained = {n for n in result["after"] if "moving_" not in n}
    _check_step(result, trained)
    experts = [n for n in trained if n.startswith(("rgb/", "depth/"))]
    assert experts and all(result["rates"][n] == pytest.approx(0.1 * result["rates"]["conv41/weights"]) for n in experts)


def test_ssma_stage3_step_leaves_the_frozen_experts_alone(tmp_path, ssma_checkpoint):
    result = _step_both(tmp_path, "ssma", ssma_checkpoint, stage=3)
    trained = {n for n in result["after"] if "moving_" not in n and not n.startswith(("rgb/", "depth/"))}
    _check_step(result, trained)
    # Frozen means no optimizer state at all for the experts (learning rate 0).
    assert result["optimized"] and not [n for n in result["optimized"] if n.startswith(("rgb/", "depth/"))]
    # The experts' batch norms ran in inference mode: their statistics did not move on either side.
    for name, (port, original) in result["after"].items():
        if name.startswith(("rgb/", "depth/")):
            np.testing.assert_array_equal(port, result["before"][name][0], err_msg=name)
