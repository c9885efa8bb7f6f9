"""Expert backbones (ssma_tf.models.backbones): MobileNet v2 behind the encoder interface."""

import warnings

import keras
import numpy as np
import pytest

from ssma_tf.config import ConfigError, config_from_dict
from ssma_tf.errors import UserInputError
from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.models.backbones import BackboneWeightsError, PyramidEncoder, build_encoder, mobilenet_v2_pyramid
from tests.models.helpers import tiny_pyramid

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def mobilenet_expert():
    return AdapNetPP(NUM_CLASSES, backbone="mobilenet_v2")


def _image(seed=0, batch=1):
    return np.random.default_rng(seed).uniform(0, 255, (batch, 32, 64, 3)).astype("float32")


def test_mobilenet_v2_encoder_gives_the_adapnet_interface_at_strides_4_8_16(mobilenet_expert):
    encoder = mobilenet_expert.encoder
    assert isinstance(encoder, PyramidEncoder)
    features = encoder(_image(), training=False)
    shapes = {name: tuple(features[name].shape) for name in ("block4", "easpp", "skip2", "skip1")}
    assert shapes == {"block4": (1, 2, 4, 1280), "easpp": (1, 2, 4, 256), "skip2": (1, 4, 8, 24),
                      "skip1": (1, 8, 16, 24)}
    outputs = mobilenet_expert(_image(batch=2), return_all=True)
    assert outputs["softmax"].shape == (2, 32, 64, NUM_CLASSES) and {"aux_up1", "aux_up2"} <= set(outputs)
    # Far lighter than the ResNet-50 expert (30.2 M).
    assert mobilenet_expert.count_params() < 10_000_000
    # Every batch norm with the released momentum (Keras' MobileNetV2 has 0.999).
    momenta = {layer.momentum for layer in encoder.get_layer("mobilenet_v2").layers
              if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.99}


def test_mobilenet_v2_expert_round_trips_through_a_keras_file(mobilenet_expert, tmp_path):
    x = _image(seed=1)
    path = str(tmp_path / "expert.keras")
    mobilenet_expert.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.get_config()["backbone"] == "mobilenet_v2"
    np.testing.assert_allclose(loaded(x, training=False), mobilenet_expert(x, training=False), atol=1e-5)


def test_imagenet_weights_come_from_a_file_and_fit_the_stride_16_backbone(tmp_path):
    base = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None)
    path = str(tmp_path / "mobilenet_v2_no_top.weights.h5")
    base.save_weights(path)
    pyramid = mobilenet_v2_pyramid(weights=path)
    for name in ("Conv1", "block_13_depthwise", "block_16_depthwise", "Conv_1"):
        for got, want in zip(pyramid.get_layer(name).get_weights(), base.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert pyramid.get_layer("block_13_depthwise").strides == (1, 1)
    assert pyramid.get_layer("block_16_depthwise").dilation_rate == (2, 2)
    with pytest.raises(BackboneWeightsError, match="missing.h5: no such file") as error:
        mobilenet_v2_pyramid(weights=str(tmp_path / "missing.h5"))
    assert isinstance(error.value, UserInputError)
    # Weights of another network: the one error, without Keras' warning for each layer before it.
    other = str(tmp_path / "other.weights.h5")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BackboneWeightsError, match="does not hold MobileNet v2") as error:
            mobilenet_v2_pyramid(weights=other)
    assert [str(w.message) for w in caught] == []
    # One line, without Keras' list of every layer it could not match (5.8 kB in a walkthrough).
    assert "\n" not in str(error.value) and "List of objects" not in str(error.value) and len(str(error.value)) < 400
    # A cut .keras, damaged HDF5 metadata, a name Keras does not read (helper 123: tracebacks, and
    # "does not hold MobileNet v2" for a file that may well hold it).
    cut = tmp_path / "cut.keras"
    cut.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(BackboneWeightsError, match=r"cut\.keras: cannot read the file \(truncated, damaged or another "
                                                   r"kind of file\)"):
        mobilenet_v2_pyramid(weights=str(cut))
    damaged = tmp_path / "damaged.weights.h5"
    data = bytearray(open(other, "rb").read())
    data[800:1600] = np.random.default_rng(0).integers(0, 256, 800, dtype=np.uint8).tobytes()
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackboneWeightsError, match=r"damaged\.weights\.h5: "):
        mobilenet_v2_pyramid(weights=str(damaged))
    renamed = tmp_path / "mobilenet.bin"
    renamed.write_bytes(open(other, "rb").read())
    with pytest.raises(BackboneWeightsError, match=r"mobilenet\.bin: Keras reads MobileNet v2 weights from \.h5, "
                                                   r"\.weights\.h5 or \.keras files only"):
        mobilenet_v2_pyramid(weights=str(renamed))
    # Through a config, the key and the file that gave it are named.
    from ssma_tf.models.factory import build_model

    config = config_from_dict({
        "model": "AdapNet_pp", "backbone": "mobilenet_v2", "backbone_weights": other, "num_classes": 3,
        "height": 32, "width": 32, "batch_size": 1, "max_iteration": 1, "learning_rate": 1e-3,
        "checkpoint": str(tmp_path / "run"), "train_data": other}, source="mb.config", check_paths=False)
    with pytest.raises(BackboneWeightsError, match=r"^mb.config: key 'backbone_weights': .*other.weights.h5: the file "
                                                   r"does not hold MobileNet v2"):
        build_model(config)


def test_ssma_experts_on_mobilenet_start_from_unimodal_mobilenet_weights(mobilenet_expert, tmp_path):
    from ssma_tf.checkpoints.initialize import initialize_model

    weights = str(tmp_path / "expert.weights.h5")
    mobilenet_expert.save_weights(weights)
    config = config_from_dict({
        "model": "SSMA", "backbone": "mobilenet_v2", "num_classes": NUM_CLASSES, "height": 32, "width": 64,
        "batch_size": 1, "checkpoint": str(tmp_path / "run"), "train_data": weights, "max_iteration": 1,
        "learning_rate": 1e-3, "checkpoint1": weights, "checkpoint2": weights}, check_paths=False)
    model = SSMA(NUM_CLASSES, backbone="mobilenet_v2")
    assert len(initialize_model(model, config)) == 2
    # ImageNet weights, loaded as the model is built, are said with the other sources (before: nothing);
    # where the experts' checkpoints replace them they are not read, and said so (helper 338: said as
    # loaded, then overwritten).
    from ssma_tf.checkpoints.initialize import unread_backbone_weights_line

    imagenet = config_from_dict(dict(config.to_dict(), backbone_weights=weights), check_paths=False)
    said = initialize_model(model, imagenet)
    assert len(said) == 2 and not any("backbone_weights" in line for line in said), said
    assert unread_backbone_weights_line(imagenet) == (
        f"key 'backbone_weights': {weights} is not read: checkpoint1/checkpoint2 starts every expert's encoder, "
        "mobilenet_v2 backbone included")
    alone = config_from_dict(dict(imagenet.to_dict(), checkpoint1=None, checkpoint2=None), check_paths=False)
    assert initialize_model(model, alone)[0] == (f"{weights} (backbone_weights): the mobilenet_v2 backbone of "
                                                 "every expert")
    assert unread_backbone_weights_line(alone) is None
    for encoder in model.encoders:
        for got, want in zip(encoder.get_weights(), mobilenet_expert.encoder.get_weights()):
            np.testing.assert_array_equal(got, want)
    assert model([_image(), _image(1)], training=False).shape == (1, 32, 64, NUM_CLASSES)
    assert model.get_config()["backbone"] == "mobilenet_v2"


def test_bad_backbones_are_named():
    with pytest.raises(ValueError, match="'resnet18'"):
        build_encoder("resnet18")
    with pytest.raises(ValueError, match="backbone_weights"):
        build_encoder("adapnet_pp", "weights.h5")
    base = {"model": "SSMA", "num_classes": 3, "height": 32, "width": 64, "batch_size": 1, "checkpoint": "run",
            "train_data": "x.tfrecords", "max_iteration": 1, "learning_rate": 1e-3}
    with pytest.raises(ConfigError, match="backbone.*'resnet18'"):
        config_from_dict(dict(base, backbone="resnet18"), check_paths=False)
    with pytest.raises(ConfigError, match="backbone_weights.*mobilenet_v2"):
        config_from_dict(dict(base, backbone_weights="w.h5"), check_paths=False)
    with pytest.raises(ConfigError, match="backbone.*adapnet_pp"):
        config_from_dict(dict(base, backbone="mobilenet_v2", fusion="late"), check_paths=False)


def test_decoder_filters_narrow_the_decoder_of_the_model_a_config_builds(tmp_path):
    from ssma_tf.checkpoints.initialize import initialize_model
    from ssma_tf.models.factory import build_model
    from ssma_tf.models.widths import DECODER_LAYERS

    base = {"num_classes": NUM_CLASSES, "height": 32, "width": 64, "batch_size": 1, "checkpoint": "run",
            "train_data": "x.tfrecords", "max_iteration": 1, "learning_rate": 1e-3, "backbone": "mobilenet_v2"}
    fusion = build_model(config_from_dict(dict(base, model="SSMA", decoder_filters=32), check_paths=False))
    assert fusion.get_layer("refine2_conv2").conv.filters == 32 and fusion.get_layer("up1").filters == 32
    assert fusion([_image(1), _image(2)], training=False).shape == (1, 32, 64, NUM_CLASSES)
    assert fusion.count_params() < 9_000_000  # 12.6 M with the released 256-channel decoder
    # Its experts start from unimodal weights files of the same decoder width.
    expert = AdapNetPP(NUM_CLASSES, backbone="mobilenet_v2", widths={name: 32 for name in DECODER_LAYERS})
    weights = str(tmp_path / "expert.weights.h5")
    expert.save_weights(weights)
    initialize_model(fusion, config_from_dict(dict(base, model="SSMA", decoder_filters=32, checkpoint1=weights,
                                                   checkpoint2=weights), check_paths=False))
    for got, want in zip(fusion.encoders[1].get_weights(), expert.encoder.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ConfigError, match="decoder_filters.*fusion: late"):
        config_from_dict(dict(base, model="SSMA", backbone="adapnet_pp", fusion="late", decoder_filters=32),
                         check_paths=False)
    with pytest.raises(ConfigError, match="decoder_filters"):
        config_from_dict(dict(base, model="SSMA", decoder_filters=0), check_paths=False)


def test_a_registered_backbone_builds_trains_saves_and_loads_its_weights(tmp_path, monkeypatch):
    """The way docs/fusion.md gives for a new backbone. Its weights were refused as "on the
    adapnet_pp backbone" (a 7×7 kernel); an unregistered name did not say it must be registered."""
    from ssma_tf.checkpoints.loading import load_weights
    from ssma_tf.models import backbones

    with pytest.raises(ValueError, match=r"'mobilenet_v2' is a built-in backbone; register yours under another name"):
        backbones.register_backbone("mobilenet_v2", tiny_pyramid)
    monkeypatch.setitem(backbones._BACKBONES, "tiny", tiny_pyramid)
    model = AdapNetPP(NUM_CLASSES, backbone="tiny")
    image = _image()
    expected = model(image)
    model.save_weights(tmp_path / "tiny.weights.h5")
    model.save(tmp_path / "tiny.keras")
    again = AdapNetPP(NUM_CLASSES, backbone="tiny")
    load_weights(again, str(tmp_path / "tiny.weights.h5"))
    np.testing.assert_allclose(again(image), expected, atol=1e-6)
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "tiny.keras")(image), expected, atol=1e-6)
    fused = SSMA(NUM_CLASSES, backbone="tiny")
    assert fused([image, image]).shape == (1, 32, 64, NUM_CLASSES)
    monkeypatch.delitem(backbones._BACKBONES, "tiny")
    with pytest.raises(ValueError, match=r"got 'tiny' \(a backbone added with ssma_tf\.models\.backbones\."
                                         r"register_backbone is registered again in each process"):
        AdapNetPP(NUM_CLASSES, backbone="tiny")
    # A builder whose "stride16" map is at stride 32 built, and the first call failed in
    # TensorFlow's concatenation, naming neither the backbone nor the map (helper 181).

    def stride32(weights=None, dtype=None):
        pyramid = tiny_pyramid(weights, dtype)
        outputs = dict(pyramid.output)
        outputs["stride16"] = keras.layers.MaxPooling2D(2)(outputs["stride16"])
        return keras.Model(pyramid.input, outputs)

    monkeypatch.setitem(backbones._BACKBONES, "stride32", stride32)
    with pytest.raises(ValueError, match=r"backbone 'stride32': its 'stride16' map is \(2, 2\) for a 64x64 image, "
                                         r"not \(4, 4\) \(stride 16\)"):
        AdapNetPP(NUM_CLASSES, backbone="stride32")
    # One backbone per expert is not a thing (before: "unhashable type: 'list'").
    with pytest.raises(ValueError, match=r"backbone must be the name of one backbone, got \['adapnet_pp', 'tiny'\]"):
        SSMA(NUM_CLASSES, backbone=["adapnet_pp", "tiny"])
    monkeypatch.setattr(backbones, "BACKBONES", backbones.BACKBONES + ("efficientnet_b0",))
    with pytest.raises(ValueError, match=r"backbone 'efficientnet_b0' is listed in ssma_tf\.constants\.BACKBONES "
                                         r"but has no builder"):
        AdapNetPP(NUM_CLASSES, backbone="efficientnet_b0")
