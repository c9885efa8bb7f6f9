"""Batch-norm folding: the folded copy gives the same probabilities and leaves the model alone."""

import numpy as np
import pytest
from keras import layers

from ssma_tf.inference import batch_norm_folding, export
from ssma_tf.keras_compat import walk_layers
from ssma_tf.models import AdapNetPP
from tests.inference.helpers import UNFOLDABLE, randomize_batch_norms

HEIGHT, WIDTH = 64, 128


@pytest.fixture(scope="module")
def adapnet():
    model = AdapNetPP(4)
    randomize_batch_norms(model, seed=3)
    return model


def test_folding_changes_no_probability_and_leaves_the_model_alone(adapnet):
    before = [w.numpy().copy() for w in adapnet.weights]
    folded, count = batch_norm_folding.fold_batch_norms(adapnet)
    norms = [
        layer for layer in walk_layers(folded)
        if isinstance(layer, layers.BatchNormalization)
    ]
    was_folded = [isinstance(layer, batch_norm_folding._FoldedBatchNorm) for layer in norms]
    assert sum(was_folded) == count == 58
    for layer, done in zip(norms, was_folded):
        assert done != (layer.name in UNFOLDABLE), layer.name
    assert export.fold_difference(adapnet, folded, (HEIGHT, WIDTH)) < 1e-5
    for old, new in zip(before, adapnet.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_a_convolution_with_a_bias_is_not_folded(adapnet):
    conv = adapnet.get_layer("up3").conv
    conv.use_bias = True  # pretend: folding would lose this bias
    try:
        with pytest.raises(batch_norm_folding.FoldingError, match="cannot fold"):
            batch_norm_folding._foldable_pairs(adapnet)
    finally:
        conv.use_bias = False


def _logits(model, inputs):
    from ssma_tf.inference.compiled import inference_model

    return inference_model(model)(inputs, training=False)["logits"].numpy()


def test_the_mobilenet_v2_backbones_batch_norms_fold_too():
    """Keras' MobileNet v2 keeps its batch norms in a functional graph, which the folding of the
    project's own layers did not reach: 52 per expert ran unfolded."""
    from ssma_tf.models import SSMA
    from ssma_tf.models.widths import decoder_widths

    model = SSMA(3, backbone="mobilenet_v2", widths=decoder_widths(16))
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 255, (1, HEIGHT, WIDTH, 3)).astype(np.float32) for _ in range(2)]
    model(inputs)
    randomize_batch_norms(model, seed=2)
    own, own_count = batch_norm_folding.fold_batch_norms(model, graphs=False)
    folded, count = batch_norm_folding.fold_batch_norms(model)
    assert count == own_count + 2 * 52
    keras_norms = [layer for layer in walk_layers(folded) if type(layer).__name__ == "_FoldedKerasBatchNorm"]
    assert len(keras_norms) == 104
    expected = _logits(model, inputs)
    for copy in (folded, own):
        np.testing.assert_allclose(_logits(copy, inputs), expected, atol=1e-5)
    # The backbones' own outputs, whose magnitudes (unlike the small logits here) tell a wrong folding.
    image = rng.uniform(-1, 1, (1, HEIGHT, WIDTH, 3)).astype(np.float32)
    backbones = [[layer for layer in walk_layers(m) if layer.name.startswith("mobilenet_v2")] for m in (model, folded)]
    assert len(backbones[0]) == len(backbones[1]) == 2
    for original, copy in zip(*backbones):
        want, got = original([image], training=False), copy([image], training=False)
        for key in want:
            scale = float(np.abs(want[key]).max())
            assert scale > 0.1, key
            np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-4 * scale)


def test_a_functional_graph_folds_only_a_convolution_nothing_else_reads():
    """A depthwise convolution of multiplier 2 folds; a convolution whose output is also a model
    output, or is read twice, does not (its other reader would see the scaled values)."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3))
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False)(image)
    x = layers.BatchNormalization(name="bn_depthwise")(depthwise)
    tapped = layers.Conv2D(4, 1, use_bias=False, name="tapped")(x)
    y = layers.BatchNormalization(name="bn_tapped")(tapped)
    shared = layers.Conv2D(4, 1, use_bias=False, name="shared")(y)
    z = layers.Add()([layers.BatchNormalization(name="bn_shared")(shared), shared])
    graph = keras.Model(image, [z, tapped])
    for variable in graph.weights:
        if "moving" in variable.path or "gamma" in variable.path or "beta" in variable.path:
            variable.assign(np.random.default_rng(len(variable.path)).uniform(0.5, 2.0, variable.shape))
    pairs = batch_norm_folding._graph_pairs(graph)
    assert [bn.name for _, bn, _ in pairs] == ["bn_depthwise"]
    data = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    expected = [t.numpy() for t in graph(data, training=False)]
    batch_norm_folding.fold_pair(*pairs[0])
    for got, want in zip(graph(data, training=False), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4)
