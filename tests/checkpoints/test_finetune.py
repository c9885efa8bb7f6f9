"""Fine-tuning a trained checkpoint to another class set (`finetune_from`)."""

import re

import h5py
import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.checkpoints import CheckpointError, load_tf1_checkpoint
from ssma_tf.checkpoints.finetune import finetune_weights, stored_num_classes
from ssma_tf.checkpoints.resolve import FORMAT_KERAS, FORMAT_TF2
from ssma_tf.checkpoints.initialize import initialize_model
from ssma_tf.config import ConfigError, config_from_dict
from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.models.decoder import CLASS_LAYERS
from ssma_tf.models.widths import decoder_widths


def _config(tmp_path, **values):
    base = {"model": "AdapNet_pp", "num_classes": 5, "train_data": str(tmp_path / "x.tfrecords"),
            "checkpoint": str(tmp_path / "run"), "batch_size": 1, "height": 32, "width": 32,
            "learning_rate": 1e-3, "max_iteration": 2}
    base.update(values)
    return config_from_dict(base, source="finetune.config", mode="train", check_paths=False)


def test_tf1_checkpoint_fine_tunes_into_five_classes(tmp_path, tf1_fixture_dir):
    prefix = str(tf1_fixture_dir / "model.ckpt")
    with overwritten_weights():  # every weight is loaded (strictly) below
        original = AdapNetPP(12)
    load_tf1_checkpoint(original, prefix)
    model = AdapNetPP(5)
    fresh = {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in CLASS_LAYERS}

    # Through the config key and the training initialisation path.
    messages = initialize_model(model, _config(tmp_path, finetune_from=prefix))

    assert len(messages) == 1
    for name, scope in (("classifier", "conv78"), ("up3", "conv5"), ("aux_up2_head", "conv911"),
                        ("aux_up1_head", "conv912")):
        assert f"{name} ({scope})" in messages[0]
    assert "from 12 to 5 classes" in messages[0]
    compared = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name in CLASS_LAYERS:
            # Left as initialised, with the new class axis.
            for before, after in zip(fresh[layer.name], layer.get_weights()):
                np.testing.assert_array_equal(before, after)
            assert layer.weights[0].shape[-1 if layer.name != "up3" else -2] == 5
            continue
        for mine, theirs in zip(layer.get_weights(), original.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
            compared += 1
    # The encoder and the whole decoder but its class layers came from the checkpoint.
    assert compared == len(model.weights) - sum(len(model.get_layer(n).weights) for n in CLASS_LAYERS)


def test_fine_tuning_needs_the_same_kind_of_model(tf1_fixture_dir):
    with pytest.raises(CheckpointError, match="holds AdapNet_pp, but the model to fine-tune is SSMA: an AdapNet"):
        finetune_weights(SSMA(5), str(tf1_fixture_dir / "model.ckpt"))


def test_an_adapnet_runs_weights_into_ssma_are_named_as_the_other_network(tmp_path):
    """Helper 266: built as the SSMA to fine-tune, the run's AdapNet++ weights were refused as
    "holds 388 arrays but this SSMA has 747 weights", with advice to give that run's config."""
    from ssma_tf.config import config_from_dict
    from ssma_tf.config.runs import write_run_config

    # Narrow MobileNet v2 networks: the run's config says its network (backbone and widths included),
    # built and loaded as the ResNet one would be.
    run = tmp_path / "run"
    run.mkdir()
    AdapNetPP(3, backbone="mobilenet_v2", widths=decoder_widths(16)).save_weights(run / "final.weights.h5")
    write_run_config(config_from_dict(dict(model="AdapNet_pp", num_classes=3, height=32, width=64, batch_size=1,
                                           max_iteration=1, learning_rate=1e-3, train_data="unused",
                                           backbone="mobilenet_v2", decoder_filters=16, checkpoint=str(run)),
                                      check_paths=False), run)
    with pytest.raises(CheckpointError, match=r"final\.weights\.h5 holds AdapNet_pp, but the model to fine-tune is "
                                              r"SSMA: an AdapNet\+\+ starts a fusion's experts, with "
                                              r"checkpoint1/checkpoint2"):
        finetune_weights(SSMA(5, backbone="mobilenet_v2", widths=decoder_widths(16)), str(run / "final.weights.h5"))


def test_own_weights_fine_tune_too_and_own_checkpoints_tell_their_class_count(tmp_path, tf1_fixture_dir):
    with overwritten_weights():  # every weight is loaded (strictly) below
        original = AdapNetPP(12)
    load_tf1_checkpoint(original, str(tf1_fixture_dir / "model.ckpt"))
    weights = str(tmp_path / "final.weights.h5")
    original.save_weights(weights)
    prefix = tf.train.Checkpoint(model=original).save(str(tmp_path / "ckpt"))  # as training saves
    assert stored_num_classes(FORMAT_KERAS, weights) == stored_num_classes(FORMAT_TF2, prefix) == 12

    model = AdapNetPP(3)
    report = finetune_weights(model, weights)
    assert (report.source_classes, report.target_classes) == (12, 3)
    assert report.reinitialized == list(CLASS_LAYERS)
    # The copied share is told in weights (before: "loaded 7 layers", the encoder being one).
    fresh = sum(int(np.prod(v.shape)) for name in CLASS_LAYERS for v in model.get_layer(name).weights)
    assert report.loaded_weights == model.count_params() - fresh and report.total_weights == model.count_params()
    assert f"loaded {report.loaded_weights:,} of the {model.count_params():,} weights" in str(report)
    for mine, theirs in zip(model.encoder.get_weights(), original.encoder.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(model.get_layer("refine2_conv2").get_weights()[0],
                                  original.get_layer("refine2_conv2").get_weights()[0])


def test_a_file_without_the_class_kernel_is_an_error(tmp_path):
    path = tmp_path / "other.weights.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((3, 3, 4, 4), np.float32)
    with overwritten_weights():  # refused by the file alone: none of its weights is read or assigned
        model = AdapNetPP(5)
    with pytest.raises(CheckpointError, match="cannot tell the class count"):
        finetune_weights(model, str(path))


def test_finetune_from_excludes_the_other_starting_points(tmp_path):
    with pytest.raises(ConfigError, match="finetune_from"):
        _config(tmp_path, finetune_from="a", intialize="b")


def test_a_released_rates_checkpoint_warns_only_a_network_of_other_rates(tf1_fixture_dir, monkeypatch):
    """The throw-away source network was built with the default rates, so fine-tuning into a
    network of the release's rates warned that it "has the default rates" (helper 126)."""
    import warnings

    from ssma_tf.checkpoints import loading
    from ssma_tf.config import ConfigWarning

    monkeypatch.setattr(loading, "RELEASED_OTHER_RATES", {12: (6, 12, 18)})  # the fixture's class count
    prefix = str(tf1_fixture_dir / "model.ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        finetune_weights(AdapNetPP(5, easpp_rates=(6, 12, 18)), prefix)
    with pytest.warns(ConfigWarning, match="the network it goes into has the default rates 3, 6, 12"):
        finetune_weights(AdapNetPP(5), prefix)


def test_a_tf1_checkpoint_without_a_classifier_is_named(tmp_path):
    """Experts saved without the decoder: "the checkpoint has no classifier", naming no file (helper 126)."""
    from ssma_tf.checkpoints.loading import load_model
    from tests.conftest import shared_path
    from tests.tf1_helpers import random_arrays, read_spec, write_tf1_checkpoint

    spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    experts = {name: value for name, value in random_arrays(spec, seed=4).items()
               if name.startswith(("rgb/", "depth/"))}
    prefix = write_tf1_checkpoint(str(tmp_path / "experts.ckpt"), experts)
    with pytest.raises(CheckpointError, match=rf"^{prefix}: the checkpoint has no classifier \(conv78\)"):
        load_model(prefix)


def test_own_weights_outside_a_run_are_read_into_a_network_built_like_the_target(tmp_path):
    """A `.weights.h5` with no training run beside it was loaded into the default network (ResNet,
    released widths): a MobileNet v2 or narrowed network's own file was refused as another model."""
    source = SSMA(3, backbone="mobilenet_v2", widths=decoder_widths(16), aux_heads=False)
    source([np.zeros((1, 32, 32, 3), np.float32)] * 2)
    weights = str(tmp_path / "mine.weights.h5")
    source.save_weights(weights)
    model = SSMA(5, backbone="mobilenet_v2", widths=decoder_widths(16), aux_heads=True)
    report = finetune_weights(model, weights)
    assert (report.source_classes, report.target_classes) == (3, 5)
    np.testing.assert_array_equal(model.get_layer("refine2_conv2").get_weights()[0],
                                  source.get_layer("refine2_conv2").get_weights()[0])
    # Another backbone than the target's is still refused, naming both.
    with overwritten_weights():  # refused by its backbone: none of its weights is read or assigned
        resnet = SSMA(5)
    with pytest.raises(CheckpointError, match="mobilenet_v2 backbone, but this SSMA is on the adapnet_pp"):
        finetune_weights(resnet, weights)


def test_a_layer_that_does_not_fit_is_named_with_both_shapes(tmp_path):
    source = AdapNetPP(3, input_channels=1)
    source.save(tmp_path / "one_channel.keras")
    with pytest.raises(CheckpointError, match=r"layer encoder does not fit the model.s: its weight input_bn/gamma has "
                                              r"the shape \(1,\) in the checkpoint, \(3,\) here \(another backbone"):
        finetune_weights(AdapNetPP(5), str(tmp_path / "one_channel.keras"))


@pytest.fixture(scope="module")
def late_source(tmp_path_factory):
    """A late fusion of 7 classes and its `.weights.h5` file, built once for the tests that
    fine-tune from it: they read both and change neither."""
    from ssma_tf.models import FusionBaseline

    images = [np.random.default_rng(i).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32) for i in range(2)]
    source = FusionBaseline(7, fusion="late")
    source(images)
    path = tmp_path_factory.mktemp("late") / "late.weights.h5"
    source.save_weights(path)
    return source, path


@pytest.fixture(scope="module")
def ssma_run(tmp_path_factory):
    """A run folder of a narrow MobileNet v2 SSMA of 3 classes (32x64), for `finetune_from`:
    built once, only read."""
    images = [np.zeros((1, 32, 64, 3), np.float32)] * 2
    source = SSMA(3, backbone="mobilenet_v2", widths=decoder_widths(16))
    source(images)
    return _tiny_run(tmp_path_factory.mktemp("runs"), "run2", source, model="SSMA", backbone="mobilenet_v2",
                     decoder_filters=16)


def test_a_baseline_of_whole_experts_fine_tunes_to_another_class_count(late_source):
    """Helper 193: late fusion (and CMoDE, average, maximum, stacking) keeps each expert's
    classifier inside a sub-model, which was copied whole and refused for its class count
    ("layer modality1_expert_view does not fit ... classifier/conv/kernel")."""
    from ssma_tf.models import FusionBaseline

    images = [np.random.default_rng(i).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32) for i in range(2)]
    source, path = late_source
    model = FusionBaseline(5, fusion="late")
    model(images)
    fresh = model.get_layer("modality1_expert_view").get_layer("classifier").get_weights()[0].copy()
    report = finetune_weights(model, str(path))
    assert (report.source_classes, report.target_classes) == (7, 5)
    # The experts' classifiers and last upsampling, and late fusion's C x C mixing, start afresh.
    assert report.reinitialized == ["modality1_expert_view/classifier", "modality2_expert_view/classifier",
                                    "modality1_expert_view/up3", "modality2_expert_view/up3", "late_conv1",
                                    "late_conv2"]
    assert "modality2_expert_view/encoder" in report.loaded and "modality1_expert_view/refine2_conv2" in report.loaded
    for view in ("modality1_expert_view", "modality2_expert_view"):
        for name in ("encoder", "refine2_conv2"):
            for ours, theirs in zip(model.get_layer(view).get_layer(name).get_weights(),
                                    source.get_layer(view).get_layer(name).get_weights(), strict=True):
                np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(model.get_layer("modality1_expert_view").get_layer("classifier").get_weights()[0],
                                  fresh)
    assert "modality1_expert_view/classifier (" in str(report)


def test_a_fusion_of_another_kind_is_named_as_the_config_names_it(tmp_path):
    """Helper 244: an SSMA's .keras file fine-tuned into late fusion failed at a layer "for this
    SSMA" (every fusion model was "SSMA"); now the two networks are named before any layer."""
    from ssma_tf.models import FusionBaseline

    # A narrow MobileNet v2 SSMA: its file is read and its network named as the ResNet one's.
    SSMA(3, backbone="mobilenet_v2", widths=decoder_widths(16)).save(tmp_path / "ssma.keras")
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(tmp_path / 'ssma.keras'))} holds SSMA, but the "
                                              r"model to fine-tune is fusion late$"):
        finetune_weights(FusionBaseline(5, fusion="late"), str(tmp_path / "ssma.keras"))


def _tiny_run(tmp_path, name, network, **values):
    """A run folder of `network` (its final weights and config.yaml), for `finetune_from`."""
    from ssma_tf.config.runs import write_run_config

    run = tmp_path / name
    run.mkdir()
    network.save_weights(run / "final.weights.h5")
    write_run_config(config_from_dict(dict(dict(num_classes=network.num_classes, height=32, width=64, batch_size=1,
                                                max_iteration=1, learning_rate=1e-3, train_data="unused",
                                                checkpoint=str(run)), **values), check_paths=False), run)
    return run


def test_a_fusion_run_over_more_modalities_is_refused_as_finetune_from_naming_the_key(tmp_path):
    """Before: fine-tuning copied the layers the two-modality fusion has from a run over three, and
    said "loaded ... (14 layers ...)" with the third expert dropped; SSMA was refused asking for
    "another backbone, widths or options?" (helper 338)."""
    from ssma_tf.config.runs import write_run_config
    from ssma_tf.models import FusionBaseline

    run = tmp_path / "run3"
    run.mkdir()
    (run / "final.weights.h5").write_bytes(b"")  # never read: the run's config says enough
    write_run_config(config_from_dict(dict(model="SSMA", fusion="average", modalities=["rgb", "depth", "nir"],
                                           num_classes=3, height=32, width=64, batch_size=1, max_iteration=1,
                                           learning_rate=1e-3, train_data="unused", checkpoint=str(run)),
                                      check_paths=False), run)
    model = FusionBaseline(5, fusion="average")  # not built: refused before any weight is read
    config = _config(tmp_path, model="SSMA", fusion="average", finetune_from=str(run))
    with pytest.raises(CheckpointError, match=r"^finetune.config: key 'finetune_from': .*run3 is a run over 3 "
                                              r"modalities \(its config.yaml: modalities \['rgb', 'depth', 'nir'\]\), "
                                              r"but this config fuses 2; give the config the run's modalities list"):
        initialize_model(model, config)
    # SSMA too, before the layers are compared; and a fusion of another kind.
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("fusion: average", "fusion: ssma"))
    ssma = _config(tmp_path, model="SSMA", finetune_from=str(run))
    with pytest.raises(CheckpointError, match=r"^finetune.config: key 'finetune_from': .* is a run over 3 modalities"):
        initialize_model(SSMA(5, backbone="mobilenet_v2"), ssma)
    with pytest.raises(CheckpointError, match=r"key 'finetune_from': .* is a run of fusion: ssma .* says fusion: "
                                              r"average"):
        initialize_model(model, config)


def test_the_same_fusion_over_the_same_modalities_fine_tunes_and_a_failure_names_the_key(tmp_path, ssma_run):
    """The check lets the run that fits through; a source that does not fit is named with the key
    and the config's file (before: the file alone; helper 338)."""
    images = [np.zeros((1, 32, 64, 3), np.float32)] * 2
    run = ssma_run  # the module's 3-class SSMA run
    model = SSMA(5, backbone="mobilenet_v2", widths=decoder_widths(16))
    model(images)
    config = _config(tmp_path, model="SSMA", backbone="mobilenet_v2", decoder_filters=16, finetune_from=str(run))
    (message,) = initialize_model(model, config)
    assert "fine-tuning from 3 to 5 classes" in message
    adapnet = _tiny_run(tmp_path, "rgb", AdapNetPP(3, backbone="mobilenet_v2", widths=decoder_widths(16)),
                        model="AdapNet_pp", backbone="mobilenet_v2", decoder_filters=16)
    config = _config(tmp_path, model="SSMA", backbone="mobilenet_v2", decoder_filters=16, finetune_from=str(adapnet))
    with pytest.raises(CheckpointError, match=r"^finetune.config: key 'finetune_from': .*final.weights.h5 holds "
                                              r"AdapNet_pp, but the model to fine-tune is SSMA"):
        initialize_model(model, config)


def test_backbone_weights_replaced_by_another_start_are_not_read_and_said(tmp_path, ssma_run):
    """Before: the log said backbone_weights started the MobileNet v2 backbone, which finetune_from,
    intialize or the experts' checkpoints then overwrote whole (helper 338)."""
    from ssma_tf.checkpoints.initialize import backbone_weights_replaced_by, unread_backbone_weights_line

    images = [np.zeros((1, 32, 64, 3), np.float32)] * 2
    run = ssma_run  # the module's 3-class SSMA run
    common = dict(model="SSMA", backbone="mobilenet_v2", decoder_filters=16,
                  backbone_weights=str(tmp_path / "imagenet.h5"))
    config = _config(tmp_path, finetune_from=str(run), **common)
    assert backbone_weights_replaced_by(config) == "finetune_from"
    assert unread_backbone_weights_line(config) == (
        f"finetune.config: key 'backbone_weights': {tmp_path / 'imagenet.h5'} is not read: finetune_from starts "
        "every expert's encoder, mobilenet_v2 backbone included")
    model = SSMA(5, backbone="mobilenet_v2", widths=decoder_widths(16))
    model(images)
    messages = initialize_model(model, config)
    assert len(messages) == 1 and "(backbone_weights)" not in messages[0]
    assert backbone_weights_replaced_by(_config(tmp_path, initialize=str(run), **common)) == "intialize"
    experts = _config(tmp_path, checkpoint1="a.weights.h5", checkpoint2="b.weights.h5", **common)
    assert backbone_weights_replaced_by(experts) == "checkpoint1/checkpoint2"
    # The only start: read, and said as before.
    alone = _config(tmp_path, **common)
    assert backbone_weights_replaced_by(alone) is None and unread_backbone_weights_line(alone) is None
    assert initialize_model(model, alone) == [
        f"{tmp_path / 'imagenet.h5'} (backbone_weights): the mobilenet_v2 backbone of every expert"]


def test_fusenets_weights_outside_its_graph_are_said_in_the_report(tmp_path):
    """Before: "loaded 53,731,672 of the 55,801,472 weights" left FuseNet's unused modality-2 eASPP
    and skips (about 2 million weights, in no layer of the fused graph) unexplained (helper 338)."""
    from ssma_tf.models import FusionBaseline

    images = [np.zeros((1, 32, 64, 3), np.float32)] * 2
    source = FusionBaseline(3, fusion="fusenet")
    source(images)
    source.save_weights(tmp_path / "fusenet.weights.h5")
    model = FusionBaseline(5, fusion="fusenet")
    model(images)
    report = finetune_weights(model, str(tmp_path / "fusenet.weights.h5"))
    unused = sum(int(np.prod(v.shape)) for encoder in model.encoders[1:] for name in ("easpp", "skip2", "skip1")
                 for v in encoder.get_layer(name).weights)
    fresh = sum(int(np.prod(v.shape)) for name in ("classifier", "up3") for v in model.get_layer(name).weights)
    assert unused and report.unused_weights == unused
    assert report.loaded_weights + unused + fresh == report.total_weights
    assert f"of the {report.total_weights:,} weights ({unused:,} unused by the fused graph; 19 layers" in str(report)


def test_a_baselines_fresh_class_layers_train_inside_frozen_experts(tmp_path, late_source):
    """Found by a reviewer: fine-tuning a late, CMoDE, average or maximum fusion with frozen
    experts (freeze_experts, the default) re-initialised each expert's classifier and last
    upsampling but left them frozen, random for the whole run; average fusion trained nothing
    (its run below)."""
    from ssma_tf.models import FusionBaseline
    from ssma_tf.training.trainer import _trained_share

    fusion = "late"
    images = [np.zeros((1, 32, 32, 3), np.float32)] * 2
    source = str(late_source[1])  # the module's late fusion of 7 classes
    model = FusionBaseline(4, fusion=fusion)
    model(images)
    report = finetune_weights(model, source)
    fresh = [model.get_layer(name.split("/")[0]).get_layer(name.split("/")[1]) if "/" in name else model.get_layer(name)
             for name in report.reinitialized]
    assert len(fresh) == 6 and all(layer.trainable for layer in fresh)  # the experts' 4, late fusion's 2
    trained = {id(v) for v in model.trainable_variables}
    assert trained == {id(v) for layer in fresh for v in layer.trainable_weights}
    # The experts stay frozen but for those layers, and the run's first line says so.
    assert not any(v.trainable for expert in model.experts for v in expert.encoder.weights)
    config = _config(tmp_path, model="SSMA", fusion=fusion, num_classes=4,
                     finetune_from=source)
    share = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert _trained_share(model, config) == (f", {share:,} of them trained (freeze_experts: the experts are frozen but "
                                             "for their class layers, which finetune_from starts afresh)")


def test_a_lone_fusion_model_file_of_other_modalities_is_refused_as_finetune_from(tmp_path):
    """Found by a reviewer: a 3-modality fusion's .keras file outside its run folder (no
    config.yaml beside it) fine-tuned a 2-modality one without a word, its third expert dropped;
    `intialize` refused it (`check_keras_streams`)."""
    from ssma_tf.models import FusionBaseline

    # Refused from the file's config.json before any weight is read: neither network's initial
    # weights are drawn (`overwritten_weights`), as their values are never looked at.
    with overwritten_weights():
        source = FusionBaseline(3, fusion="average", num_modalities=3)
        model = FusionBaseline(4, fusion="average")
    source([np.zeros((1, 32, 32, 3), np.float32)] * 3)
    source.save(tmp_path / "average3.keras")
    with pytest.raises(CheckpointError, match=rf"^the model file {re.escape(str(tmp_path / 'average3.keras'))} fuses "
                                              r"3 modality streams \(its FusionBaseline\), this FusionBaseline 2: "
                                              r"give the config's modalities list"):
        finetune_weights(model, str(tmp_path / "average3.keras"))


def test_an_average_fusion_fine_tuned_with_frozen_experts_trains_its_fresh_class_layers(tmp_path):
    """The trainer makes them trainable before its optimizer is built, so one step changes them
    (before: average fusion with frozen experts trained no weight at all)."""
    from ssma_tf import training
    from ssma_tf.models import FusionBaseline
    from tests.training_helpers import write_records

    source = FusionBaseline(4, fusion="average")
    source([np.zeros((1, 32, 32, 3), np.float32)] * 2)
    source.save_weights(tmp_path / "source.weights.h5")
    records = write_records(tmp_path / "train.tfrecords", 2, height=32, width=32, num_classes=3, fusion=True)
    config = _config(tmp_path, model="SSMA", fusion="average", num_classes=3, train_data=records, max_iteration=1,
                     finetune_from=str(tmp_path / "source.weights.h5"), seed=0)
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    classifier = trainer.model.experts[0].get_layer("classifier")
    before = classifier.get_weights()[0].copy()
    trainer.run()
    assert not np.array_equal(classifier.get_weights()[0], before)
    assert any("(freeze_experts: the experts are frozen but for their class layers, which finetune_from starts "
               "afresh)" in line for line in lines), lines
