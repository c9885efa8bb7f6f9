"""Tests of `ssma_tf.checkpoints.resolve` and `ssma_tf.checkpoints.loading`: every kind of
checkpoint is recognised and loaded, and a model is built from the checkpoint that holds it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ssma_tf import training
from ssma_tf.checkpoints import CheckpointError
from ssma_tf.checkpoints.loading import load_model, load_weights
from ssma_tf.checkpoints.resolve import FORMAT_KERAS, FORMAT_TF1, FORMAT_TF2, resolve_weights
from ssma_tf.config import ConfigError, config_from_dict
from ssma_tf.models import AdapNetPP
from tests.inference.helpers import randomize_batch_norms
from tests.training_helpers import TinySegmenter, build_tiny_model, write_records


def test_own_checkpoints_and_weight_files_are_recognised_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)
    write_records(tmp_path / "train.tfrecords", 2, height=32, width=32, num_classes=5)
    config = config_from_dict(
        {"model": "AdapNet_pp", "num_classes": 5, "checkpoint": str(tmp_path / "run"),
         "train_data": str(tmp_path / "train.tfrecords"), "batch_size": 2, "height": 32, "width": 32,
         "max_iteration": 2, "learning_rate": 0.01, "save_step": 2},
        source="train.config", mode="train",
    )
    trainer = training.Trainer(config, log=lambda line: None)
    trainer.train()
    trained = [v.numpy() for v in trainer.model.weights]

    assert resolve_weights(str(tmp_path / "run"))[0] == FORMAT_TF2
    assert resolve_weights(str(tmp_path / "run" / "ckpt-2.index")) == (FORMAT_TF2, str(tmp_path / "run" / "ckpt-2"))
    assert resolve_weights(str(tmp_path / "run" / "final.weights.h5"))[0] == FORMAT_KERAS
    # Written with `write()`, which saves no save_counter (helper 191: refused as "does not hold this
    # model"); a checkpoint of `save()` has one.
    import tensorflow as tf

    tf.train.Checkpoint(model=trainer.model).write(str(tmp_path / "written" / "ckpt-1"))
    for source in ("run", "run/ckpt-2", "run/final.weights.h5", "written/ckpt-1"):
        model = build_tiny_model(config)
        load_weights(model, str(tmp_path / source))
        for expected, variable in zip(trained, model.weights):
            np.testing.assert_array_equal(expected, variable.numpy(), err_msg=source)

    other = TinySegmenter(7)
    other(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(CheckpointError):
        load_weights(other, str(tmp_path / "run" / "final.weights.h5"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_weights(str(tmp_path / "nothing"))


def test_tf1_checkpoints_are_told_apart_from_own_ones(tf1_fixture_dir):
    assert resolve_weights(str(tf1_fixture_dir / "model.ckpt")) == (
        FORMAT_TF1, str(tf1_fixture_dir / "model.ckpt"))
    assert resolve_weights(str(tf1_fixture_dir / "model.ckpt.index"))[0] == FORMAT_TF1


def test_load_model_from_a_weights_file(tmp_path):
    adapnet = AdapNetPP(4)
    randomize_batch_norms(adapnet, seed=1)
    path = str(tmp_path / "adapnet.weights.h5")
    adapnet.save_weights(path)
    loaded = load_model(path, "AdapNet_pp", 4)
    assert isinstance(loaded, AdapNetPP) and loaded.num_classes == 4
    assert len(loaded.weights) == len(adapnet.weights)
    for mine, theirs in zip(loaded.weights, adapnet.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(ValueError, match="give model="):
        load_model(path)
    with pytest.raises(CheckpointError, match="missing.weights.h5"):
        load_model(str(tmp_path / "missing.weights.h5"), "AdapNet_pp", 4)
    # In a training run's folder its config.yaml says the network, as for the commands (before:
    # "does not say which network it holds" from the Python API only).
    from ssma_tf.config.runs import write_run_config

    run = tmp_path / "run"
    run.mkdir()
    adapnet.save_weights(run / "final.weights.h5")
    write_run_config(config_from_dict(dict(model="AdapNet_pp", num_classes=4, height=32, width=64, batch_size=1,
                                           max_iteration=1, learning_rate=1e-3, train_data="unused",
                                           checkpoint=str(run)), check_paths=False), run)
    loaded = load_model(run / "final.weights.h5")
    assert isinstance(loaded, AdapNetPP) and loaded.num_classes == 4
    np.testing.assert_array_equal(loaded.weights[-1].numpy(), adapnet.weights[-1].numpy())


def test_an_adapnet_without_auxiliary_heads_loads_and_fine_tunes(tmp_path):
    """Weights of `AdapNetPP(aux_heads=False)` were refused as another model (the loader built
    the heads), by `load_model` and `finetune_weights` alike."""
    import ssma_tf
    from ssma_tf.checkpoints import finetune_weights

    bare = AdapNetPP(4, aux_heads=False)
    randomize_batch_norms(bare, seed=2)
    path = str(tmp_path / "bare.weights.h5")
    bare.save_weights(path)
    loaded = load_model(path, "AdapNet_pp", 4)
    assert not loaded.aux_heads and len(loaded.weights) == len(bare.weights)
    np.testing.assert_array_equal(loaded.weights[-1].numpy(), bare.weights[-1].numpy())
    # The package's load_model takes what the file does not say (before: it asked for them and
    # took no such argument).
    assert not ssma_tf.load_model(path, model="AdapNet_pp", num_classes=4).aux_heads
    with pytest.raises(CheckpointError, match="give model= \\(AdapNet_pp or SSMA\\) and num_classes="):
        ssma_tf.load_model(path)
    with pytest.raises(ValueError, match="num_classes=5, but adapnet_pp_cityscapes_rgb is an AdapNet_pp of 12"):
        ssma_tf.load_model("adapnet_pp_cityscapes_rgb", num_classes=5)  # before any download
    report = finetune_weights(AdapNetPP(6), path)
    assert report.source_classes == 4 and "aux_up1_head" in report.reinitialized
    # Of another class count: the error of the network with its heads, as released.
    with pytest.raises(CheckpointError, match=r"has shape \[8, 8, 4, 4\] in the weights file .* \(the file has 4 "):
        load_model(path, "AdapNet_pp", 5)


def test_a_tf2_checkpoint_without_the_easpp_branches_is_refused(tmp_path):
    # Checkpoints written before the eASPP branches were tracked lack them; loading one must not
    # leave those branches at random weights. Such a checkpoint is made by dropping the
    # attributes that let `tf.train.Checkpoint` see the branches.
    import keras
    import tensorflow as tf

    from ssma_tf.layers import EASPP

    def tiny():
        inputs = keras.Input((8, 8, 6))
        return keras.Model(inputs, EASPP(8, 4, (1, 2), name="easpp")(inputs))

    old = tiny()
    easpp = old.get_layer("easpp")
    for name in [n for n in vars(easpp) if n.startswith("_checkpointed_")]:
        delattr(easpp, name)
    prefix = tf.train.Checkpoint(model=old).save(str(tmp_path / "ckpt"))
    with pytest.raises(CheckpointError, match="before the eASPP branches were checkpointed"):
        load_weights(tiny(), prefix)
    current = tf.train.Checkpoint(model=tiny()).save(str(tmp_path / "current"))
    assert "restored" in load_weights(tiny(), current)


def test_weights_of_a_run_of_another_model_name_the_run_model(tmp_path, tiny_backbone):
    # An AdapNet++ run's weights given to an SSMA: the shapes differ, and the run's config.yaml
    # says why. The message is made from the run's model name, not the backbone: the tiny one
    # (ResNet-50 builds took most of the test's 30 s), and one AdapNet++, which a refused load
    # leaves as it was.
    from ssma_tf.models import SSMA

    run = tmp_path / "run"
    run.mkdir()
    path = str(run / "final.weights.h5")
    adapnet = AdapNetPP(4, backbone=tiny_backbone)
    adapnet.save_weights(path)
    fusion = SSMA(4, backbone=tiny_backbone)
    with pytest.raises(CheckpointError) as plain:
        load_weights(fusion, path)
    assert "trained model" not in str(plain.value)  # no config.yaml: the shapes only
    (run / "config.yaml").write_text("model: AdapNet_pp\nnum_classes: 4\n")
    with pytest.raises(CheckpointError, match=rf"^the run {run} trained model: AdapNet_pp \(its config.yaml\), "
                                              r"not SSMA, and its weights do not fit \(.*\); give that run's "
                                              "config or a checkpoint of an SSMA$"):
        load_weights(fusion, path)
    # Helper 85: an SSMA run given as an AdapNet++ expert was first told to give "the decoder_filters it
    # was trained with", a guess from one variable's shape; the run's model is the cause.
    (run / "config.yaml").write_text("model: SSMA\nnum_classes: 4\n")
    fusion.save_weights(path)
    with pytest.raises(CheckpointError) as expert:
        load_weights(adapnet, path)
    assert str(expert.value).startswith(f"the run {run} trained model: SSMA (its config.yaml), not AdapNet_pp")
    assert "decoder_filters" not in str(expert.value) and "decoder is" not in str(expert.value)
    adapnet.save_weights(path)
    (run / "config.yaml").write_text("model: SSMA\n")  # the same model: the message stays as it was
    with pytest.raises(CheckpointError) as same:
        load_weights(fusion, path)
    assert str(same.value) == str(plain.value)


def test_expert_runs_of_another_modality_than_their_expert_are_warned_of(tmp_path):
    """The depth run given as checkpoint1 (the RGB expert) would train without a word."""
    from ssma_tf.checkpoints.initialize import swapped_expert_warnings

    runs = {}
    for name, read in (("rgb", "modality1"), ("depth", "modality2"), ("thermal", "modality3")):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "config.yaml").write_text(f"model: AdapNet_pp\ninput_modality: {read}\n")
    (tmp_path / "final.weights.h5").write_bytes(b"")  # a weights file outside any run: nothing to read
    common = dict(model="SSMA", num_classes=4, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, checkpoint=str(tmp_path / "ssma"), train_data="unused.tfrecords")

    def warnings(**keys):
        return swapped_expert_warnings(config_from_dict(dict(common, **keys), check_paths=False))

    assert warnings(checkpoint1=str(runs["rgb"]), checkpoint2=str(runs["depth"])) == []
    (swapped,) = warnings(checkpoint1=str(runs["rgb"]), checkpoint2=str(runs["thermal"]))
    assert swapped == (f"key 'checkpoint2': the run {runs['thermal']} was trained on modality3 (input_modality in its "
                       "config.yaml) but starts the modality2 expert; if the checkpoints are in the wrong order, "
                       "swap them")
    assert [w.split(":")[0] for w in warnings(checkpoint1=str(runs["depth"]), checkpoint2=str(runs["rgb"]))] == [
        "key 'checkpoint1'", "key 'checkpoint2'"]
    three = warnings(modalities=["rgb", "depth", "thermal"],
                     checkpoints=[str(runs["rgb"]), str(tmp_path / "final.weights.h5"), str(runs["thermal"])])
    assert three == []
    # A run config that is not UTF-8 gives no hint, and no traceback (named when the weights load).
    (runs["depth"] / "config.yaml").write_bytes(b"model: AdapNet_pp\ninput_modality: modality\xff\n")
    assert warnings(checkpoint1=str(runs["depth"]), checkpoint2=str(runs["rgb"]))[0].startswith("key 'checkpoint2'")
    # A depth expert trained on `depth label` records read modality 1, its one image: right as the
    # modality-2 expert (before: told to swap the checkpoints). On two-modality records it did
    # read the colour image.
    from ssma_tf.data.pipeline import modalities_in_records
    from tests.training_helpers import write_records

    only_depth = tmp_path / "only_depth"
    only_depth.mkdir()
    for fusion in (False, True):
        records = write_records(tmp_path / f"fusion{fusion}.tfrecords", 1, height=16, width=32, fusion=fusion)
        (only_depth / "config.yaml").write_text(f"model: AdapNet_pp\ntrain_data: [{records}]\n")
        config = config_from_dict(dict(common, checkpoint1=str(runs["rgb"]), checkpoint2=str(only_depth)),
                                  check_paths=False)
        found = swapped_expert_warnings(config, modalities_in_records)
        assert [w.split(":")[0] for w in found] == (["key 'checkpoint2'"] if fusion else [])
    (only_depth / "config.yaml").write_text("model: AdapNet_pp\ntrain_data: [gone.tfrecords]\n")
    assert len(swapped_expert_warnings(config, modalities_in_records)) == 1  # unknown: warned, as before


def test_a_run_of_another_modality_than_the_config_feeds_is_warned_of_before_evaluation_or_prediction(tmp_path):
    """`ssma-evaluate RUN_RGB --checkpoint RUN_DEPTH` scored the depth expert on colour images."""
    from ssma_tf.checkpoints.initialize import other_input_modality_warning
    from ssma_tf.checkpoints.reading import CheckpointError
    from ssma_tf.config import ConfigWarning
    from ssma_tf.inference.settings import setup_inference

    depth = tmp_path / "depth"
    depth.mkdir()
    (depth / "config.yaml").write_text("model: AdapNet_pp\ninput_modality: modality2\n")
    (depth / "final.weights.h5").write_bytes(b"")

    def evaluating(**keys):
        values = dict(model="AdapNet_pp", num_classes=4, height=32, width=64, batch_size=1,
                      checkpoint=str(tmp_path), test_data="val.tfrecords")
        values.update(keys)
        return config_from_dict(values, source="rgb.config", mode="eval", check_paths=False)

    assert other_input_modality_warning(evaluating(input_modality="modality2"), str(depth)) is None
    assert other_input_modality_warning(evaluating(), str(tmp_path / "elsewhere.weights.h5")) is None
    assert other_input_modality_warning(evaluating(model="SSMA"), str(depth)) is None  # SSMA: its experts' check
    for given in (depth, depth / "final.weights.h5"):
        assert other_input_modality_warning(evaluating(), str(given)) == (
            f"rgb.config: {given} is from the run {depth}, trained on modality2 (input_modality in its config.yaml), "
            "but it is given modality1; pass --set input_modality=modality2 unless the records hold the modality2 "
            "images as modality1")
    # Prediction and export set up through a config and a checkpoint: warned before the weights load.
    config = tmp_path / "rgb.config"
    config.write_text("model: AdapNet_pp\nnum_classes: 4\nheight: 32\nwidth: 64\ntest_data: val.tfrecords\nbatch_size: 1\n"
                      f"checkpoint: {tmp_path}\n")
    with pytest.warns(ConfigWarning, match=f"{config}: {depth / 'final.weights.h5'} is from the run {depth}, "
                                           "trained on modality2"):
        with pytest.raises(CheckpointError):
            setup_inference(config, depth / "final.weights.h5")


def test_a_run_that_has_not_finished_is_named_when_it_starts_another(tmp_path):
    """Stage 2 started from a stage-1 run killed halfway took its newest checkpoint without a word."""
    import tensorflow as tf

    from ssma_tf.checkpoints.initialize import unfinished_run_warnings

    run = tmp_path / "rgb"
    state = tf.train.Checkpoint(step=tf.Variable(24))
    tf.train.CheckpointManager(state, str(run), max_to_keep=1).save(checkpoint_number=24)
    (run / "config.yaml").write_text("model: AdapNet_pp\nmax_iteration: 26\n")
    common = dict(model="SSMA", num_classes=4, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, checkpoint=str(tmp_path / "ssma"), train_data="unused.tfrecords")
    config = config_from_dict(dict(common, checkpoint1=str(run), checkpoint2=str(run)), source="s2.config",
                              check_paths=False)
    assert unfinished_run_warnings(config) == [
        f"s2.config: key '{key}': {run} is a run that has not finished (no final.weights.h5): it starts from its "
        "newest checkpoint, ckpt-24 of max_iteration 26" for key in ("checkpoint1", "checkpoint2")]
    # As finetune_from too (helper 244: no word of it).
    tuned = config_from_dict(dict(common, model="AdapNet_pp", finetune_from=str(run)), source="t.config",
                             check_paths=False)
    assert unfinished_run_warnings(tuned) == [
        f"t.config: key 'finetune_from': {run} is a run that has not finished (no final.weights.h5): it starts from "
        "its newest checkpoint, ckpt-24 of max_iteration 26"]
    from ssma_tf.config.runs import newest_checkpoint, write_final_record

    (run / "final.weights.h5").write_bytes(b"w")
    (run / "final.keras").write_bytes(b"k")
    write_final_record(run, newest_checkpoint(run), written=True)  # finished at ckpt-24
    assert unfinished_run_warnings(config) == [] and unfinished_run_warnings(tuned) == []
    # Resumed to train longer and stopped again (helper 352): its final files are of ckpt-24, its
    # newest checkpoint ckpt-25. Before: taken as finished, as it has a final.weights.h5.
    tf.train.CheckpointManager(state, str(run), max_to_keep=1).save(checkpoint_number=25)
    assert unfinished_run_warnings(tuned) == [
        f"t.config: key 'finetune_from': {run} is a run that has not finished (its final files are not of its "
        "newest checkpoint): it starts from its newest checkpoint, ckpt-25 of max_iteration 26"]


def test_a_run_of_the_other_network_as_intialize_fails_before_the_build_naming_the_key(tmp_path):
    from ssma_tf.checkpoints.initialize import check_checkpoint_fits

    run = tmp_path / "rgb_run"
    run.mkdir()
    (run / "config.yaml").write_text("model: AdapNet_pp\ninput_modality: modality1\n")
    (run / "final.weights.h5").write_bytes(b"")  # never read: the run's config says enough
    common = dict(num_classes=4, height=32, width=64, batch_size=1, max_iteration=1, learning_rate=1e-3,
                  checkpoint=str(tmp_path / "new"), train_data="unused.tfrecords")
    fusion = config_from_dict(dict(common, model="SSMA", initialize=str(run / "final.weights.h5")),
                              source="s3.config", check_paths=False)
    with pytest.raises(CheckpointError, match=rf"^s3.config: key 'intialize': {run / 'final.weights.h5'} is a run of "
                                              r"model: AdapNet_pp \(its config.yaml\), but the config says model: SSMA; "
                                              r"SSMA starts its experts from unimodal runs with checkpoint1/checkpoint2"):
        check_checkpoint_fits(fusion, fusion.initialize)
    (run / "config.yaml").write_text("model: SSMA\n")
    with pytest.raises(CheckpointError, match=r"is a run of model: SSMA .* says model: AdapNet_pp; an AdapNet\+\+ "
                                              "starts from AdapNet\\+\\+ weights or the ImageNet checkpoint"):
        unimodal = config_from_dict(dict(common, model="AdapNet_pp", initialize=str(run)), check_paths=False)
        check_checkpoint_fits(unimodal, unimodal.initialize)
    assert check_checkpoint_fits(fusion, fusion.initialize)  # the same network: on to loading
    # A run over three modalities for a config that fuses two (a stage-3 config copied from the
    # two-modality template; before: an array-count or class-count error that did not say why).
    (run / "config.yaml").write_text("model: SSMA\nmodalities: [rgb, depth, nir]\n")
    with pytest.raises(CheckpointError, match=rf"^s3.config: {run / 'final.weights.h5'} is a run over 3 modalities "
                                              r"\(its config.yaml: modalities \['rgb', 'depth', 'nir'\]\), but this "
                                              r"config fuses 2; give the config the run's modalities list"):
        check_checkpoint_fits(fusion, fusion.initialize)
    three = config_from_dict(dict(common, model="SSMA", modalities=["rgb", "depth", "nir"],
                                  initialize=str(run / "final.weights.h5")), source="s3.config", check_paths=False)
    assert check_checkpoint_fits(three, three.initialize)
    # A fusion baseline's run for an SSMA config, and one baseline's for another's (before: "holds
    # 783 arrays but this SSMA has 747 weights: it holds another model").
    (run / "config.yaml").write_text("model: SSMA\nfusion: cmode\n")
    with pytest.raises(CheckpointError, match=rf"^s3.config: {run / 'final.weights.h5'} is a run of fusion: cmode "
                                              r"\(its config.yaml\), but the config says fusion: ssma; give the config "
                                              r"fusion: cmode, or a checkpoint of a fusion: ssma run$"):
        check_checkpoint_fits(fusion, fusion.initialize)
    late = config_from_dict(dict(common, model="SSMA", fusion="late", initialize=str(run / "final.weights.h5")),
                            source="s3.config", check_paths=False)
    with pytest.raises(CheckpointError, match="is a run of fusion: cmode .* says fusion: late"):
        check_checkpoint_fits(late, late.initialize)
    cmode = config_from_dict(dict(common, model="SSMA", fusion="cmode", initialize=str(run / "final.weights.h5")),
                             source="s3.config", check_paths=False)
    assert check_checkpoint_fits(cmode, cmode.initialize)


def test_an_expert_whose_encoder_does_not_fit_is_one_line_naming_the_key(tmp_path, monkeypatch, tiny_backbone):
    """A `.keras` expert of the other backbone loads whole; its encoder weights then do not fit
    (before: Keras' set_weights ValueError)."""
    from ssma_tf.checkpoints import initialize
    from ssma_tf.models import SSMA

    monkeypatch.setattr(initialize, "unimodal_encoder_weights", lambda *args, **kwargs: [np.zeros((3,))])
    monkeypatch.setattr(initialize, "expert_rates_problem", lambda *args: None)
    experts = [tmp_path / "mobilenet_rgb.keras", tmp_path / "mobilenet_depth.keras"]
    for path in experts:
        path.write_bytes(b"")  # never read: the encoder weights (and rates) come from the stand-ins above
    config = config_from_dict(dict(model="SSMA", num_classes=3, height=32, width=64, batch_size=1, max_iteration=1,
                                   learning_rate=1e-3, checkpoint=str(tmp_path / "ssma"), train_data="unused",
                                   checkpoint1=str(experts[0]), checkpoint2=str(experts[1])),
                              source="s2.config", check_paths=False)
    # Any SSMA's encoder refuses the stand-in weights (the backbone named is the config's): the tiny
    # one's, one network for both calls, as a refused set_weights assigns nothing.
    ssma = SSMA(3, backbone=tiny_backbone)
    with pytest.raises(CheckpointError, match=r"^s2.config: key 'checkpoint1': .*mobilenet_rgb.keras: its encoder does "
                                              r"not fit the .* expert of this SSMA \(backbone: adapnet_pp\): .*another "
                                              r"backbone\?$"):
        initialize.initialize_model(ssma, config)
    # Given with --set, the error names it (before: the file, which holds another checkpoint1).
    from ssma_tf.config.reader import config_with_overrides

    overridden = config_with_overrides({**config.to_dict(), "checkpoint1": "elsewhere.keras"},
                                       {"checkpoint1": str(experts[0])}, source="s2.config", check_paths=False)
    with pytest.raises(CheckpointError, match=rf"^s2.config with --set checkpoint1='{re.escape(str(experts[0]))}': "
                                              r"key 'checkpoint1': .*mobilenet_rgb.keras: its encoder does not fit"):
        initialize.initialize_model(ssma, overridden)
    assert overridden == config  # which keys were given on the command line does not make another config


def test_a_keras_file_of_a_model_this_package_does_not_build_is_one_line(tmp_path):
    """E.g. the scene classifier's `.keras` given to ssma-predict (before: Keras' TypeError)."""
    import keras

    @keras.saving.register_keras_serializable(package="elsewhere")
    class SceneClassifierLike(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = SceneClassifierLike()
    model(np.zeros((1, 3), np.float32))
    path = tmp_path / "scene.keras"
    model.save(path)
    keras.saving.get_custom_objects().pop("elsewhere>SceneClassifierLike")  # as in a process that never imported it
    with pytest.raises(CheckpointError, match=r"scene.keras holds a model this command cannot use: .*SceneClassifierLike"
                                              r".*; a scene classifier is used with ssma-scene$"):
        load_model(path)


def test_a_keras_file_of_another_modality_count_than_the_config_is_named(tmp_path, tiny_backbone):
    from ssma_tf.checkpoints.loading import model_from_config

    from ssma_tf.models import SSMA

    path = tmp_path / "rgbd.keras"
    # The modality count is checked before the backbone: an SSMA on the tiny one (a ResNet-50 one
    # took 20 s to save and load).
    SSMA(3, backbone=tiny_backbone).save(path)
    config = config_from_dict(dict(model="SSMA", num_classes=3, height=32, width=64, batch_size=1,
                                   modalities=["rgb", "depth", "thermal"], checkpoint=str(path), test_data="unused"),
                              mode="eval", source="e.config", check_paths=False)
    # Before: Keras' ValueError at the first batch of three images.
    with pytest.raises(CheckpointError, match=r"rgbd.keras holds a model of 2 modalities, but the config e.config "
                                              r"reads 3$"):
        model_from_config(config)


def test_a_keras_file_on_another_backbone_than_the_config_is_named(tmp_path):
    from ssma_tf.checkpoints.loading import model_from_config
    from ssma_tf.models import AdapNetPP

    path = tmp_path / "mobile.keras"
    AdapNetPP(3, backbone="mobilenet_v2").save(path)
    values = dict(model="AdapNet_pp", num_classes=3, height=32, width=64, batch_size=1, checkpoint=str(path),
                  test_data="unused")
    # Before: the MobileNet network was evaluated under a config that says AdapNet++.
    config = config_from_dict(values, mode="eval", source="e.config", check_paths=False)
    with pytest.raises(CheckpointError, match=r"mobile.keras holds a model on the mobilenet_v2 backbone, but the "
                                              r"config e.config says backbone: adapnet_pp$"):
        model_from_config(config)
    config = config_from_dict(dict(values, backbone="mobilenet_v2"), mode="eval", source="e.config", check_paths=False)
    assert model_from_config(config).backbone == "mobilenet_v2"


def test_a_folder_without_weights_says_what_it_is(tmp_path):
    """An OpenVINO export given as a checkpoint (ssma-predict without --backend), a run that has
    not saved yet: the error said only what the folder lacks."""
    import json

    from ssma_tf.checkpoints.resolve import resolve_weights

    export = tmp_path / "ssma_ov"
    (export / "assets.extra").mkdir(parents=True)
    (export / "assets.extra" / "ssma_tf.json").write_text(json.dumps({"backend": "openvino"}))
    with pytest.raises(CheckpointError, match=r"\(\*\.index\): it is an OpenVINO export of ssma-export; run it with "
                                              r"--backend openvino$"):
        resolve_weights(str(export))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: AdapNet_pp\n")
    with pytest.raises(CheckpointError, match="it is a training run that has not saved a checkpoint yet$"):
        resolve_weights(str(run))


def test_weights_of_another_backbone_are_named_and_an_expert_says_its_class_count(tmp_path):
    """A MobileNet v2 expert's files given where an AdapNet++ one is wanted (ssma-scene train,
    ssma-evaluate): before, a `.keras` was Keras' set_weights ValueError, a `.weights.h5` "another
    model (kind, options or layers)", a TF2 checkpoint a list of missing weights."""
    import tensorflow as tf

    from ssma_tf.checkpoints.loading import unimodal_encoder_weights
    from ssma_tf.checkpoints.reading import stored_backbone, stored_shapes

    mobile = AdapNetPP(5, backbone="mobilenet_v2")  # a functional model: built when made
    mobile.save(tmp_path / "mobile.keras")
    mobile.save_weights(tmp_path / "mobile.weights.h5")
    tf.train.Checkpoint(model=mobile).write(str(tmp_path / "mobile_ckpt"))
    resnet = AdapNetPP(5)  # a functional model: built when made
    assert stored_backbone([tuple(w.shape) for w in resnet.weights]) == "adapnet_pp"
    assert stored_backbone(stored_shapes(False, str(tmp_path / "mobile.weights.h5"))) == "mobilenet_v2"
    assert stored_backbone([(3, 3, 8, 16), (1, 1, 16, 4)]) is None  # neither network's
    # Pruned: a stem of fewer filters, a 3x3 convolution down to one (not a depthwise kernel).
    assert stored_backbone([(7, 7, 3, 40), (3, 3, 16, 1)]) == "adapnet_pp"
    # A MobileNet v2 SSMA of fused_kernel_size 7: its 7x7 fusion kernels read features, not an
    # image (helper 181: its own weights were "another backbone").
    assert stored_backbone([(7, 7, 512, 256), (3, 3, 32, 1), (3, 3, 3, 32)]) == "mobilenet_v2"
    for name, what in (("mobile.weights.h5", "the weights file"), ("mobile_ckpt", "the checkpoint")):
        with pytest.raises(CheckpointError, match=rf"^{what} .*{name} holds a model on the mobilenet_v2 backbone, but "
                                                  r"this AdapNetPP is on the adapnet_pp backbone$"):
            load_weights(resnet, str(tmp_path / name))
    with pytest.raises(CheckpointError, match=r"mobile.keras holds an AdapNet\+\+ on the mobilenet_v2 backbone, but "
                                              r"the experts are on the adapnet_pp backbone$"):
        unimodal_encoder_weights(str(tmp_path / "mobile.keras"), None, 0.5)
    # A config and weights (ssma-predict/export -c CONFIG --checkpoint W): the config's network
    # (before: a default AdapNet++, which loaded ResNet weights under a MobileNet config without a
    # word and refused MobileNet weights under it).
    from ssma_tf.inference.settings import setup_inference

    config = tmp_path / "mobile.config"
    config.write_text("model: AdapNet_pp\nnum_classes: 5\nheight: 32\nwidth: 64\nbackbone: mobilenet_v2\n"
                      "test_data: val.tfrecords\nbatch_size: 1\ncheckpoint: elsewhere\n")
    assert setup_inference(config, tmp_path / "mobile.weights.h5").model.backbone == "mobilenet_v2"
    with pytest.raises(CheckpointError, match=r"mobile.weights.h5 holds a model on the mobilenet_v2 backbone, but "
                                              r"this AdapNetPP is on the adapnet_pp backbone$"):
        setup_inference(config, tmp_path / "mobile.weights.h5", overrides={"backbone": "adapnet_pp"})
    # A config of the model alone (before: "key 'train_data': is missing; train needs it").
    alone = tmp_path / "alone.config"
    alone.write_text("model: AdapNet_pp\nnum_classes: 5\nheight: 32\nwidth: 64\nbackbone: mobilenet_v2\n")
    setup = setup_inference(alone, tmp_path / "mobile.weights.h5")
    assert setup.model.backbone == "mobilenet_v2" and setup.size == (32, 64)
    with pytest.raises(ConfigError, match=r"alone.config: key 'checkpoint': is missing: name the weights there, or "
                                          r"give --checkpoint$"):
        setup_inference(alone)
    alone.write_text("model: AdapNet_pp\nheight: 32\nwidth: 64\ncheckpoint: w.weights.h5\n")
    with pytest.raises(ConfigError, match=r"alone.config: key 'num_classes': is missing; the model needs it$"):
        setup_inference(alone)
    # Weights the config names that are not there (before: "no checkpoint at ...", neither the
    # key nor the file named).
    with pytest.raises(ConfigError, match=r"mobile.config, line 8: key 'checkpoint': no checkpoint at .*elsewhere \("):
        setup_inference(config)
    # Weights in a MobileNet v2 run's folder, with the model and classes given (as fine-tuning
    # gives them): the run's config builds its network (before: a ResNet AdapNet++, refused).
    from ssma_tf.config.runs import write_run_config

    mobile_run = tmp_path / "mobile_run"
    mobile_run.mkdir()
    mobile.save_weights(mobile_run / "final.weights.h5")
    write_run_config(config_from_dict(dict(model="AdapNet_pp", num_classes=5, height=32, width=64, batch_size=1,
                                           max_iteration=1, learning_rate=1e-3, train_data="unused",
                                           backbone="mobilenet_v2", checkpoint=str(mobile_run)),
                                      check_paths=False), mobile_run)
    assert load_model(mobile_run / "final.weights.h5", "AdapNet_pp", 5).backbone == "mobilenet_v2"
    # Without a class count an expert's weight file says its own (before: the caller's, e.g. the
    # scene classes, and a shape error).
    weights = unimodal_encoder_weights(str(tmp_path / "mobile.weights.h5"), None, 0.5, backbone="mobilenet_v2")
    for got, want in zip(weights, mobile.encoder.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_weights_of_another_decoder_width_name_decoder_filters(tmp_path, tiny_backbone):
    """Experts trained with decoder_filters 32 under a config of 64: the shapes alone before."""
    from ssma_tf.models.widths import decoder_widths

    # The decoder's widths are the point, not the encoder's: the tiny backbone.
    narrow = AdapNetPP(3, widths=decoder_widths(32), backbone=tiny_backbone)
    narrow(np.zeros((1, 32, 64, 3), np.float32))
    narrow.save_weights(tmp_path / "narrow.weights.h5")
    wide = AdapNetPP(3, widths=decoder_widths(64), backbone=tiny_backbone)
    wide(np.zeros((1, 32, 64, 3), np.float32))
    with pytest.raises(CheckpointError, match=r"instead\) \(the model's decoder is 64 wide, the checkpoint's 32: "
                                              r"give the decoder_filters it was trained with\)$"):
        load_weights(wide, str(tmp_path / "narrow.weights.h5"))


def test_experts_of_another_class_count_start_an_ssma_from_their_encoders(tmp_path):
    """Only the encoder is taken; own weights of another class count were refused ("the file has
    5 classes, the model 3"), where two TF1 checkpoints of any class count load (helper 126)."""
    from ssma_tf.checkpoints import initialize
    from ssma_tf.models import SSMA

    expert = AdapNetPP(5)  # a functional model: built when made
    for variable in expert.encoder.weights:
        variable.assign(np.random.default_rng(len(variable.path)).normal(size=variable.shape).astype(np.float32))
    expert.save_weights(tmp_path / "rgb5.weights.h5")
    config = config_from_dict(dict(model="SSMA", num_classes=3, height=32, width=64, batch_size=1, max_iteration=1,
                                   learning_rate=1e-3, checkpoint=str(tmp_path / "ssma"), train_data="unused",
                                   checkpoint1=str(tmp_path / "rgb5.weights.h5"),
                                   checkpoint2=str(tmp_path / "rgb5.weights.h5")),
                              source="s2.config", check_paths=False)
    ssma = SSMA(3)
    initialize.initialize_model(ssma, config)
    for encoder in ssma.encoders:
        for got, want in zip(encoder.get_weights(), expert.encoder.get_weights()):
            np.testing.assert_array_equal(got, want)


def test_an_expert_of_other_easpp_rates_is_refused_for_an_ssma(tmp_path):
    """Helper 214: the rates are in no weight's shape, so an expert trained with [3, 6, 12] ran at
    the SSMA's [2, 4, 8] without a word (the fusion baselines already refused it)."""
    from ssma_tf.checkpoints.initialize import initialize_model
    from ssma_tf.models import SSMA

    AdapNetPP(5, backbone="mobilenet_v2").save(tmp_path / "expert.keras")
    fields = dict(model="SSMA", num_classes=5, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, train_data="unused", backbone="mobilenet_v2", checkpoint=str(tmp_path / "run"),
                  checkpoint1=str(tmp_path / "expert.keras"), checkpoint2=str(tmp_path / "expert.keras"),
                  easpp_rates=[2, 4, 8])
    model = SSMA(5, backbone="mobilenet_v2", easpp_rates=(2, 4, 8))
    with pytest.raises(CheckpointError, match=r"key 'checkpoint1': .*expert.keras was trained with easpp_rates "
                                              r"\[3, 6, 12\], but this SSMA's experts have \[2, 4, 8\]: set "
                                              r"easpp_rates: \[3, 6, 12\] in the config"):
        initialize_model(model, config_from_dict(fields, check_paths=False))
    AdapNetPP(5, backbone="mobilenet_v2", easpp_rates=(2, 4, 8)).save(tmp_path / "same.keras")
    same = str(tmp_path / "same.keras")
    # Experts of different rates: no setting fits both (helper 220: each refusal advised the other).
    with pytest.raises(CheckpointError, match=r"key 'checkpoint2': the experts were trained with different "
                                              r"easpp_rates \(.*same.keras: \[2, 4, 8\], .*expert.keras: "
                                              r"\[3, 6, 12\]\), but the experts of one network share one set"):
        initialize_model(model, config_from_dict({**fields, "checkpoint1": same}, check_paths=False))
    said = initialize_model(model, config_from_dict({**fields, "checkpoint1": same, "checkpoint2": same},
                                                    check_paths=False))
    assert said == [f"{same}: loaded into the modality{i}_encoder expert" for i in (1, 2)]
    # Nor is a network of another backbone or decoder width called pruned (helper 214: "holds a
    # pruned network ... fine-tune it further with ssma-prune", which refuses MobileNet v2).
    from ssma_tf.checkpoints.reading import refuse_pruned_source
    from ssma_tf.models.widths import decoder_widths

    keras_file = str(tmp_path / "expert.keras")
    with pytest.raises(CheckpointError, match=r"expert.keras holds a network on the mobilenet_v2 backbone, but this "
                                              r"one is on the adapnet_pp backbone: set backbone: mobilenet_v2 in the "
                                              r"config"):
        refuse_pruned_source(keras_file, {}, {}, "finetune_from", backbone="adapnet_pp")
    with pytest.raises(CheckpointError, match=r"expert.keras holds a network of decoder_filters 64, but this one's "
                                              r"decoder is 256 wide: set decoder_filters: 64 in the config"):
        refuse_pruned_source(keras_file, decoder_widths(64), {}, "intialize", backbone="mobilenet_v2")
    with pytest.raises(CheckpointError, match=r"expert.keras holds a pruned network \(refine1_conv1: 64 channels, "
                                              r"here the released width\)"):
        refuse_pruned_source(keras_file, {**decoder_widths(64), "up1": 40}, {}, "intialize")


def test_a_whole_start_of_other_easpp_rates_is_refused_naming_the_key(tmp_path, tiny_backbone):
    """Helper 244: `intialize` or `finetune_from` a network trained with other eASPP rates (in no
    weight's shape) loaded it into the config's rates without a word, as experts no longer do."""
    from ssma_tf.checkpoints.initialize import initialize_model

    # The rates are compared first, the model's with the file's config: networks on the tiny backbone
    # (ResNet-50 ones took the test's 13 s).
    AdapNetPP(5, easpp_rates=(6, 12, 18), backbone=tiny_backbone).save(tmp_path / "r6.keras")
    model = AdapNetPP(5, backbone=tiny_backbone)
    common = dict(model="AdapNet_pp", num_classes=5, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, checkpoint=str(tmp_path / "run"), train_data="unused.tfrecords")
    for key in ("initialize", "finetune_from"):
        config = config_from_dict({**common, key: str(tmp_path / "r6.keras")}, source="r.config", check_paths=False)
        with pytest.raises(CheckpointError, match=rf"r\.config: key '{key}': .*r6\.keras was trained with easpp_rates "
                                                  r"\[6, 12, 18\], but the config's network has \[3, 6, 12\]: set "
                                                  r"easpp_rates: \[6, 12, 18\] in the config"):
            initialize_model(model, config)


def test_own_weights_refused_as_intialize_name_the_key_and_the_config(tmp_path):
    """Before: "error: the weights file .../mobile.weights.h5 holds a model on the mobilenet_v2
    backbone, but this AdapNet++ is on the adapnet_pp backbone", naming neither key nor config (helper 338)."""
    from ssma_tf.checkpoints.initialize import initialize_model
    from ssma_tf.models.widths import decoder_widths

    mobile = AdapNetPP(5, backbone="mobilenet_v2", widths=decoder_widths(16))  # a functional model: built when made
    mobile.save_weights(tmp_path / "mobile.weights.h5")
    config = config_from_dict(dict(model="AdapNet_pp", num_classes=5, height=32, width=64, batch_size=1,
                                   max_iteration=1, learning_rate=1e-3, checkpoint=str(tmp_path / "run"),
                                   train_data="unused", decoder_filters=16,
                                   initialize=str(tmp_path / "mobile.weights.h5")),
                              source="a.config", check_paths=False)
    with pytest.raises(CheckpointError, match=r"^a.config: key 'intialize': .*mobile.weights.h5 holds a model on the "
                                              r"mobilenet_v2 backbone, but this AdapNetPP is on the adapnet_pp"):
        initialize_model(AdapNetPP(5, widths=decoder_widths(16)), config)


def test_an_expert_run_of_another_decoder_width_starts_an_ssma_from_its_encoder(tmp_path):
    """Before: "key 'checkpoint1': variable aux_up1_head/conv/kernel has shape [1, 1, 256, 5] in the
    model but the weights file .../final.weights.h5 holds [1, 1, 64, 5]", for a decoder that is never
    used: the expert was built with the SSMA config's decoder_filters, not its run's (helper 338)."""
    import shutil

    from ssma_tf.checkpoints.initialize import initialize_model
    from ssma_tf.config.runs import write_run_config
    from ssma_tf.models import SSMA
    from ssma_tf.models.widths import decoder_widths

    run = tmp_path / "rgb16"
    run.mkdir()
    expert = AdapNetPP(5, backbone="mobilenet_v2", widths=decoder_widths(16))  # a functional model: built when made
    expert.save_weights(run / "final.weights.h5")
    write_run_config(config_from_dict(dict(model="AdapNet_pp", num_classes=5, height=32, width=64, batch_size=1,
                                           max_iteration=1, learning_rate=1e-3, train_data="unused",
                                           backbone="mobilenet_v2", decoder_filters=16, checkpoint=str(run)),
                                      check_paths=False), run)
    common = dict(model="SSMA", num_classes=3, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, checkpoint=str(tmp_path / "ssma"), train_data="unused",
                  backbone="mobilenet_v2", decoder_filters=32)
    config = config_from_dict(dict(common, checkpoint1=str(run), checkpoint2=str(run)), source="s2.config",
                              check_paths=False)
    ssma = SSMA(3, backbone="mobilenet_v2", widths=decoder_widths(32))
    initialize_model(ssma, config)
    for encoder in ssma.encoders:
        for got, want in zip(encoder.get_weights(), expert.encoder.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    # A lone weights file says no width: it is built with the config's, and named as before.
    shutil.copy(run / "final.weights.h5", tmp_path / "lone.weights.h5")
    lone = config_from_dict(dict(common, checkpoint1=str(tmp_path / "lone.weights.h5"), checkpoint2=str(run)),
                            source="s2.config", check_paths=False)
    with pytest.raises(CheckpointError, match=r"^s2.config: key 'checkpoint1': .*give the decoder_filters it was "
                                              r"trained with"):
        initialize_model(ssma, lone)


def test_the_trainer_does_not_read_backbone_weights_that_finetune_from_replaces(tmp_path, monkeypatch):
    """Before: the ImageNet backbone was read into the model, overwritten by finetune_from, and the
    log said backbone_weights had started it (helper 338)."""
    built = []

    def build(config):
        built.append(config.backbone_weights)
        return build_tiny_model(config)

    monkeypatch.setattr(training.trainer, "build_model", build)
    monkeypatch.setattr(training.trainer, "initialize_model", lambda model, config: [])
    write_records(tmp_path / "train.tfrecords", 2, height=32, width=32, num_classes=5)
    (tmp_path / "imagenet.h5").write_bytes(b"")
    (tmp_path / "start.weights.h5").write_bytes(b"")
    values = {"model": "AdapNet_pp", "num_classes": 5, "checkpoint": str(tmp_path / "run"),
              "train_data": str(tmp_path / "train.tfrecords"), "batch_size": 2, "height": 32, "width": 32,
              "max_iteration": 2, "learning_rate": 0.01, "backbone": "mobilenet_v2",
              "backbone_weights": str(tmp_path / "imagenet.h5"), "finetune_from": str(tmp_path / "start.weights.h5")}
    lines = []
    training.Trainer(config_from_dict(values, source="train.config", mode="train"), log=lines.append)
    assert built == [None]
    assert (f"train.config: key 'backbone_weights': {tmp_path / 'imagenet.h5'} is not read: finetune_from starts "
            "the encoder, mobilenet_v2 backbone included") in lines
    # The only start: read as before.
    del values["finetune_from"]
    values["checkpoint"] = str(tmp_path / "alone")
    lines.clear()
    training.Trainer(config_from_dict(values, source="train.config", mode="train"), log=lines.append)
    assert built == [None, str(tmp_path / "imagenet.h5")] and not any("is not read" in line for line in lines)


def test_the_trainer_refuses_a_finetune_from_run_over_more_modalities_before_the_build(tmp_path, monkeypatch):
    """Before: the two-modality fusion was built and fine-tuned from the run over three, its third
    expert dropped without a word (helper 338)."""
    from ssma_tf.config.runs import write_run_config

    def build(config):
        raise AssertionError("built")

    monkeypatch.setattr(training.trainer, "build_model", build)
    run = tmp_path / "run3"
    run.mkdir()
    (run / "final.weights.h5").write_bytes(b"")  # never read: the run's config says enough
    common = dict(model="SSMA", num_classes=3, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, train_data=str(tmp_path / "unused.tfrecords"))
    write_run_config(config_from_dict(dict(common, modalities=["rgb", "depth", "nir"], checkpoint=str(run)),
                                      check_paths=False), run)
    config = config_from_dict(dict(common, num_classes=5, checkpoint=str(tmp_path / "new"), finetune_from=str(run)),
                              source="s3.config", mode="train", check_paths=False)
    with pytest.raises(CheckpointError, match=r"^s3.config: key 'finetune_from': .*run3 is a run over 3 modalities"):
        training.Trainer(config, log=lambda line: None)
