"""Tests of `ssma_tf.training`: optimizer, schedule, resumption, frozen experts, distribution.

The full-size models are slow to trace on two CPU cores (tens of seconds per compiled step), so
the full AdapNet++ and SSMA each train in one module-level run that several tests inspect, and the
trainer's own logic (NaN handling, checkpoint fallback, data position, distribution) is tested
with a tiny stand-in model (`tests.training_helpers.TinySegmenter`) behind the same interface.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from ssma_tf import training
from ssma_tf.checkpoints import CheckpointError
from ssma_tf.config import ConfigError, config_from_dict, load_config
from ssma_tf.distribute import synchronize_batch_norms
from tests.conftest import ROOT
from tests.tf1_helpers import write_tf1_checkpoint
from tests.training_helpers import build_tiny_model, smoke_config, write_records

LOG_LINE = re.compile(r"^step (\d+)/(\d+)\s+lr (\S+)\s+loss (\S+)")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TF_CONFIG", None)
    return env


def _log_lines(lines: list[str]) -> dict[int, tuple[float, float]]:
    """{step: (lr, loss)} from the trainer's log lines."""
    out = {}
    for line in lines:
        match = LOG_LINE.match(line.strip())
        if match:
            out[int(match.group(1))] = (float(match.group(3)), float(match.group(4)))
    return out


def _tf1_poly(step: int, lr0: float, total: int, power: float, end: float) -> float:
    """TF1 `polynomial_decay(cycle=False)`, written out."""
    return (lr0 - end) * (1 - min(step, total) / total) ** power + end


def _tiny_config(tmp_path, **overrides):
    """A training config for the tiny model on records in `tmp_path`."""
    records = tmp_path / "records" / "train.tfrecords"
    if not records.exists():
        write_records(records, 4, height=32, width=32, num_classes=5)
    values = {
        "model": "AdapNet_pp",
        "num_classes": 5,
        "checkpoint": str(tmp_path / "checkpoints"),
        "train_data": str(records),
        "batch_size": 2,
        "skip_step": 1,
        "height": 32,
        "width": 32,
        "max_iteration": 6,
        "learning_rate": 0.01,
        "save_step": 2,
        "power": 0.9,
        "seed": 0,
    }
    values.update(overrides)
    return config_from_dict(values, source="tiny.config", mode="train")


@pytest.fixture
def tiny_model(monkeypatch):
    """Makes the trainer build the tiny model instead of the full-size one."""
    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)


# --- Optimizer --------------------------------------------------------------------------------


def test_learning_rate_factor_is_a_second_adam_at_the_scaled_rate():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(2, 3)).astype(np.float32)
    slow, fast = keras.Variable(start), keras.Variable(start)
    slow_ref, fast_ref = keras.Variable(start), keras.Variable(start)
    optimizer = training.AdamWithMultipliers(learning_rate=1e-2, epsilon=1e-8)
    optimizer.set_learning_rate_multiplier([slow], 0.1)
    reference_slow = keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)
    reference_fast = keras.optimizers.Adam(learning_rate=1e-2, epsilon=1e-8)
    for _ in range(3):
        # Gradients of very different scales: Adam's step does not follow them, the rate does.
        g_slow = rng.normal(size=(2, 3)).astype(np.float32) * 100.0
        g_fast = rng.normal(size=(2, 3)).astype(np.float32) * 0.01
        optimizer.apply([g_slow, g_fast], [slow, fast])
        reference_slow.apply([g_slow], [slow_ref])
        reference_fast.apply([g_fast], [fast_ref])
    np.testing.assert_allclose(slow.numpy(), slow_ref.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fast.numpy(), fast_ref.numpy(), rtol=1e-6, atol=1e-7)
    assert optimizer.learning_rate_multiplier(slow) == pytest.approx(0.1)
    assert optimizer.learning_rate_multiplier(fast) == 1.0


def test_make_optimizer_follows_the_config(tmp_path):
    config = _tiny_config(tmp_path, encoder_lr_multiplier=0.1, adam_epsilon=1e-6, learning_rate=1e-3,
                          max_iteration=100, end_learning_rate=1e-4)
    model = build_tiny_model(config)
    optimizer = training.make_optimizer(config, model)
    assert isinstance(optimizer, training.AdamWithMultipliers)
    assert optimizer.epsilon == 1e-6 and optimizer.beta_1 == 0.9 and optimizer.beta_2 == 0.999
    for variable in model.encoder.trainable_variables:
        assert optimizer.learning_rate_multiplier(variable) == pytest.approx(0.1)
    for variable in model.head.trainable_variables:
        assert optimizer.learning_rate_multiplier(variable) == 1.0
    schedule = optimizer._learning_rate
    for step in (0, 1, 50, 99, 100, 150):
        assert float(schedule(step)) == pytest.approx(_tf1_poly(step, 1e-3, 100, 0.9, 1e-4), rel=1e-6)

    mixed = training.make_optimizer(_tiny_config(tmp_path, mixed_precision="mixed_float16"), model)
    assert isinstance(mixed, keras.optimizers.LossScaleOptimizer)
    assert isinstance(mixed.inner_optimizer, training.AdamWithMultipliers)


# --- Bad configs ------------------------------------------------------------------------------


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("learning_rate: 0.001", "learning_rat: 0.001", "learning_rat"),  # misspelt key
        ("batch_size: 2", "batch_size: two", "batch_size"),  # wrong type
        ("train_data: records/", "train_data: nowhere/", "train_data"),  # path that does not exist
        ("max_iteration: 6", "max_iteration:", "max_iteration"),  # required key left empty
    ],
)
def test_bad_config_fails_before_the_model_is_built(tmp_path, monkeypatch, capsys, old, new, key):
    def must_not_build(*args, **kwargs):
        raise AssertionError("the model was built before the config was checked")

    monkeypatch.setattr(training.trainer, "build_model", must_not_build)
    monkeypatch.chdir(tmp_path)
    write_records(tmp_path / "records" / "train.tfrecords", 2)
    text = smoke_config("adapnet_train.config").read_text()
    assert old in text
    bad = tmp_path / "bad.config"
    bad.write_text(text.replace(old, new))
    status = _load_script("train").main(["-c", str(bad)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"key '{key}'" in err and str(bad) in err


def test_batch_that_replicas_cannot_share_is_a_config_error(tmp_path, monkeypatch):
    class TwoReplicas:
        num_replicas_in_sync = 2
        cluster_resolver = None

    monkeypatch.setattr(training.trainer, "build_model", lambda *a: pytest.fail("model built"))
    with pytest.raises(ConfigError, match="batch_size"):
        training.Trainer(_tiny_config(tmp_path, batch_size=3), strategy=TwoReplicas())


# --- The trainer's logic, on the tiny model ---------------------------------------------------


def test_resume_restores_step_schedule_optimizer_and_data_position(tmp_path, tiny_model):
    config = _tiny_config(tmp_path)
    lines = []
    first = training.Trainer(config, log=lines.append)
    result = first.train(max_steps=3)
    assert result.final_step == 3 and result.checkpoint.endswith("ckpt-3")
    assert first.train_function.experimental_get_tracing_count() == 1
    saved = [v.numpy() for v in first.optimizer.variables]
    weights = [v.numpy() for v in first.model.weights]
    next_inputs, next_labels = next(first.iterator)  # what step 4 would have seen

    resumed_lines = []
    second = training.Trainer(config, log=resumed_lines.append)
    assert second.resumed_from.endswith("ckpt-3")
    assert int(second.step.numpy()) == 3 and int(second.optimizer.iterations.numpy()) == 3
    for before, after in zip(saved, second.optimizer.variables):
        np.testing.assert_array_equal(before, after.numpy())
    for before, after in zip(weights, second.model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    inputs, labels = next(second.iterator)
    np.testing.assert_array_equal(inputs.numpy(), next_inputs.numpy())
    np.testing.assert_array_equal(labels.numpy(), next_labels.numpy())

    third = training.Trainer(config, log=resumed_lines.append)
    result = third.train()
    assert (result.start_step, result.final_step, len(result.losses)) == (3, 6, 3)
    logged = _log_lines(resumed_lines)
    assert sorted(logged) == [4, 5, 6]
    # The log shows the rate the step used: TF1's formula at the step count before it.
    for step, (lr, _) in logged.items():
        assert lr == pytest.approx(_tf1_poly(step - 1, 0.01, 6, 0.9, 1e-4), rel=1e-4)
    assert third.train_function.experimental_get_tracing_count() == 1
    assert os.path.isfile(result.weights) and result.weights.endswith("final.weights.h5")
    # `Trainer.train` writes the run's config.yaml as `run` does (helper 85: before, it wrote none,
    # and the resumed run noted "train_data unset -> [...]; augmentation.rotation false -> true").
    assert os.path.isfile(os.path.join(config.checkpoint, "config.yaml"))
    assert not [line for line in resumed_lines if line.startswith("note:")], resumed_lines
    # A folder without one (an older version's run): nothing to compare, no note.
    os.remove(os.path.join(config.checkpoint, "config.yaml"))
    longer = dataclasses.replace(config, max_iteration=8)
    later = []
    training.Trainer(longer, log=later.append)
    assert not [line for line in later if line.startswith("note: since")], later


def test_keep_checkpoints_sets_how_many_checkpoints_stay(tmp_path, tiny_model):
    config = _tiny_config(tmp_path, max_iteration=5, save_step=1, keep_checkpoints=4)
    training.Trainer(config, log=lambda line: None).train()
    kept = sorted(int(p.name[5:-6]) for p in (tmp_path / "checkpoints").glob("ckpt-*.index"))
    assert kept == [2, 3, 4, 5]
    default = _tiny_config(tmp_path / "default", max_iteration=5, save_step=1)
    training.Trainer(default, log=lambda line: None).train()
    assert len(list((tmp_path / "default" / "checkpoints").glob("ckpt-*.index"))) == 3
    # One number for the default: the config's and the one `training` exports.
    assert default.keep_checkpoints == training.MAX_CHECKPOINTS_TO_KEEP == 3


def test_a_run_resumed_with_another_batch_or_size_restarts_its_input_stream(tmp_path, tiny_model):
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    lines = []
    # Before: TensorFlow's "Incompatible shapes ... expected [4,48,32,3] but got [2,32,32,3]" at
    # the first step, the run's config.yaml already rewritten to the new values.
    result = training.Trainer(_tiny_config(tmp_path, max_iteration=4, batch_size=4, height=48),
                              log=lines.append).run()
    assert result.final_step == 4
    assert any(line.endswith("at step 2 (input streams restarted: their batches changed shape since ckpt-2 "
                             "(batch_size 2 -> 4, height 32 -> 48))") for line in lines), lines
    lines.clear()
    training.Trainer(_tiny_config(tmp_path, max_iteration=6, batch_size=4, height=48), log=lines.append).run()
    assert any(line.endswith("at step 4") for line in lines), lines  # unchanged since: the position is kept
    # A start with other values that ended before its first save rewrote config.yaml: the
    # checkpoint itself says what its saved batches were.
    failing = training.Trainer(_tiny_config(tmp_path, max_iteration=8, batch_size=2), log=lambda line: None)
    failing.train_function = lambda iterator: (_ for _ in ()).throw(RuntimeError("out of memory"))
    with pytest.raises(RuntimeError):
        failing.run()
    lines.clear()
    result = training.Trainer(_tiny_config(tmp_path, max_iteration=8, batch_size=2), log=lines.append).run()
    assert result.final_step == 8
    assert any(line.endswith("at step 6 (input streams restarted: their batches changed shape since ckpt-6)")
               for line in lines), lines


def test_a_run_resumed_with_another_seed_takes_batches_of_that_seed_at_once(tmp_path, tiny_model):
    """The restored position held batches the old seed had drawn ahead: the steps after a resume
    with another seed (the advice after a NaN) replayed them (helper 171)."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2, seed=1), log=lambda line: None).run()
    shutil.copytree(tmp_path / "checkpoints", tmp_path / "copy")
    lines = []
    other = training.Trainer(_tiny_config(tmp_path, max_iteration=4, seed=2), log=lines.append)
    assert any(line.endswith("at step 2 (input streams restarted: seed 1 -> 2 since the run's last start)")
               for line in lines), lines
    same = training.Trainer(_tiny_config(tmp_path, max_iteration=4, seed=1, checkpoint=str(tmp_path / "copy")),
                            log=lambda line: None)
    assert not np.array_equal(next(other.iterator)[0], next(same.iterator)[0])


def test_a_seed_given_or_taken_away_on_resume_restarts_the_streams(tmp_path, tiny_model):
    """Helper 233: a seed given to a run started without one kept its saved stream and dropout,
    though docs/training.md says another seed starts them afresh; the seed taken away read "-> None"."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2, seed=None), log=lambda line: None).run()
    lines = []
    training.Trainer(_tiny_config(tmp_path, max_iteration=4, seed=5), log=lines.append).run()
    assert any(line.endswith("at step 2 (input streams restarted: seed unset -> 5 since the run's last start)")
               for line in lines), lines
    lines.clear()
    unset = training.Trainer(_tiny_config(tmp_path, max_iteration=6, seed=None), log=lines.append)
    unset.run()
    assert any(line.endswith("at step 4 (input streams restarted: seed 5 -> unset since the run's last start)")
               for line in lines), lines
    # The seed taken away: a new one is drawn (not the 5 the checkpoints kept) and kept from then on.
    assert unset.run_seed != 5 and (f"note: seed unset: drew seed {unset.run_seed} for the weights' initialisation, "
                                    "dropout, the training stream's order and augmentation, kept in the run's "
                                    f"checkpoints for a resume; --set seed={unset.run_seed} repeats the run") in lines
    lines.clear()
    kept = training.Trainer(_tiny_config(tmp_path, max_iteration=8, seed=None), log=lines.append)
    assert any(line.endswith("at step 6") for line in lines), lines  # unset both times: kept
    # Before, a resumed unseeded run shuffled and augmented the rest of its stream with a new seed.
    assert kept.run_seed == unset.run_seed, lines


def test_an_unseeded_run_is_repeated_by_the_seed_it_drew(tmp_path, tiny_model):
    """Helper 306: the drawn seed given as `--set seed=N` gave other batches (a seeded run set the
    global seed, which reorders tf.data's seeded shuffles), and other weights and dropout."""
    augmentation = {"flip": True, "scale": True}
    unseeded = training.Trainer(_tiny_config(tmp_path, max_iteration=3, seed=None, augmentation=augmentation),
                                log=lambda line: None)
    first = unseeded.run()
    seeded = training.Trainer(_tiny_config(tmp_path, max_iteration=3, seed=unseeded.run_seed, augmentation=augmentation,
                                           checkpoint=str(tmp_path / "again")), log=lambda line: None)
    np.testing.assert_array_equal(first.losses, seeded.run().losses)
    for a, b in zip(unseeded.model.weights, seeded.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_resume_takes_the_seed_of_the_checkpoint_it_restores(tmp_path, tiny_model):
    """Helper 306: the seed was read from the newest checkpoint whose step reads; one damaged past
    its step was skipped by the restore, and the run went on with its seed, not the restored one's."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2, seed=5), log=lambda line: None).run()
    drawn = training.Trainer(_tiny_config(tmp_path, max_iteration=4, seed=None), log=lambda line: None)
    drawn.run()
    directory = tmp_path / "checkpoints"
    data = directory / "ckpt-4.data-00000-of-00001"
    index = tf.train.load_checkpoint(str(directory / "ckpt-4"))
    assert int(index.get_tensor("run_seed/.ATTRIBUTES/VARIABLE_VALUE")) == drawn.run_seed != 5
    content = bytearray(data.read_bytes())
    content[len(content) // 3] ^= 0xFF  # inside a kernel: its checksum fails, the step still reads
    data.write_bytes(bytes(content))
    lines = []
    resumed = training.Trainer(_tiny_config(tmp_path, max_iteration=6, seed=None), log=lines.append)
    assert any(line.startswith(f"resumed from {directory / 'ckpt-2'} at step 2") for line in lines), lines
    assert resumed.run_seed == 5 and int(resumed._run_seed_variable.numpy()) == 5
    assert ("note: seed unset: the training stream's order and augmentation go on with seed 5, drawn when the run "
            "started and kept in its checkpoints") in lines


def test_a_config_built_without_a_log_dir_writes_its_summaries_under_the_checkpoint(tmp_path, tiny_model):
    """`log_dir` None (a config built in code) wrote no TensorBoard summaries, without a word (helper 171)."""
    config = dataclasses.replace(_tiny_config(tmp_path, max_iteration=2, skip_step=1), log_dir=None)
    trainer = training.Trainer(config, log=lambda line: None)
    assert trainer.config.log_dir == os.path.join(config.checkpoint, "logs")
    trainer.run()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(trainer.config.log_dir))


def test_a_checkpoint_folder_of_another_network_is_named_by_its_run_config(tmp_path, tiny_model):
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    records = write_records(tmp_path / "fusion.tfrecords", 2, height=32, width=32, num_classes=5, fusion=True)
    fusion = _tiny_config(tmp_path, model="SSMA", max_iteration=4, train_data=records)
    # Before: "variable input_bn/gamma has shape [...] in the checkpoint" (an optimizer slot, by position).
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'checkpoints'} holds a run of model: AdapNet_pp \(its "
                                              r"config.yaml\), but the config tiny.config trains model: SSMA; give "
                                              r"another checkpoint folder for a new run$"):
        training.Trainer(fusion, log=lambda line: None)
    # Another class count failed on every checkpoint in a line of 1,100 characters; another input
    # modality trained the RGB weights on depth without a word.
    two = write_records(tmp_path / "two.tfrecords", 2, height=32, width=32, num_classes=5, fusion=True)
    # Other eASPP rates change no shape: the weights were loaded and trained on without a word.
    for key, value, shown in (("num_classes", 6, "5"), ("input_modality", "modality2", "modality1"),
                              ("decoder_filters", 64, "256"), ("easpp_rates", [2, 4, 8], "[3, 6, 12]")):
        with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'checkpoints'} holds a run with {key}: "
                                                  rf"{re.escape(shown)} \(its config.yaml\), but the config "
                                                  rf"tiny.config trains with {key}: {re.escape(str(value))}; give "
                                                  r"another checkpoint folder for a new run$"):
            training.Trainer(_tiny_config(tmp_path, max_iteration=4, train_data=two, **{key: value}),
                             log=lambda line: None)
    # SSMA over another number of modalities, or with(out) auxiliary heads: before, TensorFlow's
    # "Inconsistent references" warnings and every checkpoint "cannot be read".
    saved = tmp_path / "checkpoints" / "config.yaml"
    values = yaml.safe_load(saved.read_text())
    values.update(model="SSMA", aux_heads=False, modalities=["rgb", "depth", "thermal"])
    saved.write_text(yaml.safe_dump(values))
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'checkpoints'} holds a run over 3 modalities \(its "
                                              r"config.yaml: modalities \[rgb, depth, thermal\]\), but the config "
                                              r"tiny.config trains over 2; give another checkpoint folder"):
        training.Trainer(fusion, log=lambda line: None)
    with pytest.raises(CheckpointError, match=r"holds a run with aux_heads: false .* trains with aux_heads: true"):
        training.Trainer(_tiny_config(tmp_path, model="SSMA", max_iteration=4, train_data=records, aux_heads=True),
                         log=lambda line: None)


def test_a_checkpoint_folder_of_a_run_trained_another_way_is_named_too(tmp_path, tiny_model):
    """A mean teacher switched off on resume was dropped without a word; a stage-3 config pointed at
    its stage-2 folder failed on an optimizer slot."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    saved = tmp_path / "checkpoints" / "config.yaml"
    text = saved.read_text()
    for section, shown in (("semi_supervised: {method: classmix}", "semi_supervised: classmix"),
                           ("adaptation: {}", "adaptation: sac")):
        saved.write_text(text + section + "\n")
        with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'checkpoints'} holds a run with {shown} \(its "
                                                  rf"config.yaml\), but the config tiny.config trains with "
                                                  rf"{shown.split(':')[0]}: none; give another checkpoint folder "
                                                  r"for a new run$"):
            training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lambda line: None)
    saved.write_text(text)
    assert training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lambda line: None).resumed_from
    # mixed_float16 added (or dropped): its loss scaling is in the checkpoint (helper 85: before,
    # "none of the checkpoints can be read ...; move them away", a good run thrown away).
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'checkpoints'} holds a run with mixed_precision: none "
                                              r"\(its config.yaml\), but the config tiny.config trains with "
                                              r"mixed_precision: mixed_float16; give another checkpoint folder"):
        training.Trainer(_tiny_config(tmp_path, max_iteration=4, mixed_precision="mixed_float16"),
                         log=lambda line: None)
    # bfloat16 keeps float32 variables and no loss scale: the run resumes, and says that its steps
    # are computed in another precision from now on (helper 298: without a word, and config.yaml
    # then gave mixed_bfloat16 as the whole run's).
    lines = []
    assert training.Trainer(_tiny_config(tmp_path, max_iteration=4, mixed_precision="mixed_bfloat16"),
                            log=lines.append).resumed_from
    assert ("note: since the run last started, mixed_precision unset -> mixed_bfloat16: the run goes on with the new "
            "values") in lines, lines


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_model):
    trainer = training.Trainer(_tiny_config(tmp_path), log=lambda line: None)
    compiled = trainer.train_function
    calls = []

    def poisoned(iterator):
        loss, terms, preview, truth = compiled(iterator)
        calls.append(1)
        return (tf.constant(np.nan) if len(calls) == 4 else loss), terms, preview, truth

    trainer.train_function = poisoned
    # ckpt-2's weights gave a finite loss at step 3: good. ckpt-4 is unconfirmed, never written.
    with pytest.raises(training.NonFiniteLossError, match=r"loss is nan at step 4.*ckpt-2"):
        trainer.train()
    state = tf.train.get_checkpoint_state(str(tmp_path / "checkpoints"))
    assert os.path.basename(state.model_checkpoint_path) == "ckpt-2"
    assert not (tmp_path / "checkpoints" / "final.weights.h5").exists()
    # Resumed: the NaN right after the save of ckpt-4 was the loss of ckpt-4's weights, which
    # are removed; ckpt-2 stays the last good one (before: ckpt-4 was called good, and the rerun
    # resumed from it into the same NaN).
    trainer = training.Trainer(_tiny_config(tmp_path), log=lambda line: None)
    compiled, resumed_calls = trainer.train_function, []

    def poisoned_after_a_save(iterator):
        loss, terms, preview, truth = compiled(iterator)
        resumed_calls.append(1)  # steps 3, 4 (ckpt-4 saved), 5
        return (tf.constant(np.nan) if len(resumed_calls) == 3 else loss), terms, preview, truth

    trainer.train_function = poisoned_after_a_save
    with pytest.raises(training.NonFiniteLossError,
                       match=r"loss is nan at step 5; .*removed ckpt-4, the weights that gave it; the last good "
                             r"checkpoint is .*ckpt-2\)"):
        trainer.train()
    state = tf.train.get_checkpoint_state(str(tmp_path / "checkpoints"))
    assert os.path.basename(state.model_checkpoint_path) == "ckpt-2"
    assert not (tmp_path / "checkpoints" / "ckpt-4.index").exists()


def test_interrupted_or_broken_save_leaves_the_previous_checkpoint_usable(tmp_path, tiny_model):
    config = _tiny_config(tmp_path)
    training.Trainer(config, log=lambda line: None).train(max_steps=4)  # ckpt-2, ckpt-4
    directory = tmp_path / "checkpoints"
    # A crash while ckpt-6 was being written: its files exist (half of them), the state file
    # was never updated to name it.
    (directory / "ckpt-6.data-00000-of-00001").write_bytes(b"\0" * 100)
    lines = []
    assert training.Trainer(config, log=lines.append).resumed_from.endswith("ckpt-4")
    # A newest checkpoint that cannot be read at all: the one before it is used.
    (directory / "ckpt-4.index").write_bytes(b"not a checkpoint index")
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    assert trainer.resumed_from.endswith("ckpt-2") and int(trainer.step.numpy()) == 2
    assert any("cannot resume from" in line and "ckpt-4" in line for line in lines)


def test_a_stream_restarted_behind_a_damaged_checkpoint_takes_the_seed_of_the_one_resumed(
        tmp_path, tiny_model, monkeypatch):
    """The restarted stream's seed offset came from the newest checkpoint; when that one could
    not be read it was 0, and the run read its first batches again (helper 133)."""
    config = _tiny_config(tmp_path)
    training.Trainer(config, log=lambda line: None).train(max_steps=4)  # ckpt-2, ckpt-4
    (tmp_path / "checkpoints" / "ckpt-4.index").write_bytes(b"\x01" * 200)
    # As checkpoints written on several replicas: no data position, the stream restarts.
    monkeypatch.setattr(training.trainer, "_holds_data_position", lambda prefix: False)
    trainer = training.Trainer(config, log=lambda line: None)
    assert trainer.resumed_from.endswith("ckpt-2") and trainer.stream_seed_offset == 2


def _stop_at_step(trainer, number, error):
    """Makes the trainer's `number`-th step call raise `error` (the steps before it run)."""
    step, calls = trainer.train_function, []

    def stopping(iterator):
        calls.append(1)
        if len(calls) == number:
            raise error()
        return step(iterator)

    trainer.train_function = stopping


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_interrupt_or_an_error_clears_the_progress_bar_first(tmp_path, tiny_model, monkeypatch, stop):
    """Helper 242: on a terminal, the lines after Ctrl-C (or an error's) were glued onto the bar."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    # No loss line (which clears the bar before it) in the steps drawn.
    trainer = training.Trainer(_tiny_config(tmp_path, skip_step=5, save_step=5), log=lambda line: None)
    _stop_at_step(trainer, 3, stop)
    with pytest.raises(stop):
        trainer.train()
    shown = sys.stdout.getvalue()
    assert "1/6" in shown and shown.endswith("\r\033[K"), repr(shown[-200:])


def test_ctrl_c_says_which_checkpoint_a_rerun_resumes_from(tmp_path, tiny_model, monkeypatch):
    config = _tiny_config(tmp_path)
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    with monkeypatch.context() as patch:
        # Interrupted during its first save, at step 2: not saved again on the interrupt.
        patch.setattr(trainer.manager, "save", lambda **kwargs: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    assert lines[-2:] == [
        "warning: not saved at step 2: the interrupt came while its checkpoint was being written",
        "stopped at step 2 before the first checkpoint: the same command starts again from the beginning"]
    trainer.train(max_steps=2)  # ckpt-4
    lines.clear()
    with monkeypatch.context() as patch:
        patch.setattr(trainer.manager, "save", lambda **kwargs: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    newest = str(tmp_path / "checkpoints" / "ckpt-4")
    assert lines[-1] == f"stopped at step 6; the newest checkpoint is {newest}: the same command resumes from it"
    # The interrupt as the save returns, after the manager recorded it: saved, and named as the
    # newest (before: "not saved at step 8" and ckpt-4 named, while the rerun resumed from ckpt-8).
    lines.clear()
    longer = _tiny_config(tmp_path, max_iteration=10)
    trainer = training.Trainer(longer, log=lines.append)  # resumes from ckpt-4
    save = trainer.manager.save

    def saved_then_interrupted(**kwargs):
        save(**kwargs)
        raise KeyboardInterrupt()

    with monkeypatch.context() as patch:
        patch.setattr(trainer.manager, "save", saved_then_interrupted)
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    newest = str(tmp_path / "checkpoints" / "ckpt-6")
    assert lines[-1] == f"stopped at step 6; the newest checkpoint is {newest}: the same command resumes from it"
    assert not any(line.startswith("warning: not saved") for line in lines)
    assert training.Trainer(longer, log=lambda line: None).resumed_from == newest


def test_ctrl_c_between_saves_saves_the_steps_since_and_the_rerun_resumes_there(tmp_path, tiny_model):
    config = _tiny_config(tmp_path)  # save_step 2
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    _stop_at_step(trainer, 4, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    newest = str(tmp_path / "checkpoints" / "ckpt-3")
    # Before: the step after ckpt-2 was lost (up to save_step - 1 steps: 4999 with the stage configs).
    assert lines[-2:] == [f"saved checkpoint {newest} (step 3) on the interrupt",
                          f"stopped at step 3; the newest checkpoint is {newest}: the same command resumes from it"]
    again = training.Trainer(config, log=lambda line: None)
    assert again.resumed_from == newest and int(again.step.numpy()) == 3
    # Interrupted as a step returned: the step ran and is saved, and the last line says that its
    # loss was never logged (before: the lines ended at the step before, as if it were cut off).
    lines.clear()
    calls = []
    own_step = again.train_function

    def interrupted_as_the_second_returns(iterator):
        result = own_step(iterator)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt()
        return result

    again.train_function = interrupted_as_the_second_returns
    again._log = lines.append
    with pytest.raises(KeyboardInterrupt):
        again.train()
    newest = str(tmp_path / "checkpoints" / "ckpt-5")
    assert lines[-2:] == [f"saved checkpoint {newest} (step 5) on the interrupt",
                          f"stopped at step 5 (step 5 ran; the interrupt came as it returned, before its loss was "
                          f"checked); the newest checkpoint is {newest}: the same command resumes from it"]
    assert again.train().final_step == 6


def test_a_sigterm_lost_in_a_finaliser_still_stops_training_at_the_next_step(tmp_path, tiny_model):
    """Python drops an exception raised in a finaliser (`__del__`), where the commands' SIGTERM
    handler can run: the run trained on to the end as if no stop had been asked for."""
    from ssma_tf.errors import Terminated, clear_termination, request_termination

    config = _tiny_config(tmp_path)  # save_step 2
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    step_function = trainer.train_function
    calls = []

    def terminated_in_a_finaliser(iterator):
        calls.append(1)
        if len(calls) == 3:
            request_termination()  # what the handler records before its exception is dropped
        return step_function(iterator)

    trainer.train_function = terminated_in_a_finaliser
    try:
        with pytest.raises(Terminated):
            trainer.train()
    finally:
        clear_termination()
    newest = str(tmp_path / "checkpoints" / "ckpt-3")
    assert len(calls) == 3 and lines[-1] == (
        f"stopped at step 3; the newest checkpoint is {newest}: the same command resumes from it")


def test_an_interrupt_after_an_unchecked_step_saves_only_finite_weights(tmp_path, tiny_model):
    """The interrupt comes when a step returns, before its loss is checked: NaN weights are not saved."""
    import tensorflow as tf

    config = _tiny_config(tmp_path, max_iteration=10)
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    step_function = trainer.train_function
    calls = []

    def poisoned_then_interrupted(iterator):
        result = step_function(iterator)
        calls.append(1)
        if len(calls) == 3:  # step 3 ran (the weights and step moved), then Ctrl-C
            for variable in trainer.model.trainable_variables[:1]:
                variable.assign(tf.fill(variable.shape, float("nan")))
            raise KeyboardInterrupt()
        return result

    trainer.train_function = poisoned_then_interrupted
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert lines[-2] == "warning: not saved at step 3: its loss was not checked yet and the weights are not finite"
    assert lines[-1].endswith("the newest checkpoint is " + str(tmp_path / "checkpoints" / "ckpt-2")
                              + ": the same command resumes from it")
    # Finite weights after an unchecked step are saved.
    calls.clear()
    trainer = training.Trainer(config, log=lines.append)
    step_function = trainer.train_function

    def interrupted_after_the_step(iterator):
        step_function(iterator)
        raise KeyboardInterrupt()

    trainer.train_function = interrupted_after_the_step
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert lines[-2] == f"saved checkpoint {tmp_path / 'checkpoints' / 'ckpt-3'} (step 3) on the interrupt"


def test_no_save_on_an_interrupt_after_the_last_step_of_a_recalibrating_run(tmp_path, tiny_model, monkeypatch):
    config = _tiny_config(tmp_path, max_iteration=3, recalibrate_batch_norm=2)
    trainer = training.Trainer(config, log=lambda line: None)
    monkeypatch.setattr(trainer, "recalibrate_batch_norm", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    # The newest checkpoint is before the end: the rerun takes the last step and recalibrates.
    assert trainer.last_checkpoint.endswith("ckpt-2")


def test_a_config_built_in_code_with_a_relative_checkpoint_folder_resumes(tmp_path, tiny_model, monkeypatch):
    """`ssma-prune` fine-tunes with `checkpoint: <relative -o>/stage2/checkpoints`; resuming joined
    the folder twice (TensorFlow's state file names checkpoints relative to the working folder)."""
    import dataclasses

    monkeypatch.chdir(tmp_path)
    config = dataclasses.replace(_tiny_config(tmp_path), checkpoint="relative/checkpoints")
    training.Trainer(config, log=lambda line: None).train(max_steps=2)
    lines = []
    again = training.Trainer(config, log=lines.append)
    assert again.resumed_from == str(tmp_path / "relative" / "checkpoints" / "ckpt-2")
    assert not [line for line in lines if line.startswith("warning")], lines


def test_a_directory_of_tf1_checkpoints_is_not_resumed(tmp_path, tiny_model):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    prefix = str(directory / "model.ckpt-500")
    write_tf1_checkpoint(prefix, {"resnet_v2_50/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)})
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "{prefix}"\n')
    with pytest.raises(CheckpointError, match="original TF1 code.*intialize"):
        training.Trainer(_tiny_config(tmp_path), log=lambda line: None)


def test_an_image_summary_of_the_wrong_shape_is_named_as_given():
    """Helper 235: one (H, W, 3) image was cut to max_outputs along its height before the check,
    and the error showed (3, 96, 3)."""
    from ssma_tf.summaries import write_images

    with pytest.raises(ValueError, match=r"got uint8 \(48, 96, 3\)$"):
        write_images("x", np.zeros((48, 96, 3), np.uint8), 0)


def test_log_and_summaries_hold_losses_learning_rates_and_masks(tmp_path, tiny_model):
    config = _tiny_config(tmp_path, max_iteration=2, encoder_lr_multiplier=0.1)
    lines = []
    training.Trainer(config, log=lines.append).train()
    tags = set()
    for event_file in tf.io.gfile.glob(str(tmp_path / "checkpoints" / "logs" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags.update(value.tag for value in event.summary.value)
    assert {"loss/total", "loss/main", "learning_rate", "learning_rate/encoders",
            "predicted_masks", "ground_truth"} <= tags
    step_lines = [line for line in lines if line.startswith("step ")]
    assert len(step_lines) == 2
    assert "(encoders 1.0000e-03)" in step_lines[0] and "time left" in step_lines[0]


def _logged_losses(log_dir):
    """The `loss/total` steps TensorBoard draws from `log_dir`: its event files in name order, and
    each `SessionLog.START` after the first dropping what was read at its step and after (as its
    "purge orphaned data" does for event files of version 2)."""
    from tensorflow.core.util import event_pb2

    steps, starts = [], 0
    for event_file in sorted(tf.io.gfile.glob(os.path.join(log_dir, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                starts += 1
                if starts > 1:
                    steps = [step for step in steps if step < event.step]
            steps += [event.step for value in event.summary.value if value.tag == "loss/total"]
    return steps


def test_a_run_resumed_after_a_stop_without_a_save_is_drawn_once_in_tensorboard(tmp_path, tiny_model):
    """Killed after step 3 with its last checkpoint at step 2 (SIGKILL, out of memory), the resumed
    run logged step 3 again: TensorBoard drew both, with other values (helper 281). A restart mark
    at step 3 drops the first."""
    config = _tiny_config(tmp_path, max_iteration=5, save_step=2)
    first = training.Trainer(config, log=lambda line: None)
    first.save = lambda *args, **kwargs: None if int(first.step.numpy()) == 3 else training.Trainer.save(first)
    first.train(max_steps=3)
    first.writer.flush()
    log_dir = os.path.join(config.checkpoint, "logs")
    assert _logged_losses(log_dir) == [1, 2, 3]
    resumed = training.Trainer(config, log=lambda line: None)
    assert int(resumed.step.numpy()) == 2
    resumed.train()
    resumed.writer.flush()
    assert _logged_losses(log_dir) == [1, 2, 3, 4, 5]
    try:
        # The accumulator TensorBoard's server reads runs with (the older one keeps tensors unpurged).
        from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    except ImportError:  # the optional extra: the rule above is the one its accumulator applies
        return
    accumulator = EventAccumulator(log_dir)
    accumulator.Reload()
    assert [event.step for event in accumulator.Tensors("loss/total")] == [1, 2, 3, 4, 5]


def test_a_record_key_left_out_on_resuming_is_named_not_its_files_as_rewritten(tmp_path, tiny_model):
    """Helper 289: a depth pretraining resumed without its unlabeled_data said "files rewritten
    since ckpt-2: .../unlabeled.tfrecords 49544 -> absent bytes", of a file still there."""
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer
    from tests.test_semi_supervised import _config, _write_rgbd_records

    unlabeled = _write_rgbd_records(tmp_path / "unlabeled.tfrecords", 4)
    config = _config(tmp_path, semi=False, unlabeled_data=unlabeled, labeled_subset=None, max_iteration=2)
    DepthPretrainer(config, log=lambda line: None).train()
    lines = []
    DepthPretrainer(dataclasses.replace(config, unlabeled_data=None, max_iteration=4), log=lines.append)
    resumed = [line for line in lines if line.startswith("resumed from ")]
    assert resumed == [f"resumed from {tmp_path / 'run' / 'ckpt-2'} at step 2 (input streams restarted: "
                       "unlabeled_data changed since ckpt-2)"], lines


@pytest.mark.parametrize(
    "options",
    [{"mixed_precision": "mixed_float16"}, {"mixed_precision": "mixed_bfloat16"}, {"xla": True}],
    ids=["float16", "bfloat16", "xla"],
)
def test_mixed_precision_and_xla_train(tmp_path, tiny_model, options):
    lines = []
    trainer = training.Trainer(_tiny_config(tmp_path, max_iteration=3, **options), log=lines.append)
    result = trainer.train()
    # float16 on a CPU is said to be slow (helper 218: 14.6 s a step where float32 took 0.5).
    slow = [line for line in lines if line.startswith("warning: mixed_precision: mixed_float16 on a machine without "
                                                     "a GPU: a CPU computes float16 convolutions about 30x slower")]
    assert len(slow) == (options.get("mixed_precision") == "mixed_float16")
    assert result.final_step == 3 and all(np.isfinite(result.losses))
    assert trainer.train_function.experimental_get_tracing_count() == 1
    if options.get("mixed_precision") == "mixed_float16":
        assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        assert int(trainer.optimizer.iterations.numpy()) == 3  # no step skipped
    # Master weights stay float32 whatever the compute precision.
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)


def test_the_logged_learning_rate_is_the_one_applied_when_loss_scaling_skips_steps(tmp_path, tiny_model):
    """Under mixed_float16 an update whose gradients overflow is skipped and not counted by the
    optimizer, whose count the schedule reads: the log showed the rate at the training step."""
    lines = []
    trainer = training.Trainer(_tiny_config(tmp_path, max_iteration=8, mixed_precision="mixed_float16"),
                               log=lines.append)
    trainer.optimizer.dynamic_scale.assign(3e38)  # every step's scaled gradients overflow float16
    trainer.train(max_steps=3)
    assert int(trainer.optimizer.iterations.numpy()) == 0
    step_lines = [line for line in lines if line.startswith("step ")]
    assert len(step_lines) == 3 and all("lr 1.0000e-02" in line for line in step_lines), step_lines
    assert trainer.learning_rate() == pytest.approx(0.01) and trainer.learning_rate(3) < 0.0075


# --- Full-size AdapNet++: killed after a save, restarted ---------------------------------------


@pytest.fixture(scope="module")
def adapnet_run(tmp_path_factory):
    """train.py on the smoke config, killed after its step-2 checkpoint, then resumed to the end."""
    work = tmp_path_factory.mktemp("adapnet_run")
    write_records(work / "records" / "train.tfrecords", 2, seed=0)
    config_path = smoke_config("adapnet_train.config")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-c", str(config_path)],
        cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    killed_lines = []
    try:
        for line in process.stdout:
            killed_lines.append(line.rstrip())
            if line.startswith("saved checkpoint") and "(step 2)" in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        process.wait()
    assert any(l.startswith("saved checkpoint") for l in killed_lines), "\n".join(killed_lines)

    cwd = os.getcwd()
    os.chdir(work)
    try:
        config = load_config(config_path, "train")
        lines = []
        trainer = training.Trainer(config, log=lines.append)
        restored = {
            "step": int(trainer.step.numpy()),
            "iterations": int(trainer.optimizer.iterations.numpy()),
            "optimizer": [v.numpy() for v in trainer.optimizer.variables],
            "lr": trainer.learning_rate(),
        }
        result = trainer.train()
    finally:
        os.chdir(cwd)
    return {"work": work, "killed_lines": killed_lines, "lines": lines, "trainer": trainer,
            "restored": restored, "result": result, "config": config}


def test_restart_after_kill_continues_at_the_next_step(adapnet_run):
    restored, trainer = adapnet_run["restored"], adapnet_run["trainer"]
    assert trainer.resumed_from.endswith("ckpt-2")
    assert restored["step"] == 2 and restored["iterations"] == 2
    assert restored["lr"] == pytest.approx(_tf1_poly(2, 1e-3, 6, 0.9, 1e-4), rel=1e-6)
    # The optimizer state is the one the killed process saved, variable by variable.
    reader = tf.train.load_checkpoint(trainer.resumed_from)
    stored_names = {name for name, _ in tf.train.list_variables(trainer.resumed_from)}
    for index, value in enumerate(restored["optimizer"]):
        # Keras tracks the optimizer's variables as a list whose entry 0, the step count, is
        # also tracked under its own name (and stored there).
        key = f"optimizer/_variables/{index}/.ATTRIBUTES/VARIABLE_VALUE"
        if key not in stored_names:
            key = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
        np.testing.assert_array_equal(value, reader.get_tensor(key))
    assert len(restored["optimizer"]) > 2 * len(trainer.model.trainable_variables)
    logged = _log_lines(adapnet_run["lines"])
    assert min(logged) == 3 and max(logged) == 6
    assert logged[3][0] == pytest.approx(restored["lr"], rel=1e-4)
    assert adapnet_run["result"].start_step == 2 and adapnet_run["result"].final_step == 6


def test_training_lowers_the_loss(adapnet_run):
    before = _log_lines(adapnet_run["killed_lines"])
    losses = [before[1][1], before[2][1]] + adapnet_run["result"].losses
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < losses[0]


def test_training_step_is_traced_once(adapnet_run):
    assert adapnet_run["trainer"].train_function.experimental_get_tracing_count() == 1


def test_checkpoints_and_final_weights(adapnet_run):
    directory = adapnet_run["work"] / "checkpoints" / "adapnet"
    state = tf.train.get_checkpoint_state(str(directory))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4", "ckpt-6"]
    final = directory / "final.weights.h5"
    assert final.is_file()
    assert not list(directory.glob(".partial-*"))
    assert list((directory / "logs").glob("events.*"))


def test_synchronized_batch_norm_reaches_every_batch_norm(adapnet_run):
    model = adapnet_run["trainer"].model
    batch_norms = sum(1 for v in model.variables if v.name == "moving_mean")
    assert batch_norms > 50
    assert synchronize_batch_norms(model) == batch_norms


# --- Full-size SSMA, stage 3 ------------------------------------------------------------------


def test_stage3_experts_start_from_the_trained_adapnet_and_are_frozen(adapnet_run, tmp_path, monkeypatch):
    """SSMA with frozen experts, both started from the AdapNet++ the run above trained (own
    weights, as `checkpoint1`/`checkpoint2` of the released SSMA script).

    That a stage-3 step leaves the experts bit for bit as they were (their batch-norm statistics
    included) while the fusion and decoder move as in the released graph is the step equivalence
    test's (tests/test_training_step_equivalence.py, stage 3); this one checks where the experts
    come from and that the trainer freezes them.
    """
    monkeypatch.chdir(tmp_path)
    write_records(tmp_path / "records" / "fusion.tfrecords", 2, fusion=True)
    path = smoke_config("ssma_stage3.config")
    values = yaml.safe_load(path.read_text())
    expert = adapnet_run["result"].weights
    values.update(checkpoint1=expert, checkpoint2=expert)
    config = config_from_dict(values, source=str(path), mode="train")
    trainer = training.Trainer(config, log=lambda line: None)
    unimodal = adapnet_run["trainer"].model.encoder.get_weights()
    for encoder in trainer.model.encoders:
        for expected, value in zip(unimodal, encoder.get_weights()):
            np.testing.assert_array_equal(expected, value)
    experts = [v for encoder in trainer.model.encoders for v in encoder.variables]
    assert experts and not any(v.trainable for v in experts)
    assert all(encoder.trainable is False for encoder in trainer.model.encoders)
    assert len(trainer.model.trainable_variables) > 0
    # Frozen means no optimizer state at all for the experts (learning rate 0).
    tracked = {id(v) for v in trainer.optimizer._trainable_variables}
    assert tracked and not any(id(v) in tracked for v in experts)


# --- Distribution -----------------------------------------------------------------------------


def _tiny_distributed_config(tmp_path, name: str, extra: str = "", seed: str = "seed: 0\n") -> str:
    write_records(tmp_path / "records" / "train.tfrecords", 4, height=32, width=32, num_classes=5)
    text = (
        "model: AdapNet_pp\nnum_classes: 5\n"
        f"checkpoint: {tmp_path / 'checkpoints'}\ntrain_data: {tmp_path / 'records' / 'train.tfrecords'}\n"
        "batch_size: 4\nskip_step: 1\nheight: 32\nwidth: 32\nmax_iteration: 3\n"
        "learning_rate: 0.01\nsave_step: 2\n" + seed + extra
    )
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_mirrored_strategy_on_two_logical_cpus_trains(tmp_path):
    # Mixed float16 (loss scaling across replicas) and XLA (not used with synchronized batch
    # norm, which the run must say) on top of the float32 path the multi-worker test takes; and
    # the batch-norm recalibration at the end, run on both replicas.
    config = _tiny_distributed_config(
        tmp_path, "mirrored.config",
        "mixed_precision: mixed_float16\nxla: true\nrecalibrate_batch_norm: 2\n")
    out = tmp_path / "mirrored.npz"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "distributed_worker.py"), config, str(out), "--logical-cpus", "2"],
        env=_env(), timeout=300, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "xla is not used with 2 replicas" in run.stdout
    assert "average over 2 training batches" in run.stdout
    result = np.load(out)
    assert int(result["replicas"]) == 2 and bool(result["synchronized"])
    assert int(result["final_step"]) == 3 and np.all(np.isfinite(result["losses"]))
    names = {k.rsplit("_replica", 1)[0] for k in result.files if k.startswith("var")}
    for name in names:
        np.testing.assert_array_equal(result[f"{name}_replica0"], result[f"{name}_replica1"])
    assert (tmp_path / "checkpoints" / "final.weights.h5").is_file()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(tmp_path, config: str, folders, *extra, own=((), ())) -> list:
    """Two `ssma-train` workers (the tiny model) of a cluster on localhost, each with its own
    checkpoint folder and flags (`own`); their output in `tmp_path / worker<i>.log`."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index, folder in enumerate(folders):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.tiny_train", "-c", config, "--set", f"checkpoint={folder}", *extra,
             *own[index]],
            env=env, cwd=ROOT, stdout=open(tmp_path / f"worker{index}.log", "w"), stderr=subprocess.STDOUT))
    return processes


def _ended(processes, timeout: float = 300) -> list:
    try:
        return [process.wait(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def test_workers_that_resume_from_different_points_are_refused_on_every_worker(tmp_path, tiny_model):
    """A checkpoint folder that is not shared: before, worker 0 resumed at step 2 and worker 1
    started afresh, their gradients summed onto different weights, and the chief exported the
    result (exit 0)."""
    config = _tiny_distributed_config(tmp_path, "multiworker.config")
    training.Trainer(load_config(config, "train", overrides={"max_iteration": 2}), log=lambda line: None).train()
    # Worker 1 also given another learning rate (helper 215: the copies of the weights drifted
    # apart while the all-reduced losses agreed, and both exited 0); its checkpoint path differing
    # is not a setting that differs.
    statuses = _ended(_start_workers(tmp_path, config, [tmp_path / "checkpoints", tmp_path / "other"],
                                     own=((), ("--set", "learning_rate=0.5"))))
    logs = [(tmp_path / f"worker{index}.log").read_text() for index in range(2)]
    assert statuses == [2, 2], logs
    for index, log in enumerate(logs):
        assert ("error: the workers of the cluster were given different settings: learning_rate differs (this worker, "
                f"worker {index}: learning_rate {(0.01, 0.5)[index]}); give every worker the same config and --set "
                "flags; and the workers of the cluster start from different steps (replica 0 at step 2, replica 1 at "
                "step 0): each reads the checkpoint folder") in log, log
    assert not (tmp_path / "checkpoints" / "ckpt-3.index").exists()  # nothing trained


def test_sigterm_stops_a_worker_of_a_cluster(tmp_path):
    """TensorFlow's coordination service put a handler of its own in place of the command's:
    SIGTERM did nothing, and only SIGKILL stopped a worker (a scheduler's time limit, `kill`)."""
    config = _tiny_distributed_config(tmp_path, "multiworker.config")
    processes = _start_workers(tmp_path, config, [tmp_path / "checkpoints"] * 2, "--set", "max_iteration=100000",
                               "--set", "skip_step=20")
    log = tmp_path / "worker0.log"
    deadline = time.time() + 240
    while "\nstep " not in log.read_text() and time.time() < deadline and processes[0].poll() is None:
        time.sleep(0.5)
    assert "\nstep " in log.read_text(), log.read_text()[-3000:]
    processes[0].send_signal(signal.SIGTERM)
    statuses = _ended(processes, timeout=120)
    assert statuses[0] == 143 and log.read_text().rstrip().endswith("terminated"), log.read_text()[-2000:]
    assert statuses[1] == 1 and "another task of the cluster stopped" in (tmp_path / "worker1.log").read_text()


def test_multi_worker_mirrored_strategy_two_workers_end_identical(tmp_path):
    # Unseeded: each worker draws a seed, and all take the chief's (the one its checkpoints keep).
    config = _tiny_distributed_config(tmp_path, "multiworker.config", seed="")
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "distributed_worker.py"), config,
             str(tmp_path / f"worker{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=400)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    first, second = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    # The chief's log names the seed; the other worker logs nothing but takes it.
    seeds = re.findall(r"^note: seed unset: drew seed (\d+) for the weights' initialisation, dropout, the training "
                       "stream's order and augmentation, kept in the run's checkpoints", outputs[0], re.M)
    assert seeds == [str(first["run_seed"])] and int(first["run_seed"]) == int(second["run_seed"]), outputs[0][-3000:]
    assert int(first["replicas"]) == 2 and int(first["final_step"]) == 3
    variables = [k for k in first.files if k.startswith("var")]
    assert variables
    for key in variables:
        np.testing.assert_array_equal(first[key], second[key])
    np.testing.assert_array_equal(first["losses"], second["losses"])
    # Only the chief writes checkpoints and the final weights; the other worker cleans up.
    directory = tmp_path / "checkpoints"
    assert (directory / "final.weights.h5").is_file()
    assert [p.name for p in directory.iterdir() if p.name.startswith(".worker")] == []
    # Resumed on one replica: the checkpoint holds no data position, so the stream starts afresh
    # with another shuffle and says so (helper 92: it read the run's first batches again, silently).
    import yaml as yaml_module

    from ssma_tf.config import load_config
    from tests.training_helpers import build_tiny_model

    values = yaml_module.safe_load(open(config))
    longer = tmp_path / "longer.config"
    longer.write_text(yaml_module.safe_dump(dict(values, max_iteration=5)))
    lines = []
    original = training.trainer.build_model
    training.trainer.build_model = build_tiny_model
    try:
        resumed = training.Trainer(load_config(str(longer), "train"), log=lines.append)
        fresh = training.Trainer(load_config(str(longer), "train", overrides={"checkpoint": str(tmp_path / "fresh")}),
                                 log=lambda line: None)
    finally:
        training.trainer.build_model = original
    assert any(line.startswith(f"resumed from {directory / 'ckpt-3'} at step 3 (input stream restarted: ckpt-3 holds "
                               "no data position, as a checkpoint written on several replicas)") for line in lines), lines
    assert resumed.run_seed == int(seeds[0]) != fresh.run_seed
    # Three batches: one is a shuffle of the four records, which two seeds draw alike once in 24
    # (the test failed so once); three alike, once in some 14,000.
    streams = [np.stack([next(trainer.iterator)[1].numpy() for _ in range(3)]) for trainer in (resumed, fresh)]
    assert not np.array_equal(*streams)


def test_the_first_log_line_says_which_images_of_each_record_are_read():
    """An SSMA over two of three recorded modalities, or an expert of modality 2, reads a part of
    each record: the start of the run says which (before: nothing said it)."""
    from ssma_tf.training.trainer import _images_read

    common = dict(num_classes=3, height=32, width=64, batch_size=1, max_iteration=1, learning_rate=1e-3,
                  checkpoint="c", train_data="t")

    def read(**values):
        return _images_read(config_from_dict(dict(common, **values), check_paths=False))

    assert read(model="AdapNet_pp", input_modality="modality2") == "modality2"
    assert read(model="SSMA") == "modality1, modality2"
    assert read(model="SSMA", modalities=["rgb", "depth", "nir"]) == "modality1 (rgb), modality2 (depth), modality3 (nir)"


def test_the_first_log_line_counts_the_trained_weights_and_names_frozen_experts():
    """Stage 2 written without `freeze_experts: false` trained only the fusion and the decoder; the
    line gave the count (5,046,320 of 56,275,384 in a walkthrough) but not why."""
    from ssma_tf.training.trainer import _trained_share

    class Fused(keras.Model):
        def __init__(self):
            super().__init__()
            self.expert, self.head = keras.layers.Dense(4), keras.layers.Dense(2)

        @property
        def encoders(self):
            return [self.expert]

        def call(self, inputs):
            return self.head(self.expert(inputs))

    model = Fused()
    model(np.zeros((1, 3), np.float32))
    config = config_from_dict(dict(model="SSMA", num_classes=3, height=32, width=64, batch_size=1, max_iteration=1,
                                   learning_rate=1e-3, checkpoint="c", train_data="t"), check_paths=False)
    # Nothing frozen: said of a fusion, whose stage-3 line gives the share (helper 202: nothing was said).
    assert config.freeze_experts and _trained_share(model, config) == ", all of them trained"
    model.expert.trainable = False
    assert _trained_share(model, config) == ", 10 of them trained (freeze_experts: the experts are frozen)"
    unfrozen = config_from_dict(dict(config.to_dict(), freeze_experts=False), check_paths=False)
    assert _trained_share(model, unfrozen) == ", 10 of them trained"
    # FuseNet trains end to end whatever freeze_experts says (before: "the experts are frozen" while
    # it trained 53.6 M of 55.8 M weights); what stays out is what its graph never reads.
    model.fusion = "fusenet"
    assert _trained_share(model, config) == (", 10 of them trained (fusenet trains end to end; the experts' layers "
                                             "it does not use are left out)")


class DropoutSegmenter(keras.Model):
    """A tiny segmenter with a dropout, as AdapNet++'s block 4 has one."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.conv = keras.layers.Conv2D(8, 3, padding="same")
        self.dropout = keras.layers.Dropout(0.5, seed=3)
        self.head = keras.layers.Conv2D(num_classes, 1)

    @property
    def encoders(self):
        return []

    def get_config(self):
        return {"num_classes": self.num_classes}

    def call(self, inputs, training=None, return_all=False):
        logits = self.head(self.dropout(self.conv(inputs / 255.0), training=training))
        probs = keras.ops.softmax(logits, axis=-1)
        return {"softmax": probs, "logits": logits} if return_all else probs


def test_a_resumed_run_with_dropout_takes_the_steps_an_uninterrupted_one_takes(tmp_path, monkeypatch):
    """Keras keeps the dropout's random state out of the model's checkpoint: resumed, a run
    dropped other units than it would have (step 5 losses 1.4262 and 1.4199 in a walkthrough)."""
    def build(config):
        model = DropoutSegmenter(config.num_classes)
        model(np.zeros((1, config.height, config.width, 3), np.float32))
        return model

    monkeypatch.setattr(training.trainer, "build_model", build)
    straight = training.Trainer(_tiny_config(tmp_path / "straight", max_iteration=4), log=lambda line: None).train()
    training.Trainer(_tiny_config(tmp_path / "resumed", max_iteration=4), log=lambda line: None).train(max_steps=2)
    resumed = training.Trainer(_tiny_config(tmp_path / "resumed", max_iteration=4), log=lambda line: None)
    assert resumed.resumed_from.endswith("ckpt-2")
    assert resumed.train().losses == straight.losses[2:]


def test_extending_a_finished_run_says_the_schedule_moves_to_the_new_end(tmp_path, tiny_model):
    """The poly rate depends on step / max_iteration: a finished run extended from 2 to 4 steps
    trains its next steps at a higher rate than its last, which went without a word."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    lines = []
    extended = training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lines.append)
    rate = _tf1_poly(2, 0.01, 4, 0.9, 1e-4)
    assert extended.learning_rate() == pytest.approx(rate, rel=1e-5)
    assert (f"note: max_iteration 2 -> 4 since the run last started: the learning rate follows the schedule to the "
            f"new end ({rate:.4g} at this step)") in lines


def test_a_resume_on_other_records_restarts_the_input_stream(tmp_path, tiny_model):
    """From one record file to its shards: the saved pipeline of one file did not restore into
    that of several, every checkpoint failed in turn, and the error said to move them away."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    shards = [write_records(tmp_path / "records" / f"train-0000{i}-of-00002.tfrecords", 2, height=32, width=32,
                            num_classes=5, seed=i) for i in range(2)]
    lines = []
    # A start on the shards that dies before its first checkpoint (a damaged record, the memory
    # killer): config.yaml names the shards then, the checkpoint still holds the file's position.
    training.Trainer(_tiny_config(tmp_path, max_iteration=4, train_data=shards), log=lines.append).write_run_config()
    result = training.Trainer(_tiny_config(tmp_path, max_iteration=4, train_data=shards), log=lines.append).run()
    assert result.start_step == 2 and result.final_step == 4
    restarted = [line for line in lines if line.endswith(
        "at step 2 (input streams restarted: train_data changed since ckpt-2)")]
    assert len(restarted) == 2, lines
    assert not [line for line in lines if "cannot resume" in line], lines
    # From ckpt-4 on, the shards' positions are restored.
    lines.clear()
    training.Trainer(_tiny_config(tmp_path, max_iteration=6, train_data=shards), log=lines.append)
    assert any(line.endswith("resumed from " + str(tmp_path / "checkpoints" / "ckpt-4") + " at step 4")
               for line in lines), lines


def test_a_resume_on_records_converted_again_into_the_same_file_restarts_the_input_stream(tmp_path, tiny_model):
    """The saved position is a byte offset into the old file: restored into a file converted
    again, the run failed steps later with "corrupted record at 599170", at every rerun."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    records = tmp_path / "records" / "train.tfrecords"
    before = records.stat().st_size
    write_records(records, 6, height=32, width=32, num_classes=5, seed=3)
    lines = []
    result = training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lines.append).run()
    assert result.start_step == 2 and result.final_step == 4
    assert any(line.endswith(f"at step 2 (input streams restarted: files rewritten since ckpt-2: {records} "
                             f"{before} -> {records.stat().st_size} bytes)") for line in lines), lines
    lines.clear()
    training.Trainer(_tiny_config(tmp_path, max_iteration=6), log=lines.append)  # unchanged since ckpt-4
    assert any(line.endswith(" at step 4") for line in lines), lines


def test_a_stream_restarted_on_resume_is_shuffled_anew_not_the_runs_first_batches(tmp_path, tiny_model):
    """Helper 261: the restarted stream's seed offset was fixed before the restore found why it
    restarts (records converted again, batches of another shape, a pipeline that no longer
    restores): 0, and the resumed run read its first batches again."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    write_records(tmp_path / "records" / "train.tfrecords", 6, height=32, width=32, num_classes=5, seed=3)
    resumed = training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lambda line: None)
    fresh = training.Trainer(_tiny_config(tmp_path, max_iteration=4, checkpoint=str(tmp_path / "fresh")),
                             log=lambda line: None)
    assert resumed.stream_seed_offset == 2 and fresh.stream_seed_offset == 0
    assert not np.array_equal(next(resumed.iterator)[0], next(fresh.iterator)[0])
    assert resumed.run().final_step == 4
    lines = []
    training.Trainer(_tiny_config(tmp_path, max_iteration=6), log=lines.append)  # the new stream's position
    assert any(line.endswith(" at step 4") for line in lines), lines


def test_a_resume_on_the_same_records_converted_again_in_another_order_restarts_the_input_stream(
        tmp_path, tiny_model):
    """Helper 262: a file converted again into the same size (the same images in another order,
    the advice after a warning of grouped records) kept the saved byte offset, which then fell
    inside a record."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    records = tmp_path / "records" / "train.tfrecords"
    before = records.stat().st_size
    samples = [bytes(record.numpy()) for record in tf.data.TFRecordDataset(str(records))]
    with tf.io.TFRecordWriter(str(records)) as writer:
        for sample in reversed(samples):
            writer.write(sample)
    assert records.stat().st_size == before
    lines = []
    assert training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lines.append).run().final_step == 4
    restarted = rf"at step 2 \(input streams restarted: files rewritten since ckpt-2: {re.escape(str(records))} "
    assert any(re.search(restarted + r"modified at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, of the same size\)$", line)
               for line in lines), lines


def test_a_resume_whose_input_pipeline_changed_restarts_the_stream_and_keeps_the_run(
        tmp_path, tiny_model, monkeypatch, caplog):
    """A saved position restores only into the pipeline that wrote it: after an update that
    changed the pipeline, every checkpoint was skipped ("Failed to restore dataset iterator"),
    and the run was lost."""
    first = training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None)
    first.run()
    weights = [v.numpy() for v in first.model.weights]
    make_dataset = training.Trainer._make_dataset
    monkeypatch.setattr(training.Trainer, "_make_dataset",
                        lambda self, *args: make_dataset(self, *args).map(lambda x, y: (x, y)).prefetch(1))
    lines = []
    resumed = training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lines.append)
    for before, after in zip(weights, resumed.model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert any(re.search(r"at step 2 \(input streams restarted: the position of data saved in ckpt-2 does not fit "
                         r"the input pipeline as it is now \(TensorFlow: Failed to restore dataset iterator from "
                         r"checkpoint: Iterator::[\w:]+\)\)$", line) for line in lines), lines
    # Not one line per variable of TensorFlow's about the failed restore.
    assert not [r for r in caplog.records if "could not be found" in r.getMessage()]
    assert resumed.run().final_step == 4  # on a new stream (the failed one ended at its first batch)
    lines.clear()
    training.Trainer(_tiny_config(tmp_path, max_iteration=6), log=lines.append)  # the new stream's position
    assert any(line.endswith(" at step 4") for line in lines), lines


def test_a_damaged_input_position_is_a_damaged_checkpoint_and_the_one_before_is_resumed(
        tmp_path, tiny_model, monkeypatch):
    """Only a position that does not fit the pipeline restarts the stream; a damaged one (a
    checksum) is a damaged checkpoint, as before, and the one before is resumed with its position."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=4), log=lambda line: None).run()
    real = tf.train.Checkpoint

    class DamagedAtFour(real):
        def restore(self, path, *args, **kwargs):
            if list(self._trackable_children()) == ["data"] and path.endswith("ckpt-4"):
                raise tf.errors.DataLossError(None, None, "Checksum does not match: stored 1, computed 2")
            return super().restore(path, *args, **kwargs)

    monkeypatch.setattr(tf.train, "Checkpoint", DamagedAtFour)
    lines = []
    resumed = training.Trainer(_tiny_config(tmp_path, max_iteration=6), log=lines.append)
    assert resumed.resumed_from.endswith("ckpt-2"), lines
    assert any("cannot resume from" in line and "ckpt-4 (its data position: Checksum does not match" in line
               for line in lines), lines
    assert any(line.endswith(" at step 2") for line in lines), lines  # its position restored
    assert resumed.run().final_step == 6


def test_a_resume_names_the_changed_keys_of_a_section_and_a_key_set_since():
    """Sections were compared as written: a semi-supervised run begun before `teacher_batch_norm`
    existed got a "semi_supervised changed" note on every resume, a changed confidence was only
    "changed", and a key set since the start (a labeled subset) was not noted at all."""
    from ssma_tf.config.augmentation import AugmentationConfig
    from ssma_tf.config.semi_supervised import SemiSupervisedConfig
    from ssma_tf.config.run import DEFAULTS
    from ssma_tf.training.trainer import _changed_inputs

    now = SemiSupervisedConfig().to_dict()
    older = {name: value for name, value in now.items() if name not in ("teacher_batch_norm", "ema_every")}
    # An older run's config.yaml: no teacher_batch_norm in its section, no aux_loss_weights at all.
    saved = {"train_data": ["a.tfrecords"], "semi_supervised": older, "weight_decay": 0.0}
    current = {"train_data": ["a.tfrecords"], "semi_supervised": dict(now), "weight_decay": 0.0,
               "augmentation": AugmentationConfig.disabled().to_dict(), "aux_loss_weights": [0.6, 0.5]}
    # Keys with a default are always in `RunConfig.to_dict` (unset ones are left out).
    current.update({key: DEFAULTS[key] for key in ("encoder_lr_multiplier", "dropout_keep_prob", "adam_epsilon",
                                                   "recalibrate_batch_norm", "modality2_interpolation",
                                                   "one_hot_labels")})
    assert _changed_inputs(saved, current) == []
    current["semi_supervised"]["confidence"] = 0.9
    current["labeled_subset"] = "labeled.txt"
    assert _changed_inputs(saved, current) == ["labeled_subset unset -> labeled.txt",
                                               "semi_supervised.confidence 0.968 -> 0.9"]
    current["semi_supervised"]["teacher_batch_norm"] = "moving"  # away from the default it had
    assert "semi_supervised.teacher_batch_norm batch -> moving" in _changed_inputs(saved, current)
    unset = _changed_inputs({**saved, "labeled_subset": "labeled.txt"}, {**current, "labeled_subset": None})
    assert unset[0] == "labeled_subset labeled.txt -> unset"
    # The resampling of modality 2 and the seed went on without a word (helper 133).
    assert _changed_inputs(saved, {**current, "modality2_interpolation": "bilinear", "seed": 5})[-2:] == [
        "modality2_interpolation nearest -> bilinear", "seed unset -> 5"]
    # A section set or unset names its keys off their defaults (before: "semi_supervised changed",
    # where a resumed depth run's colouring had flipped; helper 138).
    blue = {**now, "depth_encoding": "jet_near_blue"}
    assert _changed_inputs({**saved, "semi_supervised": blue}, {**current, "semi_supervised": None}) == [
        "labeled_subset unset -> labeled.txt", "semi_supervised set -> unset (depth_encoding jet_near_blue)"]
    assert _changed_inputs({**saved, "semi_supervised": None}, current)[-1] == (
        "semi_supervised unset -> set (teacher_batch_norm moving, confidence 0.9)")


def test_a_changed_learning_rate_on_resume_is_noted_with_the_rate_it_gives(tmp_path, tiny_model):
    """learning_rate 0.01 -> 0.001 made the rate jump without a word (a new max_iteration had a note)."""
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    lines = []
    resumed = training.Trainer(_tiny_config(tmp_path, max_iteration=4, learning_rate=0.001), log=lines.append)
    rate = _tf1_poly(2, 0.001, 4, 0.9, 1e-4)
    assert resumed.learning_rate() == pytest.approx(rate, rel=1e-5)
    assert (f"note: learning_rate 0.01 -> 0.001 since the run last started: the learning rate follows the new schedule "
            f"({rate:.4g} at this step)") in lines
    # Other records or loss settings went on without a word.
    other = tmp_path / "records" / f"other_{'x' * 160}.tfrecords"  # a value too long to show
    write_records(other, 4, height=32, width=32, num_classes=5, seed=3)
    lines.clear()
    training.Trainer(_tiny_config(tmp_path, max_iteration=4, learning_rate=0.001, train_data=str(other),
                                  weight_decay=0.001), log=lines.append)
    assert ("note: since the run last started, train_data changed; weight_decay 0.0 -> 0.001: the run goes on with the "
            "new values") in lines  # a value longer than 160 characters only as changed
    # Dropout and Adam's epsilon too (before: without a word, as the experts' rate factor).
    lines.clear()
    training.Trainer(_tiny_config(tmp_path, max_iteration=4, learning_rate=0.001, dropout_keep_prob=0.9,
                                  adam_epsilon=0.1), log=lines.append)
    assert ("note: since the run last started, dropout_keep_prob 0.3 -> 0.9; adam_epsilon 1e-08 -> 0.1: the run goes "
            "on with the new values") in lines



def test_other_starting_weights_on_resume_are_said_not_read_and_config_yaml_keeps_the_start(tmp_path, tiny_model):
    """Helper 321: a stage-3 run's `intialize` corrected after it had started went on from its
    checkpoint without a word, and config.yaml then named the new weights as the run's start."""
    import yaml

    other = training.Trainer(_tiny_config(tmp_path, max_iteration=1, checkpoint=str(tmp_path / "other")),
                             log=lambda line: None)
    other.run()
    training.Trainer(_tiny_config(tmp_path, max_iteration=2), log=lambda line: None).run()
    lines = []
    weights = str(tmp_path / "other" / "final.weights.h5")
    resumed = training.Trainer(_tiny_config(tmp_path, max_iteration=3, initialize=weights), log=lines.append)
    assert (f"note: since the run last started, initialize unset -> {weights}: not read, as a resumed run goes on "
            "from its checkpoint (config.yaml keeps the weights it started from); give another checkpoint folder to "
            "start from the new ones") in lines
    assert resumed.config.initialize is None
    resumed.run()
    saved = yaml.safe_load((tmp_path / "checkpoints" / "config.yaml").read_text())
    assert saved.get("initialize") is None and saved["max_iteration"] == 3
    # Finished, and exported again in Python with the other weights in its config (helper 324: they
    # were written into config.yaml), or the experts named the other way (checkpoints for
    # checkpoint1/checkpoint2: no change, no note).
    finished = training.Trainer(_tiny_config(tmp_path, max_iteration=3, initialize=weights), log=lambda line: None)
    assert finished.config.initialize is None
    finished.export_weights()
    assert yaml.safe_load((tmp_path / "checkpoints" / "config.yaml").read_text()).get("initialize") is None
    from ssma_tf.training.trainer import _changed_starting_weights

    two = {"checkpoint1": "/e/rgb.h5", "checkpoint2": "/e/depth.h5", "checkpoints": None}
    listed = {"checkpoint1": None, "checkpoint2": None, "checkpoints": ["/e/rgb.h5", "/e/depth.h5"]}
    assert _changed_starting_weights(two, listed) == ([], {})
    lines, kept = _changed_starting_weights(two, {**listed, "checkpoints": ["/e/rgb.h5", "/e/other.h5"]})
    assert "checkpoints unset -> ['/e/rgb.h5', '/e/other.h5']" in lines and kept["checkpoint2"] == "/e/depth.h5"


_RESUMED_ON_TWO = """
import dataclasses
from ssma_tf import training
from ssma_tf.config import load_config
from tests.training_helpers import build_tiny_model
training.trainer.build_model = build_tiny_model
config = load_config(sys.argv[1], "train")
training.Trainer(config, strategy=strategy, log=lambda line: None).train()
lines = []
longer = dataclasses.replace(config, max_iteration=3, batch_size=4)
training.Trainer(longer, strategy=strategy, log=lines.append)
print("\\n".join(lines))
"""


def test_a_resume_on_several_replicas_names_a_change_of_the_batches(tmp_path):
    """With several replicas the stream restarts anyway, and another batch size, height or width
    went on without a word, as it is named on one replica (helper 133)."""
    from tests.training_helpers import run_on_two_logical_cpus

    config = _tiny_config(tmp_path, max_iteration=2)
    path = tmp_path / "two.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    run = run_on_two_logical_cpus(_RESUMED_ON_TWO, str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert ("(input stream restarted: data position is not saved with several replicas; batch_size 2 -> 4 since "
            "the run's last start)") in run.stdout, run.stdout
