"""Damaged, truncated, foreign and mismatched checkpoints: one `CheckpointError` line naming the file.

Every loader the commands use is tried (`resolve_weights`, `check_checkpoint_fits` and
`load_weights` as `ssma-evaluate` calls them, `initialize_model` for a run's `intialize`,
`load_model` for `ssma-predict`/`ssma-export`, `convert_tf1_checkpoint`), on the tiny stand-in
model where the kind of network does not matter and on AdapNet++ where it does (class counts).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.checkpoints.convert import convert_tf1_checkpoint
from ssma_tf.checkpoints.initialize import check_checkpoint_fits, initialize_model
from ssma_tf.checkpoints.loading import load_model, load_weights
from ssma_tf.checkpoints.resolve import resolve_weights
from ssma_tf.checkpoints.tf1_import import load_tf1_checkpoint
from ssma_tf.config import config_from_dict
from ssma_tf.errors import UserInputError
from ssma_tf.models import AdapNetPP
from tests.tf1_helpers import write_tf1_checkpoint
from tests.training_helpers import TinySegmenter


def _tiny(num_classes: int = 5) -> TinySegmenter:
    model = TinySegmenter(num_classes)
    model(np.zeros((1, 32, 32, 3), np.float32))
    return model


def _truncate(path, keep: float = 0.5) -> None:
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


@pytest.fixture
def tiny_files(tmp_path):
    """A TF2 checkpoint (in a training folder), a `.weights.h5` and a `.keras` of the tiny model."""
    model = _tiny()
    run = tmp_path / "run"
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run), max_to_keep=3)
    prefix = manager.save()
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    keras_file = str(tmp_path / "tiny.keras")
    model.save(keras_file)
    return {"run": str(run), "prefix": prefix, "weights": weights, "keras": keras_file}


@pytest.mark.parametrize("damage", ["truncated data", "random index", "empty index", "foreign index"])
def test_a_damaged_tf2_checkpoint_is_one_line_naming_it(tiny_files, damage):
    prefix = tiny_files["prefix"]
    if damage == "truncated data":
        _truncate(prefix + ".data-00000-of-00001")
        expected = "shorter than it should be"
    elif damage == "random index":
        open(prefix + ".index", "wb").write(np.random.default_rng(0).bytes(300))
        expected = "not a checkpoint index"
    elif damage == "empty index":
        open(prefix + ".index", "wb").close()
        expected = "not a checkpoint index"
    else:  # a foreign file under the checkpoint's name
        shutil.copy(__file__, prefix + ".index")
        expected = "not a checkpoint index"
    for source in (prefix, tiny_files["run"]):  # the prefix, or the training folder holding it
        with pytest.raises(CheckpointError, match=expected) as caught:
            load_weights(_tiny(), source)
        assert prefix in _one_line(caught.value) and caught.value.path == prefix
        assert isinstance(caught.value, UserInputError)


@pytest.mark.parametrize("damage", ["truncated data", "random index"])
def test_a_folders_damaged_newest_checkpoint_names_the_older_one(tiny_files, damage):
    """A run stopped while saving (a full disk) keeps a whole checkpoint before its newest: the
    error said only that the newest cannot be read (helper 73)."""
    model = _tiny()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), tiny_files["run"], max_to_keep=3)
    newest = manager.save(checkpoint_number=2)
    if damage == "truncated data":
        _truncate(newest + ".data-00000-of-00001")
    else:
        open(newest + ".index", "wb").write(np.random.default_rng(0).bytes(300))
    told = re.escape(f"; the folder holds an older checkpoint, {tiny_files['prefix']}: give it by its prefix")
    with pytest.raises(CheckpointError, match=told) as caught:
        load_weights(_tiny(), tiny_files["run"])
    assert _one_line(caught.value).startswith(f"cannot read the checkpoint {newest}: ")
    assert str(caught.value).count("older checkpoint") == 1  # resolving and loading both name it
    if damage == "random index":  # read when the path is resolved, before any model is built
        with pytest.raises(CheckpointError, match=told):
            resolve_weights(tiny_files["run"])
    # Given by its prefix, the newest is named alone: the user chose it.
    with pytest.raises(CheckpointError) as caught:
        load_weights(_tiny(), newest)
    assert "older checkpoint" not in str(caught.value)
    load_weights(_tiny(), tiny_files["prefix"])


def test_a_damaged_checkpoint_state_file_is_named(tiny_files):
    state = os.path.join(tiny_files["run"], "checkpoint")
    open(state, "w").write("model_checkpoint_path: \x00\x01 not a text proto {{{\n")
    with pytest.raises(CheckpointError, match="state file") as caught:
        resolve_weights(tiny_files["run"])
    assert state in _one_line(caught.value)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "foreign"])
def test_a_damaged_weights_or_keras_file_is_one_line_naming_it(tiny_files, damage):
    for key, expected in (("weights", "HDF5|shorter"), ("keras", r"\.keras \(zip\) archive")):
        path = tiny_files[key]
        if damage == "truncated":
            _truncate(path)
        elif damage == "random bytes":
            open(path, "wb").write(np.random.default_rng(1).bytes(4096))
        else:
            shutil.copy(__file__, path)
        with pytest.raises(CheckpointError, match=expected) as caught:
            load_weights(_tiny(), path)
        assert path in _one_line(caught.value)
    with pytest.raises(CheckpointError, match=r"\.keras \(zip\) archive"):
        load_model(tiny_files["keras"])  # ssma-predict / ssma-export RUN.keras


def test_own_tiny_checkpoints_of_another_class_count_name_the_variable(tiny_files):
    for source in (tiny_files["prefix"], tiny_files["weights"]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no Keras or TensorFlow warning on the way
            with pytest.raises(CheckpointError, match=r"\[1, 1, 4, 5\]") as caught:
                load_weights(_tiny(7), source)
        message = _one_line(caught.value)
        assert source in message and "[1, 1, 4, 7]" in message and "head" in message


class _Wider(TinySegmenter):
    """Another kind of model: the tiny one with one more layer."""

    def __init__(self, num_classes: int):
        super().__init__(num_classes)
        self.extra = keras.layers.Conv2D(num_classes, 1, name="extra")
        self.extra.build((None, None, None, num_classes))


def test_own_checkpoints_of_another_kind_of_model_are_one_line(tiny_files):
    wider = _Wider(5)
    wider(np.zeros((1, 32, 32, 3), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"lacks 2 of the 10 weights of this _Wider \(e\.g\. extra/kernel"):
            load_weights(wider, tiny_files["prefix"])
        with pytest.raises(CheckpointError, match="holds 8 arrays but this _Wider has 10 weights"):
            load_weights(wider, tiny_files["weights"])


def test_save_weights_of_a_compiled_model_loads_its_optimizer_state_aside(tmp_path):
    """Keras' `save_weights` after `fit` keeps the optimizer's state in the file too: its arrays
    were counted as the model's ("holds 22 arrays but this TinySegmenter has 8 weights")."""
    trained = _tiny()
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trained.fit(np.ones((2, 32, 32, 3), np.float32), np.ones((2, 32, 32), np.int32), verbose=0)
    path = str(tmp_path / "trained.weights.h5")
    trained.save_weights(path)
    fresh = _tiny()
    load_weights(fresh, path)
    for saved, loaded in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    wider = _Wider(5)
    wider(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(CheckpointError, match="holds 8 arrays but this _Wider has 10 weights"):
        load_weights(wider, path)


def test_an_evaluated_or_initialised_damaged_checkpoint_is_named(tmp_path, tiny_files):
    prefix = tiny_files["prefix"]
    _truncate(prefix + ".data-00000-of-00001")
    records = tmp_path / "x.tfrecords"
    records.write_bytes(b"")
    config = config_from_dict(
        {"model": "AdapNet_pp", "num_classes": 5, "checkpoint": str(tmp_path / "new"),
         "train_data": str(records), "batch_size": 1, "height": 32, "width": 32,
         "max_iteration": 1, "learning_rate": 0.1, "intialize": prefix},
        source="t.config", mode="train",
    )
    check_checkpoint_fits(config, prefix)  # the index is whole: the damage shows when reading
    with pytest.raises(CheckpointError, match="shorter than it should be") as caught:
        initialize_model(_tiny(), config)
    assert prefix in _one_line(caught.value)
    open(prefix + ".index", "wb").write(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a checkpoint index"):
        check_checkpoint_fits(config, prefix)  # what ssma-evaluate runs first


@pytest.fixture(scope="module")
def adapnet12():
    """An AdapNet++ with 12 classes, as the TF1 fixture holds (~8 s to build: built once)."""
    return AdapNetPP(12)


def test_adapnet_checkpoints_of_another_class_count_name_the_variable_and_both_shapes(tiny_backbone, tmp_path):
    # The classes are in AdapNet++'s decoder and heads, not its backbone: on the tiny one (a ResNet-50
    # AdapNet++ of 3 classes and the 12-class one's 120 MB files took most of the test).
    twelve = AdapNetPP(12, backbone=tiny_backbone)
    prefix = tf.train.Checkpoint(model=twelve).write(str(tmp_path / "ckpt-1"))
    weights = str(tmp_path / "twelve.weights.h5")
    twelve.save_weights(weights)
    three = AdapNetPP(3, backbone=tiny_backbone)
    before = [w.numpy() for w in three.weights]
    for source, variable in ((prefix, "kernel"), (weights, "up3/kernel")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(CheckpointError, match="12 classes, the model 3") as caught:
                load_weights(three, source)
        message = _one_line(caught.value)
        assert source in message and variable in message and "12]" in message and "3]" in message
    # Refused before anything was restored: the model keeps its weights.
    for old, weight in zip(before, three.weights):
        np.testing.assert_array_equal(old, weight.numpy())


def test_tf1_checkpoints_damaged_are_named(tf1_fixture_dir, tmp_path, adapnet12):
    prefix = str(tmp_path / "model.ckpt")
    shutil.copy(tf1_fixture_dir / "model.ckpt.index", prefix + ".index")
    shutil.copy(tf1_fixture_dir / "model.ckpt.data-00000-of-00001", prefix + ".data-00000-of-00001")
    _truncate(prefix + ".data-00000-of-00001", 0.9)
    model = adapnet12
    before = [w.numpy() for w in model.weights]
    with pytest.raises(CheckpointError, match="shorter than it should be") as caught:
        load_tf1_checkpoint(model, prefix)  # what evaluate, intialize and the converter run
    assert prefix in _one_line(caught.value) and "variable" in str(caught.value)
    for old, weight in zip(before, model.weights):  # nothing half-loaded
        np.testing.assert_array_equal(old, weight.numpy())
    open(prefix + ".index", "wb").write(np.random.default_rng(2).bytes(500))
    output = tmp_path / "out.weights.h5"
    with pytest.raises(CheckpointError, match="not a checkpoint index") as caught:
        convert_tf1_checkpoint(prefix, str(output))
    assert prefix in _one_line(caught.value) and not output.exists()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_tf1_checkpoint_of_another_class_count_is_named_before_the_model_is_built(tmp_path, mode):
    from tests.tf1_helpers import write_tf1_checkpoint

    # The names tell an AdapNet++ (a decoder, conv41) and its classes (conv78's last dimension).
    prefix = write_tf1_checkpoint(str(tmp_path / "model.ckpt"), {
        "resnet_v2_50/conv41/weights": np.zeros((1, 1, 4, 4), np.float32),
        "resnet_v2_50/conv78/weights": np.zeros((1, 1, 256, 12), np.float32),
    })
    records = tmp_path / "x.tfrecords"
    records.write_bytes(b"")
    data = {"train_data": str(records), "max_iteration": 1, "learning_rate": 0.1, "intialize": prefix} \
        if mode == "train" else {"test_data": str(records)}
    config = config_from_dict({"model": "AdapNet_pp", "num_classes": 7, "batch_size": 1, "height": 32, "width": 32,
                               "checkpoint": prefix if mode == "eval" else str(tmp_path / "run"), **data},
                              source="t.config", mode=mode)
    advice = "; to train on another class set, start from it with finetune_from instead of intialize"
    expected = f"{prefix} has 12 classes (void included), but the config t.config says num_classes: 7"
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint_fits(config, prefix)
    assert _one_line(caught.value) == expected + (advice if mode == "train" else "")
    # A class count given on the command line is named there, not in the file (helper 73).
    given = dataclasses.replace(config, overridden=(("num_classes", "--set num_classes=7"),))
    with pytest.raises(CheckpointError, match=re.escape("but the config t.config with --set num_classes=7 says")):
        check_checkpoint_fits(given, prefix)


def test_a_keras_file_of_another_stream_count_is_refused_naming_both(tmp_path):
    """Helper 301: a 3-modality late fusion's .keras file loaded into a 2-modality one without a
    word (its third expert dropped, its mixing kept at thirds); a 2-modality one into 3 modalities
    failed with Keras' "158 objects could not be loaded", naming a batch norm."""
    import json
    import zipfile

    from ssma_tf.models import FusionBaseline

    def archive(name, config):  # what the check reads: the archive and its config.json
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as f:
            f.writestr("config.json", json.dumps(config))
            f.writestr("metadata.json", "{}")
        return str(path)

    three = archive("late3.keras", {"class_name": "FusionBaseline", "config": {"num_modalities": 3, "fusion": "late"}})
    model = FusionBaseline(7, fusion="late", num_modalities=2)
    with pytest.raises(CheckpointError, match=re.escape(
            f"the model file {three} fuses 3 modality streams (its FusionBaseline), this FusionBaseline 2: give the "
            "config's modalities list (num_modalities in Python) it was trained with")):
        load_weights(model, three, initialization=True)
    expert = archive("rgb.keras", {"class_name": "AdapNetPP", "config": {"num_classes": 7}})
    with pytest.raises(CheckpointError, match=re.escape(
            f"the model file {expert} holds a unimodal AdapNet++ (an expert), not a FusionBaseline of 2 modality "
            "streams: a fusion network starts its experts from such files with checkpoint1/checkpoint2")):
        load_weights(model, expert)


def test_the_class_hint_is_given_only_where_class_axes_differ():
    from ssma_tf.checkpoints.reading import _class_hint

    model = type("Four", (), {"num_classes": 4})()
    assert _class_hint([1, 1, 256, 12], [1, 1, 256, 4], model) == " (the checkpoint has 12 classes, the model 4)"
    assert _class_hint([8, 8, 12, 12], [8, 8, 4, 4], model) == " (the checkpoint has 12 classes, the model 4)"
    # A kernel of another layer that ends in 4 channels (before: "the checkpoint has 256 classes").
    assert _class_hint([3, 3, 280, 256], [1, 1, 256, 4], model) == ""
    # The classifier reads the decoder: its input axis is the decoder's width (helper 181: an SSMA
    # of another decoder_filters, which has no auxiliary heads to differ first, got no hint).
    assert _class_hint([1, 1, 16, 4], [1, 1, 256, 4], model, "classifier/conv/kernel") == (
        " (the model's decoder is 256 wide, the checkpoint's 16: give the decoder_filters it was trained with)")


def test_weights_of_another_stream_count_say_so(tmp_path):
    """Helper 71: a 3-modality SSMA's weights in a 2-modality config gave the array counts alone
    ("holds 1170 arrays but this SSMA has 783 weights")."""
    import h5py

    from ssma_tf.checkpoints.reading import check_h5_shapes

    stream = [(7, 7, 3, 64), (64,), (3, 3, 64, 64)]  # a stem, then layers that read features
    fused = [(1, 1, 192, 64), (8, 8, 5, 5)]

    class _Fusion:
        num_classes, num_modalities, backbone = 5, 2, "custom"
        weights = [types.SimpleNamespace(shape=s) for s in stream * 2 + fused]

    path = tmp_path / "three.weights.h5"
    with h5py.File(path, "w") as f:
        for index, shape in enumerate(stream * 3 + fused):
            f.create_dataset(f"layers/{index}/vars/0", data=np.zeros(shape, np.float32))
    with pytest.raises(CheckpointError, match=re.escape(
            "holds 11 arrays but this _Fusion has 8 weights: it holds another model (kind, options or layers) (the "
            "file holds 3 modality streams, this _Fusion 2: give the config's modalities list it was trained with "
            "(num_modalities= when building the network in Python))")):
        check_h5_shapes(str(path), _Fusion())
    # A model without streams (or the same count) gets the counts alone.
    _Fusion.num_modalities = None
    with pytest.raises(CheckpointError, match=r"\(kind, options or layers\)$"):
        check_h5_shapes(str(path), _Fusion())
    _Fusion.num_modalities = 3
    _Fusion.weights = [types.SimpleNamespace(shape=s) for s in stream * 3 + fused + [(5,)]]
    with pytest.raises(CheckpointError, match=r"holds 11 arrays but this _Fusion has 12 weights: .*\(kind, options "
                                              r"or layers\)$"):
        check_h5_shapes(str(path), _Fusion())
    # One stream: an expert's weights, which start a fusion network's experts instead.
    _Fusion.num_modalities = 2
    _Fusion.weights = [types.SimpleNamespace(shape=s) for s in stream * 2 + fused]
    with h5py.File(path, "w") as f:
        for index, shape in enumerate(stream + fused):
            f.create_dataset(f"layers/{index}/vars/0", data=np.zeros(shape, np.float32))
    with pytest.raises(CheckpointError, match=re.escape(
            "(the file holds one modality stream, as a unimodal AdapNet++ (an expert) does, this _Fusion 2: a "
            "fusion network starts its experts from such files with checkpoint1/checkpoint2")):
        check_h5_shapes(str(path), _Fusion())


def test_weights_of_another_fusion_network_name_it(tmp_path, tiny_backbone):
    """Helper 311: a late fusion's weights outside their run folder, loaded as an SSMA's, got "another
    model" (and at 3 modalities "give the config's modalities list"; following that, "another model"
    again): the file's layer names say which fusion network it holds."""
    from ssma_tf.checkpoints.reading import check_h5_shapes, stored_fusion
    from ssma_tf.models import SSMA, FusionBaseline

    late = str(tmp_path / "late.weights.h5")
    FusionBaseline(4, fusion="late").save_weights(late)  # the one AdapNet++ build of this test
    ssma = str(tmp_path / "ssma.weights.h5")
    SSMA(4, backbone=tiny_backbone).save_weights(ssma)
    # What Keras writes: each top-level layer's own name beside its weights.
    assert stored_fusion(late) == ("late", 2) and stored_fusion(ssma) == ("ssma", 2)
    with pytest.raises(CheckpointError, match=re.escape(
            "it holds another model (kind, options or layers) (the file holds a fusion: late network over 2 modality "
            "streams, this is SSMA over 3: give the config fusion: late and its modalities list of 2 "
            '(FusionBaseline(fusion="late", num_modalities=2) in Python))')):
        load_weights(SSMA(4, num_modalities=3, backbone=tiny_backbone), late)

    # Another baseline, without building one.
    cmode = type("FusionBaseline", (), {"num_classes": 4, "num_modalities": 2, "fusion": "cmode",
                                        "backbone": "custom", "weights": [types.SimpleNamespace(shape=(1,))]})
    with pytest.raises(CheckpointError, match=re.escape(
            "this FusionBaseline has 1 weights: it holds another model (kind, options or layers) (the file holds a "
            "fusion: late network over 2 modality streams, this is FusionBaseline (fusion: cmode) over 2: give the "
            'config fusion: late and its modalities list of 2 (FusionBaseline(fusion="late", num_modalities=2) in '
            "Python))")):
        check_h5_shapes(late, cmode())
    cmode.fusion = "late"  # the same network: the counts alone, as before
    with pytest.raises(CheckpointError, match=r"this FusionBaseline has 1 weights: .*\(kind, options or layers\)$"):
        check_h5_shapes(late, cmode())
    with pytest.raises(CheckpointError, match=re.escape(
            "(the file holds a fusion: ssma network over 2 modality streams, this is FusionBaseline (fusion: late) "
            "over 2: give the config fusion: ssma and its modalities list of 2 (SSMA(num_modalities=2) in Python))")):
        check_h5_shapes(ssma, cmode())
    # A unimodal network, which has no modality streams.
    unimodal = type("AdapNetPP", (), {"num_classes": 4, "backbone": "custom", "weights": cmode.weights})
    with pytest.raises(CheckpointError, match=re.escape(
            "(the file holds a fusion: late network over 2 modality streams, this is a unimodal AdapNetPP: give the "
            "config model: SSMA, fusion: late and its modalities list of 2")):
        check_h5_shapes(late, unimodal())


def _named_weights(path, names: list, shapes: list) -> None:
    """A `.weights.h5` file as Keras writes one: each top-level layer's group (named after its class)
    has its own name as its `vars` group's `name` attribute; the arrays go to the first."""
    import h5py

    with h5py.File(path, "w") as f:
        for index, name in enumerate(names):
            f.create_group(f"layers/layer_{index}/vars").attrs["name"] = name
        for index, shape in enumerate(shapes):
            f.create_dataset(f"layers/layer_0/vars/{index}", data=np.zeros(shape, np.float32))


@pytest.mark.parametrize("fusion, own", [
    ("ssma", ["ssma_latent", "ssma_skip2", "ssma_skip1", "concat_skip1"]), ("average", ["average", "logits"]),
    ("maximum", ["maximum", "renormalise"]), ("late", ["late_conv1", "late_conv2", "late_add"]),
    ("cmode", ["cmode_concat", "cmode_gate_fc", "cmode_mix"]), ("lfc", ["lfc_add_easpp", "lfc_conv1", "up1"]),
    ("fusenet", ["fusenet_add1", "fusenet_add4", "easpp"]), ("stacking", ["stack", "stacked_view"]),
])
def test_the_fusion_network_of_a_weights_file_is_told_from_its_layer_names(tmp_path, fusion, own):
    """Helper 311: each fusion network's own top-level layers (as `models/ssma.py` and
    `fusion_baselines.py` name them) tell it; an expert (input `image`) or unnamed layers tell none."""
    from ssma_tf.checkpoints.reading import stored_fusion

    path = tmp_path / "f.weights.h5"
    _named_weights(path, ["modality1", "modality2", "modality3", "softmax"] + own, [(3,)])
    assert stored_fusion(str(path)) == (fusion, 3)
    _named_weights(path, ["image", "up1", "softmax"], [(3,)])
    assert stored_fusion(str(path)) == (None, 0)


def test_a_stacking_network_of_another_stream_count_says_so(tmp_path):
    """Helper 311: a stacking network has one stem on 3N channels, so its stream count is in its
    inputs' names only: 3 modalities' weights in a 2-modality one named a batch norm's shape alone."""
    from ssma_tf.checkpoints.reading import check_h5_shapes

    path = tmp_path / "stacking3.weights.h5"
    _named_weights(path, ["modality1", "modality2", "modality3", "stack", "stacked_view"], [(7, 7, 9, 64), (9,)])

    class FusionBaseline:
        num_classes, num_modalities, fusion, backbone = 4, 2, "stacking", "custom"
        weights = [types.SimpleNamespace(shape=s, path=p) for s, p in (((7, 7, 6, 64), "conv1/kernel"),
                                                                      ((6,), "input_bn/gamma"))]

    with pytest.raises(CheckpointError, match=re.escape(
            "holds no array of that shape (it holds one of shape [7, 7, 9, 64] instead) (the file holds 3 modality "
            "streams, this FusionBaseline 2: give the config's modalities list it was trained with")):
        check_h5_shapes(str(path), FusionBaseline())


def test_a_weights_file_with_a_damaged_header_is_one_line_naming_it(tiny_files):
    """Damaged HDF5 object headers make h5py raise a bare RuntimeError ("Object visitation failed
    (bad local heap signature)"), which passed through as a traceback."""
    path = tiny_files["weights"]
    data = bytearray(open(path, "rb").read())
    data[512:4096] = b"\x11" * (4096 - 512)
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match="damaged HDF5 weights file") as caught:
        load_weights(_tiny(), path)
    assert path in _one_line(caught.value)


def test_a_runtime_error_of_the_project_itself_is_not_taken_for_a_damaged_file(tmp_path):
    from ssma_tf.checkpoints.reading import reading

    with pytest.raises(RuntimeError, match="a bug"):
        with reading(str(tmp_path / "x.weights.h5"), "weights file"):
            raise RuntimeError("a bug")


def test_a_checkpoint_under_a_path_with_glob_characters_is_told_so(tmp_path, tf1_fixture_dir):
    """TensorFlow reads a prefix as a pattern: under `run[1]/` the files were "not found" (helper 126)."""
    folder = tmp_path / "run[1]"
    folder.mkdir()
    for part in tf1_fixture_dir.glob("model.ckpt.*"):
        shutil.copy(part, folder / part.name)
    with pytest.raises(CheckpointError, match=r"reads a checkpoint prefix as a file pattern, and its path holds one "
                                              r"of \[ \] \? \*: rename the folder") as caught:
        load_model(str(folder / "model.ckpt"))
    assert str(folder / "model.ckpt") in _one_line(caught.value)


def test_load_model_of_a_run_folder_names_the_older_checkpoint(tmp_path):
    """`ssma_tf.load_model(RUN)` with its newest checkpoint cut short said only that it cannot be
    read; the commands named the folder's older one (helper 152)."""
    from ssma_tf.config.runs import write_run_config

    model = AdapNetPP(3, aux_heads=True)
    model(np.zeros((1, 32, 64, 3), np.float32))
    run = tmp_path / "run"
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run), max_to_keep=3)
    older, newest = manager.save(checkpoint_number=1), manager.save(checkpoint_number=2)
    _truncate(newest + ".data-00000-of-00001")
    write_run_config(config_from_dict(dict(model="AdapNet_pp", num_classes=3, height=32, width=64, batch_size=1,
                                           max_iteration=1, learning_rate=1e-3, train_data="unused",
                                           checkpoint=str(run)), check_paths=False), run)
    told = re.escape(f"; the folder holds an older checkpoint, {older}: ")
    with pytest.raises(CheckpointError, match=told) as caught:
        load_model(run)
    assert _one_line(caught.value).startswith(f"cannot read the checkpoint {newest}: ")


@pytest.mark.parametrize("dtype", ["string", "bool", "float16", "int32"])
def test_a_tf1_variable_stored_as_no_number_is_named_and_changes_no_weight(tmp_path, adapnet12, dtype):
    """Before: a string tensor of the right shape was "ValueError: could not convert string to float:
    b'a'", a traceback naming neither the variable nor the file, raised after the variables sorted
    before it had been assigned (helper 333). float16 and integers are cast, as before."""
    odd = {"string": np.full(3, b"a"), "bool": np.ones(3, bool)}
    values = odd[dtype] if dtype in odd else np.full(3, 2, dtype)
    arrays = {"resnet_v2_50/conv0/BatchNorm/beta": np.full(3, 0.5, np.float32),  # assigned first
              "resnet_v2_50/conv0/BatchNorm/gamma": values}
    prefix = write_tf1_checkpoint(str(tmp_path / "odd.ckpt"), arrays)
    layer = adapnet12.encoder.get_layer("input_bn")
    before = [layer.beta.numpy().copy(), layer.gamma.numpy().copy()]
    if dtype in ("float16", "int32"):
        load_tf1_checkpoint(adapnet12, prefix, strict=False)
        np.testing.assert_array_equal(layer.gamma.numpy(), [2, 2, 2])
        layer.beta.assign(before[0])
        layer.gamma.assign(before[1])
        return
    with pytest.raises(CheckpointError, match=rf"odd\.ckpt: variable resnet_v2_50/conv0/BatchNorm/gamma is stored "
                                              rf"as {dtype}, not as numbers"):
        load_tf1_checkpoint(adapnet12, prefix, strict=False)
    np.testing.assert_array_equal(layer.beta.numpy(), before[0])
    np.testing.assert_array_equal(layer.gamma.numpy(), before[1])
