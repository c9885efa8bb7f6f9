"""AdapNet++: parameter count, stage shapes, outputs, input checks, serialisation."""

import re

import numpy as np
import pytest

import keras
from ssma_tf.models import AdapNetPP
from ssma_tf.models.encoder import PAPER_BLOCK3_DILATIONS, PAPER_BLOCK4_DILATIONS


@pytest.fixture(scope="module")
def model():
    return AdapNetPP(12)


def image(batch=2, height=64, width=128, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def test_parameter_count_equals_the_released_graph(model):
    # 30,204,492 with moving statistics, 30,151,558 without (the released graph, ../shared/spec).
    assert model.count_params() == 30_204_492
    moving = sum(int(np.prod(w.shape)) for w in model.weights if "moving" in w.name)
    assert model.count_params() - moving == 30_151_558
    assert len(model.weights) == 388


def test_stage_shapes(model):
    features = model.encoder(image(), training=False)
    assert tuple(features["block4"].shape) == (2, 4, 8, 2048)
    assert tuple(features["easpp"].shape) == (2, 4, 8, 256)
    assert tuple(features["skip1"].shape) == (2, 16, 32, 24)
    assert tuple(features["skip2"].shape) == (2, 8, 16, 24)
    assert tuple(model.get_layer("up1").output.shape) == (None, None, None, 256)


def test_call_returns_softmax_and_training_outputs_include_aux_heads(model):
    probabilities = np.asarray(model(image(), training=False))
    assert probabilities.shape == (2, 64, 128, 12)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    outputs = model(image(), training=True, return_all=True)
    assert set(outputs) == {"softmax", "logits", "aux_up2", "aux_up1"}
    for name in ("aux_up2", "aux_up1"):
        assert tuple(outputs[name].shape) == (2, 64, 128, 12)
        np.testing.assert_allclose(np.asarray(outputs[name]).sum(-1), 1.0, atol=1e-5)


def test_dropout_acts_only_while_training(model):
    x = image(batch=1)
    a, b = np.asarray(model(x, training=False)), np.asarray(model(x, training=False))
    np.testing.assert_array_equal(a, b)
    unit = model.encoder.get_layer("block4_unit3")
    assert unit.dropout_rate == pytest.approx(0.7)


@pytest.mark.parametrize("shape", [(1, 60, 128, 3), (1, 64, 120, 3)])
def test_sizes_not_multiple_of_16_are_rejected(model, shape):
    with pytest.raises(ValueError, match="multiple of 16"):
        model(np.zeros(shape, "float32"))


def test_other_channel_counts_are_named(model):
    # Before: Keras' "expected axis -1 of input shape to have value 3" from the first batch norm.
    with pytest.raises(ValueError, match=r"AdapNetPP input must have 3 channels, got 1 \(shape \(1, 32, 64, 1\)\); "
                                         r"repeat a single-channel image \(grey depth, NIR\) to three channels"):
        model(np.zeros((1, 32, 64, 1), "float32"))
    with pytest.raises(ValueError, match=r"expected shape=\(None, None, None, 3\), found shape=\(1, 32, 64, 4\)"):
        model(np.zeros((1, 32, 64, 4), "float32"))  # Keras' own check of the input, clear enough


def test_input_channels_sets_the_channels_the_model_takes():
    """The call's check read the default 3: `input_channels=1` built, then refused 1-channel images."""
    grey = AdapNetPP(3, input_channels=1)
    assert grey(np.zeros((1, 32, 64, 1), "float32")).shape == (1, 32, 64, 3)
    with pytest.raises(ValueError, match=r"AdapNetPP input must have 1 channels, got 3 \(shape \(1, 32, 64, 3\)\)"):
        grey(np.zeros((1, 32, 64, 3), "float32"))


def test_a_dict_of_the_input_name_is_the_image(model):
    """`{'image': x}`, by the input's name as Keras names inputs: an AttributeError before."""
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 64, 3)).astype("float32")
    np.testing.assert_array_equal(model({"image": image}), model(image))
    # A dataset's element with its label: named, not only listed (helper 70).
    with pytest.raises(ValueError, match=re.escape("AdapNetPP takes a dict with the key 'image' (or the tensor alone), "
                                                   "got the keys ['image', 'label']: 'label' is not an input (labels "
                                                   "go to the loss, not the model)")):
        model({"image": image, "label": np.zeros((1, 32, 64), "int32")})
    # A list of one, as code that feeds every network a list of modality batches gives it
    # (helper 118: an AttributeError of the list).
    np.testing.assert_array_equal(model([image]), model(image))
    with pytest.raises(ValueError, match=r"expects 1 named input\(s\).*received 2 input tensors"):
        model([image, image])  # Keras' own check, before `call`


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="num_classes"):
        AdapNetPP(1)
    # NumPy's integers are counts too (refused before); True is not one.
    from ssma_tf.models.encoder import check_num_classes

    assert type(check_num_classes(np.int64(5))) is int and check_num_classes(np.int64(5)) == 5
    from ssma_tf.models.encoder import check_num_modalities

    assert type(check_num_modalities(np.int64(3))) is int and check_num_modalities(np.int64(3)) == 3
    with pytest.raises(ValueError, match=r"num_modalities must be an integer >= 2, got np.int32\(1\)"):
        check_num_modalities(np.int32(1))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        check_num_classes(True)
    with pytest.raises(ValueError, match="block4_dilations"):
        AdapNetPP(4, block4_dilations=[(2, 2)])
    with pytest.raises(ValueError, match="dropout_rate"):
        AdapNetPP(4, dropout_rate=1.5)
    # Helper 98: cut, misread or accepted without a word, or a traceback of another error.
    from ssma_tf.models import SSMA
    from ssma_tf.models.fusion_baselines import FusionBaseline

    refused = [
        (dict(block3_dilations=[(1, 2.7)] * 4), "block3_dilations must be 4 pairs of integer dilation rates"),  # was 2
        (dict(block3_dilations=["12"] * 4), "block3_dilations must be 4 pairs of integer dilation rates"),  # was 1, 2
        (dict(input_channels=0), "input_channels must be an integer >= 1, got 0"),  # ZeroDivisionError
        (dict(input_channels="3"), "input_channels must be an integer >= 1, got '3'"),
        (dict(dropout_rate=None), r"dropout_rate must be a number in \[0, 1\), got None"),  # TypeError
        (dict(easpp_rates=3), "EASPP dilation_rates must be positive integers, got 3"),  # TypeError
        (dict(aux_heads="no"), "aux_heads must be True or False, got 'no'"),  # built the heads
    ]
    for kwargs, message in refused:
        with pytest.raises(ValueError, match=message):
            AdapNetPP(4, **kwargs)
    with pytest.raises(ValueError, match="freeze_experts must be True or False, got 'no'"):
        SSMA(4, freeze_experts="no")
    with pytest.raises(ValueError, match="aux_heads must be True or False, got 0"):
        FusionBaseline(4, "late", aux_heads=0)
    assert AdapNetPP(4, aux_heads=np.bool_(False)).aux_heads is False


def test_paper_variant_is_one_argument_away():
    paper = AdapNetPP(4, paper_dilations=True, dropout_rate=0.5, aux_heads=False)
    assert paper.block3_dilations == PAPER_BLOCK3_DILATIONS
    assert paper.block4_dilations == PAPER_BLOCK4_DILATIONS
    assert paper.encoder.get_layer("block3_unit6").conv2.dilation_rates == (1, 16)
    assert paper.encoder.get_layer("block4_unit3").conv2.dilation_rates == (2, 16)
    # Same weights, different graph: the output changes with the dilations.
    released = AdapNetPP(4, aux_heads=False)
    released.set_weights(paper.get_weights())
    x = image(batch=1)
    assert not np.allclose(np.asarray(paper(x)), np.asarray(released(x)))


def test_config_and_keras_round_trips(tmp_path):
    model = AdapNetPP(5, dropout_rate=0.5)
    clone = AdapNetPP.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = tmp_path / "adapnet_pp.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, AdapNetPP)
    x = image(batch=1, seed=3)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_mixed_precision_survives_a_keras_round_trip(tmp_path):
    model = AdapNetPP(3, aux_heads=False, dtype="mixed_float16")
    assert model.get_config()["dtype"]["config"]["name"] == "mixed_float16"
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for network in (model, loaded):
        assert network.dtype_policy.name == "mixed_float16"
        assert network.encoder.get_layer("conv1").compute_dtype == "float16"
        assert network.get_layer("classifier").conv.variable_dtype == "float32"
        # Every encoder layer computes in the policy (before: the block outputs' ReLUs in float32,
        # casting block4 up and back; helper 174).
        assert {layer.compute_dtype for layer in network.encoder.layers if layer.name != "image"} == {"float16"}
    x = image(batch=1, height=32, width=64, seed=4)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
