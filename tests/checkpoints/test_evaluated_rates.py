"""Helper 340: the weights of a run trained with other eASPP rates than the config's, evaluated,
predicted or exported. The rates are in no weight's shape: such weights loaded into a network of the
config's rates and were scored at them without a word (a wrong mIoU). The run's `config.yaml` says
them; a `.keras` file holds its own network, and a config's other rates are warned of."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.checkpoints import loading
from ssma_tf.checkpoints.initialize import check_checkpoint_fits
from ssma_tf.config import ConfigWarning, config_from_dict
from ssma_tf.config.runs import write_run_config
from ssma_tf.inference.settings import setup_inference
from ssma_tf.models import AdapNetPP
from tests.training_helpers import write_records

TRAINED = r"was trained with easpp_rates \[6, 12, 18\] \(its run's config\.yaml\), but the config's network has "
ADVICE = r"set easpp_rates: \[6, 12, 18\] in the config \(or --set 'easpp_rates=\[6, 12, 18\]'\), as it was trained$"
COMMON = dict(num_classes=5, height=32, width=64, batch_size=1)


def _run_config(run, model="AdapNet_pp", **keys):
    """Writes `run/config.yaml` as a training run of `easpp_rates: [6, 12, 18]` writes it."""
    config = config_from_dict({**COMMON, "model": model, "checkpoint": str(run), "train_data": "train.tfrecords",
                               "max_iteration": 2, "learning_rate": 1e-3, "easpp_rates": [6, 12, 18], **keys},
                              source="train.config", mode="train", check_paths=False)
    write_run_config(config, run)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder of a tiny AdapNet++ (32x64, 5 classes) trained with eASPP rates 6, 12, 18: its
    final weights, a TF2 checkpoint, its whole model and its config.yaml."""
    folder = tmp_path_factory.mktemp("r6")
    model = AdapNetPP(5, easpp_rates=(6, 12, 18))
    model(np.zeros((1, 32, 64, 3), np.float32))
    model.save_weights(str(folder / "final.weights.h5"))
    tf.train.Checkpoint(model=model).write(str(folder / "ckpt-1"))
    model.save(str(folder / "final.keras"))
    _run_config(folder)
    write_records(folder.parent / "test.tfrecords", 1, height=32, width=64)
    return folder


def _eval_config(checkpoint, **keys):
    return config_from_dict({**COMMON, "model": "AdapNet_pp", "checkpoint": str(checkpoint),
                             "test_data": "test.tfrecords", **keys}, source="e.config", mode="eval",
                            check_paths=False)


def test_evaluate_refuses_the_weights_of_a_run_of_other_rates_before_the_build(run, monkeypatch):
    from ssma_tf import evaluation

    def build(config):
        raise AssertionError("built before the refusal")

    monkeypatch.setattr(evaluation, "build_model", build)
    for given in (run / "final.weights.h5", run / "ckpt-1"):
        with pytest.raises(CheckpointError, match=rf"^e\.config: {given} {TRAINED}\[3, 6, 12\]: {ADVICE}"):
            evaluation.evaluate(_eval_config(given), log=lambda line: None)
    # Other rates than the default are refused as well, naming the config's.
    with pytest.raises(CheckpointError, match=rf"{TRAINED}\[2, 4, 8\]: {ADVICE}"):
        evaluation.evaluate(_eval_config(run / "final.weights.h5", easpp_rates=[2, 4, 8]), log=lambda line: None)


def test_the_run_folder_and_an_ssma_run_are_refused_too(run, tmp_path):
    # The run's folder stands for its newest checkpoint; an SSMA run's rates are every expert's.
    with pytest.raises(CheckpointError, match=rf"^e\.config: {run} {TRAINED}\[3, 6, 12\]"):
        check_checkpoint_fits(_eval_config(run), str(run))
    fusion = tmp_path / "ssma"
    fusion.mkdir()
    (fusion / "final.weights.h5").write_bytes(b"")  # never read: refused before
    _run_config(fusion, model="SSMA")
    config = _eval_config(fusion / "final.weights.h5", model="SSMA")
    with pytest.raises(CheckpointError, match=rf"final\.weights\.h5 {TRAINED}\[3, 6, 12\]: {ADVICE}"):
        check_checkpoint_fits(config, config.checkpoint)
    with pytest.raises(CheckpointError, match=TRAINED):
        loading.model_from_config(config)  # the library's entry, before the build


def test_evaluate_scores_the_run_at_its_rates_when_the_config_sets_them(run):
    from ssma_tf.evaluation import evaluate

    result = evaluate(_eval_config(run / "final.weights.h5", easpp_rates=[6, 12, 18],
                                   test_data=str(run.parent / "test.tfrecords")), log=lambda line: None)
    assert result.metrics["num_images"] == 1


def test_prediction_and_export_refuse_the_weights_naming_the_config_line_or_set(run, tmp_path):
    config = tmp_path / "p.config"
    config.write_text("model: AdapNet_pp\nnum_classes: 5\nheight: 32\nwidth: 64\n"
                      f"checkpoint: {run / 'final.weights.h5'}\n")
    for given in (None, run / "final.weights.h5", run / "ckpt-1"):
        shown = given or run / "final.weights.h5"
        with pytest.raises(CheckpointError, match=rf"^{config}: {shown} {TRAINED}\[3, 6, 12\]: {ADVICE}"):
            setup_inference(config, given)
    other = _with_line(config, "easpp_rates: [2, 4, 8]")
    with pytest.raises(CheckpointError, match=rf"^{other}, line 6: .*{TRAINED}\[2, 4, 8\]"):
        setup_inference(other)
    # The run alone is built at its own rates; a --set of others on it is refused, naming the --set.
    assert setup_inference(checkpoint=run).model.easpp_rates == (6, 12, 18)
    with pytest.raises(CheckpointError, match=r"config\.yaml with --set easpp_rates=.*" + TRAINED):
        setup_inference(checkpoint=run, overrides={"easpp_rates": [3, 6, 12], "checkpoint": str(run / "ckpt-1")})
    loaded = setup_inference(_with_line(config, "easpp_rates: [6, 12, 18]")).model
    assert loaded.easpp_rates == (6, 12, 18)


def _with_line(config, line):
    """A copy of `config` with `line` appended."""
    copy = config.with_name(f"{config.stem}-{len(line)}{config.suffix}")
    copy.write_text(config.read_text() + line + "\n")
    return copy


def test_weights_that_say_nothing_of_their_rates_load_as_before(run, tmp_path):
    # Outside a run nothing records the rates: loaded into the config's, as before.
    bare = tmp_path / "bare.weights.h5"
    shutil.copy2(run / "final.weights.h5", bare)
    config = _eval_config(bare)
    check_checkpoint_fits(config, str(bare))
    assert loading.model_from_config(config).easpp_rates == (3, 6, 12)
    # Started from (`intialize`): `initialize_model` names the key (helper 244), not this check.
    start = config_from_dict({**COMMON, "model": "AdapNet_pp", "checkpoint": str(tmp_path / "new"),
                              "train_data": "train.tfrecords", "max_iteration": 1, "learning_rate": 1e-3,
                              "intialize": str(run)}, source="t.config", check_paths=False)
    check_checkpoint_fits(start, start.initialize)


def test_a_keras_file_runs_at_its_rates_and_a_config_giving_others_is_warned_of(run, tmp_path):
    keras_file = run / "final.keras"
    config = tmp_path / "k.config"
    config.write_text("model: AdapNet_pp\nnum_classes: 5\nheight: 32\nwidth: 64\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert setup_inference(config, keras_file).model.easpp_rates == (6, 12, 18)
    assert not [w for w in seen if "easpp_rates" in str(w.message)]  # the config does not give them
    given = _with_line(config, "easpp_rates: [3, 6, 12]")
    with pytest.warns(ConfigWarning, match=rf"^{given}, line 5: easpp_rates \[3, 6, 12\] is not used: {keras_file} "
                                           r"holds its whole network, which runs at the eASPP rates it was saved "
                                           r"with, \[6, 12, 18\]$"):
        assert setup_inference(given, keras_file).model.easpp_rates == (6, 12, 18)
    with pytest.warns(ConfigWarning, match=r"with --set easpp_rates=.*is not used"):
        setup_inference(config, keras_file, overrides={"easpp_rates": [2, 4, 8]})
