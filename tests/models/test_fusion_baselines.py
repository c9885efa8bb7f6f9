"""The fusion baselines of the paper's Table 17 (ssma_tf.models.fusion_baselines) and `fusion:`."""

import dataclasses

import numpy as np
import pytest

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.config import ConfigError, config_from_dict
from ssma_tf.constants import PARAMETER_FREE_FUSIONS
from ssma_tf.errors import UserInputError
from ssma_tf.models import AdapNetPP, FusionBaseline
from ssma_tf.models.factory import build_model, is_fusion, model_name
from ssma_tf.models.fusion_baselines import BASELINES
from tests.inference.helpers import randomize_batch_norms

NUM_CLASSES = 3
_BUILT = {}


def _baseline(fusion: str, modalities: int = 2) -> FusionBaseline:
    """One model per baseline for the whole module (building two AdapNet++ takes seconds)."""
    if (fusion, modalities) not in _BUILT:
        model = FusionBaseline(NUM_CLASSES, fusion=fusion, num_modalities=modalities)
        randomize_batch_norms(model, seed=3)
        _BUILT[fusion, modalities] = model
    return _BUILT[fusion, modalities]


@pytest.fixture(scope="module")
def expert(tmp_path_factory):
    """A unimodal AdapNet++ of trained-looking batch norms and its weights file, which the experts
    start from (one for the module: each build and save of AdapNet++ takes seconds). Only read."""
    network = AdapNetPP(NUM_CLASSES)
    randomize_batch_norms(network, seed=5)
    weights = str(tmp_path_factory.mktemp("expert") / "expert.weights.h5")
    network.save_weights(weights)
    return network, weights


def _inputs(batch: int = 1, seed: int = 0, modalities: int = 2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 255, (batch, 32, 64, 3)).astype("float32") for _ in range(modalities)]


@pytest.mark.parametrize("fusion, combine", [
    ("average", lambda p1, p2: (p1 + p2) / 2),
    ("maximum", lambda p1, p2: np.maximum(p1, p2) / np.maximum(p1, p2).sum(-1, keepdims=True)),
])
def test_average_and_maximum_combine_the_experts_probabilities(fusion, combine):
    model = _baseline(fusion)
    x = _inputs()
    expected = combine(*(expert(image, training=False).numpy() for expert, image in zip(model.experts, x)))
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, atol=1e-5)
    assert not model.trainable_weights  # frozen experts: nothing to train
    assert isinstance(model.experts[0], AdapNetPP) and model.experts[0].aux_heads  # their checkpoints fit


def test_late_fusion_starts_from_the_mean_of_the_experts_class_scores():
    import keras

    from ssma_tf.layers import ScaledIdentity

    # The late model's convolutions are built with half the identity and no bias ...
    for name in ("late_conv1", "late_conv2"):
        config = _baseline("late").get_layer(name).get_config()
        assert config["kernel_initializer"]["class_name"].endswith("ScaledIdentity")
        assert config["kernel_initializer"]["config"] == {"scale": 0.5}
        assert config["bias_initializer"]["class_name"] == "Zeros"
    # ... which turn two streams' class scores into their mean.
    rng = np.random.default_rng(2)
    scores = [rng.normal(0, 5, (1, 4, 6, NUM_CLASSES)).astype("float32") for _ in range(2)]
    convs = [keras.layers.Conv2D(NUM_CLASSES, 1, kernel_initializer=ScaledIdentity(0.5), bias_initializer="zeros")
             for _ in scores]
    fused = sum(conv(x) for conv, x in zip(convs, scores)).numpy()
    np.testing.assert_allclose(fused, (scores[0] + scores[1]) / 2, rtol=1e-6, atol=1e-6)
    again = keras.layers.Conv2D.from_config(convs[0].get_config())  # the initializer serializes
    assert again.get_config()["kernel_initializer"] == convs[0].get_config()["kernel_initializer"]
    with pytest.raises(ValueError, match="1x1 kernel"):
        ScaledIdentity(0.5)((3, 3, 4, 4))


def _weights(model, *names):
    return {id(w) for name in names for w in model.get_layer(name).trainable_weights}


# Every baseline with weights of its own (average and maximum have none: tested below).
@pytest.mark.parametrize("fusion", [f for f in BASELINES if f not in PARAMETER_FREE_FUSIONS])
def test_each_baseline_segments_two_modalities_and_trains_its_fusion(fusion):
    model = _baseline(fusion)
    assert is_fusion(model) and model_name(model) == "SSMA"
    probabilities = model(_inputs(batch=2), training=False).numpy()
    assert probabilities.shape == (2, 32, 64, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    outputs = model(_inputs(), training=True)
    assert {"softmax", "logits"} <= set(outputs) and outputs["logits"].shape == (1, 32, 64, NUM_CLASSES)
    # What trains with the experts frozen (the default).
    trained = {id(w) for w in model.trainable_variables}
    encoders = {id(w) for encoder in model.encoders for w in encoder.weights}
    trainable_encoders = {id(w) for encoder in model.encoders for w in encoder.trainable_weights}
    if fusion == "late":
        assert trained == _weights(model, "late_conv1", "late_conv2")
    elif fusion == "cmode":
        assert trained == _weights(model, "cmode_gate_conv", "cmode_gate_fc")
    elif fusion == "lfc":
        assert trained >= _weights(model, "lfc_conv1", "lfc_conv2", "up1", "classifier") and not trained & encoders
    elif fusion == "fusenet":
        # End to end, but the modality-2 encoder's eASPP and skips feed nothing: they stay out.
        second = model.encoders[1]
        unused = {id(w) for name in ("easpp", "skip1", "skip2") for w in second.get_layer(name).weights}
        assert unused and not trained & unused
        assert trained == trainable_encoders | _weights(
            model, "up1", "up2", "up3", "classifier", "refine1_conv1", "refine1_conv2", "refine2_conv1", "refine2_conv2")
        assert len(trainable_encoders) > 200  # both encoders' blocks train
    elif fusion == "stacking":
        assert len(model.encoders) == 1 and model.encoders[0].input_channels == 6
        assert trained == {id(w) for w in model.get_layer("stacked_view").trainable_weights}
        assert len(trainable_encoders) > 200 and trainable_encoders <= trained
    else:
        pytest.fail(f"a new baseline: say here what {fusion} trains with its experts frozen")


@pytest.mark.parametrize("fusion", ["average", "late", "cmode"])
def test_with_the_experts_unfrozen_every_trainable_variable_gets_a_gradient(fusion):
    """Helper 118: the whole experts' auxiliary heads, which the fused graph never reads, stayed
    trainable with `freeze_experts: false`; their None gradients made `apply_gradients` across
    replicas fail ("None values not supported") and Keras warn at every `fit` step."""
    import tensorflow as tf

    model = FusionBaseline(NUM_CLASSES, fusion=fusion, freeze_experts=False)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(_inputs(), training=True)["logits"])
    gradients = tape.gradient(loss, model.trainable_variables)
    assert len(model.trainable_variables) > 400  # the experts train
    assert [v.path for v, g in zip(model.trainable_variables, gradients) if g is None] == []


@pytest.mark.parametrize("fusion", ["late", "fusenet"])
def test_a_training_checkpoint_of_a_baseline_is_accepted_for_resuming(fusion, tmp_path):
    """Late, Average, Maximum and CMoDE hold the whole experts in a list attribute, whose auxiliary
    heads (FuseNet: the modality-2 eASPP and skips) the fused graph never runs; TensorFlow's
    checkpoints leave them out. A run could not resume ("lacks 20 of the 780 weights ... it holds
    another model") and its folder could not be evaluated."""
    import tensorflow as tf

    from ssma_tf.checkpoints.reading import check_tf2_shapes

    model = _baseline(fusion)
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    found = check_tf2_shapes(tf.train.Checkpoint(model=model), prefix, model)
    outside = len(model.weights) - found  # weights no checkpoint of the model holds
    assert outside == {"late": 20, "fusenet": 85}[fusion]


def test_the_weights_file_of_a_baseline_run_loads_through_the_runs_config(tmp_path):
    """`ssma-predict/ssma-export --checkpoint RUN/final.weights.h5` built a default SSMA, which
    refused the weights ("holds 780 arrays but this SSMA has 757 weights")."""
    from ssma_tf.config.runs import write_run_config
    from ssma_tf.inference.settings import setup_inference

    model = _baseline("late")
    config = config_from_dict(dict(model="SSMA", fusion="late", num_classes=NUM_CLASSES, checkpoint=str(tmp_path),
                                   train_data="t.tfrecords", batch_size=1, height=32, width=64, max_iteration=1,
                                   learning_rate=1e-3), mode="train", check_paths=False)
    write_run_config(config, tmp_path)
    model.save_weights(str(tmp_path / "final.weights.h5"))
    loaded = setup_inference(checkpoint=tmp_path / "final.weights.h5").model
    assert isinstance(loaded, FusionBaseline) and loaded.fusion == "late"
    x = _inputs(seed=2)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)


def test_a_baseline_round_trips_through_a_keras_file_and_the_inference_copy(tmp_path, monkeypatch):
    import keras

    from ssma_tf.inference.predictor import Predictor
    from ssma_tf.layers.initializers import overwritten_weights

    model = _baseline("cmode")
    x = _inputs(seed=1)
    path = str(tmp_path / "cmode.keras")
    model.save(path)
    with overwritten_weights():  # every weight is loaded from the file
        loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, FusionBaseline) and loaded.get_config() == model.get_config()
    # As AdapNet++ and SSMA, a baseline has the zoo's from_preset (before: "needs the model zoo:
    # import ssma_tf.checkpoints first", after that import too); the zoo releases none.
    from ssma_tf.checkpoints import zoo

    assert FusionBaseline.from_preset.__func__ is zoo._from_preset
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)
    # Under a config of another fusion (before: evaluated under the config's name without a word);
    # the file's model is the one in memory (loading it again costs seconds).
    from ssma_tf.checkpoints import CheckpointError, loading
    from ssma_tf.checkpoints.loading import model_from_config

    monkeypatch.setattr(loading, "load_model", lambda *args: model)
    config = config_from_dict(dict(model="SSMA", num_classes=NUM_CLASSES, checkpoint=path, test_data="t.tfrecords",
                                   batch_size=1, height=32, width=64), source="ssma.config", mode="eval",
                              check_paths=False)
    with pytest.raises(CheckpointError, match=r"cmode\.keras holds a model with fusion cmode, but the config ssma\.config "
                                              r"says fusion: ssma"):
        model_from_config(config)
    # The predictor's optimised copy (folded batch norms, sub-pixel upsampling) gives the same classes.
    predictor = Predictor(model, channel_order="bgr", precision="float32")
    predicted = predictor.predict(*x, probabilities=True)
    np.testing.assert_allclose(predicted.probabilities, model(x, training=False).numpy(), atol=1e-4)
    # A baseline has no SSMA gates: `ssma-predict --attention` said so for AdapNet++ only, and
    # ended here in a traceback (KeyError: 'gate_latent').
    from ssma_tf.inference.pictures import PredictionError, predict_files

    with pytest.raises(PredictionError, match="attention maps need an SSMA model; this is the fusion baseline 'cmode'"):
        predict_files(predictor, [], tmp_path / "pictures", attention=True)
    with pytest.raises(ValueError, match="only SSMA has attention gates"):
        predictor.predict(*x, gates=True)


def test_experts_start_from_unimodal_checkpoints_whole_or_encoder_only(expert, tmp_path):
    import shutil

    from ssma_tf.checkpoints.initialize import initialize_model

    expert, weights = expert
    config = config_from_dict({
        "model": "SSMA", "fusion": "late", "num_classes": NUM_CLASSES, "height": 32, "width": 64, "batch_size": 1,
        "checkpoint": str(tmp_path / "run"), "train_data": weights, "max_iteration": 1, "learning_rate": 1e-3,
        "checkpoint1": weights, "checkpoint2": weights}, check_paths=False)
    for fusion, networks in (("late", "experts"), ("lfc", "encoders")):
        model = _baseline(fusion)
        messages = initialize_model(model, config)
        assert len(messages) == 2
        source = expert if networks == "experts" else expert.encoder
        for network in getattr(model, networks):
            for got, want in zip(network.get_weights(), source.get_weights()):
                np.testing.assert_array_equal(got, want)
    # An expert run of other eASPP rates is another network (before: loaded into the released
    # rates without a word; helper 144).
    run = tmp_path / "expert_run"
    run.mkdir()
    (run / "config.yaml").write_text("model: AdapNet_pp\neaspp_rates: [6, 12, 18]\n")
    other = str(run / "final.weights.h5")
    shutil.copyfile(weights, other)  # the same weights: only the run's rates differ
    with pytest.raises(CheckpointError, match=r"final\.weights\.h5 was trained with easpp_rates \[6, 12, 18\], but the "
                                              r"experts of fusion late have the released rates \[3, 6, 12\]"):
        initialize_model(_baseline("late"), dataclasses.replace(config, checkpoint1=other))
    # A model file without auxiliary heads, or on another backbone, named so (before: a shape error
    # about other layers; 11 Keras warnings and a message cut at its colon).
    for kwargs, said in (({"aux_heads": False}, "holds an AdapNet\\+\\+ without auxiliary heads, which the experts "
                                                "of fusion late have"),
                         ({"backbone": "mobilenet_v2"}, "holds an AdapNet\\+\\+ on the mobilenet_v2 backbone, but the "
                                                        "experts are on the adapnet_pp backbone")):
        path = str(tmp_path / f"{next(iter(kwargs.values()))}.keras")
        AdapNetPP(NUM_CLASSES, **kwargs).save(path)
        with pytest.raises(CheckpointError, match=said):
            initialize_model(_baseline("late"), dataclasses.replace(config, checkpoint1=path))


@pytest.mark.parametrize("fusion", ["cmode", "fusenet", "stacking"])
def test_a_baseline_fuses_three_modalities(fusion, expert, tmp_path):
    """As SSMA, the baselines fuse N modalities (before: a config listing three was refused)."""
    model = _baseline(fusion, modalities=3)
    assert [tensor.name for tensor in model.inputs] == ["modality1", "modality2", "modality3"]
    x = _inputs(batch=2, modalities=3)
    probabilities = model(x, training=False).numpy()
    assert probabilities.shape == (2, 32, 64, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match=r"expects 3 named input"):
        model(x[:2], training=False)
    trained = {id(w) for w in model.trainable_variables}
    if fusion == "cmode":
        # The gate weighs three experts per class; the mixture sums the three streams.
        assert len(model.experts) == 3 and model.get_layer("cmode_gate_fc").units == 3 * NUM_CLASSES
        from ssma_tf.models.fusion_baselines import ClassWiseMixture

        rng = np.random.default_rng(4)
        weights = rng.uniform(0, 1, (2, 1, 1, NUM_CLASSES, 3)).astype("float32")
        scores = [rng.normal(0, 1, (2, 4, 5, NUM_CLASSES)).astype("float32") for _ in range(3)]
        expected = sum(weights[..., i] * scores[i] for i in range(3))
        np.testing.assert_allclose(ClassWiseMixture()([weights] + scores).numpy(), expected, rtol=1e-6)
        # The experts start from a `checkpoints:` list, one whole unimodal network each.
        from ssma_tf.checkpoints.initialize import initialize_model

        expert, path = expert
        config = config_from_dict({
            "model": "SSMA", "fusion": "cmode", "modalities": ["rgb", "depth", "thermal"], "num_classes": NUM_CLASSES,
            "height": 32, "width": 64, "batch_size": 1, "checkpoint": str(tmp_path / "run"), "train_data": path,
            "max_iteration": 1, "learning_rate": 1e-3, "checkpoints": [path, path, path]}, check_paths=False)
        assert len(initialize_model(model, config)) == 3
        for network in model.experts:
            np.testing.assert_array_equal(network.get_weights()[-1], expert.get_weights()[-1])
    elif fusion == "fusenet":
        # Modalities 2 and 3 are added into the modality-1 stream; their eASPP and skips feed nothing.
        assert len(model.encoders) == 3 and len(model.get_layer("fusenet_add1").input) == 3
        unused = {id(w) for encoder in model.encoders[1:] for name in ("easpp", "skip1", "skip2")
                  for w in encoder.get_layer(name).weights}
        assert unused and not trained & unused
    else:
        assert len(model.encoders) == 1 and model.encoders[0].input_channels == 9


def _fusion_config(**values):
    base = {"model": "SSMA", "num_classes": 3, "height": 32, "width": 64, "batch_size": 1, "checkpoint": "run",
            "train_data": "x.tfrecords", "max_iteration": 1, "learning_rate": 1e-3}
    return config_from_dict({**base, **values}, source="fusion.config", check_paths=False)


def test_the_fusion_key_selects_a_baseline_and_bad_values_name_the_key():
    assert _fusion_config().fusion == "ssma" and _fusion_config(fusion="lfc").fusion == "lfc"
    with pytest.raises(ConfigError, match="fusion.*'concat'") as error:
        _fusion_config(fusion="concat")
    assert isinstance(error.value, UserInputError) and "fusion.config" in str(error.value)
    with pytest.raises(ConfigError, match="fusion.*SSMA"):
        _fusion_config(model="AdapNet_pp", fusion="average")
    with pytest.raises(ConfigError, match="checkpoint1.*stacking"):
        _fusion_config(fusion="stacking", checkpoint1="a.weights.h5", checkpoint2="b.weights.h5")
    with pytest.raises(ConfigError, match=r"checkpoints.*fusion: stacking .* no experts to start from checkpoints"):
        _fusion_config(fusion="stacking", modalities=["rgb", "depth", "thermal"], checkpoints=["a", "b", "c"])
    assert _fusion_config(modalities=["rgb", "depth", "thermal"]).num_modalities == 3
    assert _fusion_config(fusion="late", modalities=["rgb", "depth", "thermal"]).num_modalities == 3
    assert "fusion" not in config_from_dict(
        {"model": "AdapNet_pp", "num_classes": 3, "height": 32, "width": 64, "batch_size": 1, "checkpoint": "run",
         "train_data": "x.tfrecords", "max_iteration": 1, "learning_rate": 1e-3}, check_paths=False).to_dict()
    with pytest.raises(ValueError, match="'concat'"):
        FusionBaseline(3, fusion="concat")
    with pytest.raises(ValueError, match=r"^gate_filters must be a positive integer, got 0$"):
        FusionBaseline(3, fusion="cmode", gate_filters=0)


@pytest.mark.parametrize("fusion", ["average", "stacking"])
def test_modalities_of_another_batch_or_size_are_refused(fusion):
    """Helper 87: one image of modality 1 beside two of modality 2 was broadcast to both (late,
    fusenet, average, lfc), and other sizes ended in TensorFlow's `Incompatible shapes`."""
    model = _baseline(fusion)
    one, two = _inputs(batch=1)[0], _inputs(batch=2)[1]
    with pytest.raises(ValueError, match=rf"{fusion} fusion modalities must have the same batch, height and width, "
                                         r"got \[\(1, 32, 64, 3\), \(2, 32, 64, 3\)\]"):
        model([one, two])
    with pytest.raises(ValueError, match="same batch, height and width"):
        model([one, np.zeros((1, 64, 64, 3), "float32")])


def test_the_factory_builds_the_baseline_a_config_names(monkeypatch):
    from ssma_tf.models import factory

    monkeypatch.setattr(factory, "FusionBaseline", lambda *args, **kwargs: (args, kwargs))
    args, kwargs = build_model(_fusion_config(fusion="average", freeze_experts=False))
    assert args == (3,) and kwargs["fusion"] == "average" and kwargs["freeze_experts"] is False
    args, kwargs = build_model(_fusion_config(fusion="late", modalities=["rgb", "depth", "thermal"]))
    assert kwargs["fusion"] == "late" and kwargs["num_modalities"] == 3
