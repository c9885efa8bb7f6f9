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
