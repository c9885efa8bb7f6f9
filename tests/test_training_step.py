"""Tests of `ssma_tf.training.step`, the pieces of one replica's step every trainer shares.

That the supervised trainer's step as a whole equals the released TF1 step is
tests/test_training_step_equivalence.py; that the semi-supervised and adaptation steps do what
their papers say is tests/test_semi_supervised.py and tests/test_adaptation.py. Here: each piece
on its own, against a hand computation.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ssma_tf.config import config_from_dict
from ssma_tf.losses import decayed_kernels, total_loss
from ssma_tf.training import Trainer
from ssma_tf.training.step import add_gradients, apply_gradients, preview_classes, supervised_pass
from tests.training_helpers import TinySegmenter, build_tiny_model, write_records

NUM_CLASSES = 4


def _model():
    model = TinySegmenter(NUM_CLASSES)
    model(np.zeros((1, 16, 16, 3), np.float32))
    return model


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, (2, 16, 16)).astype(np.int32)
    return images, labels


def test_the_supervised_pass_is_the_released_loss_and_its_gradient_per_replica():
    model, (images, labels) = _model(), _batch()
    optimizer = keras.optimizers.Adam()
    decayed = decayed_kernels(model)
    result = supervised_pass(model, optimizer, images, labels, aux_weights=(0.6, 0.5),
                             decayed=decayed, weight_decay=1e-3, replicas=2)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True, return_all=True)
        expected, _ = total_loss(labels, outputs, (0.6, 0.5))
        penalty = 1e-3 * 0.5 * sum(tf.reduce_sum(tf.square(k)) for k in decayed)
        halved = (expected + penalty) / 2
    reference = tape.gradient(halved, model.trainable_variables)
    np.testing.assert_allclose(float(result.data_loss), float(expected), rtol=1e-6)
    np.testing.assert_allclose(float(result.loss), float(expected + penalty), rtol=1e-6)
    np.testing.assert_allclose(float(result.terms["weight_decay"]), float(penalty), rtol=1e-6)
    assert set(result.outputs) >= {"softmax"}
    for got, want in zip(result.gradients, reference):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


def test_without_weight_decay_the_loss_is_the_data_loss_and_no_term_is_added():
    model, (images, labels) = _model(), _batch(1)
    result = supervised_pass(model, keras.optimizers.Adam(), images, labels, aux_weights=(0.6, 0.5),
                             decayed=decayed_kernels(model), weight_decay=0.0, replicas=1)
    assert float(result.loss) == float(result.data_loss)
    assert "weight_decay" not in result.terms


def test_add_gradients_sums_where_both_passes_reach_and_keeps_none_where_neither_does():
    a, b = tf.constant([1.0, 2.0]), tf.constant([10.0, 20.0])
    summed = add_gradients([a, None, a, None], [b, b, None, None])
    np.testing.assert_array_equal(summed[0].numpy(), [11.0, 22.0])
    assert summed[1] is b and summed[2] is a and summed[3] is None


def test_apply_gradients_on_one_replica_is_the_optimizers_apply():
    variable = keras.Variable(np.array([1.0, 1.0], np.float32))
    optimizer = keras.optimizers.SGD(learning_rate=0.5)
    apply_gradients(optimizer, [tf.constant([2.0, -2.0])], [variable], replicas=1)
    np.testing.assert_allclose(variable.numpy(), [0.0, 2.0])


def test_preview_classes_from_ids_one_hot_and_probabilities_alike():
    ids = np.array([[[0, 1], [2, 3]]] * 3, np.int32)  # three images
    one_hot = tf.one_hot(ids, NUM_CLASSES)
    for given in (ids, one_hot, one_hot * 0.7 + 0.05):
        preview = preview_classes(tf.constant(given), count=2)
        assert preview.dtype == tf.uint8 and preview.shape == (2, 2, 2)
        np.testing.assert_array_equal(preview.numpy(), ids[:2])


def test_step_seeds_differ_by_stream_and_step_and_repeat_for_the_same_step(tmp_path):
    write_records(tmp_path / "train.tfrecords", count=2, height=32, width=32, num_classes=NUM_CLASSES)
    config = config_from_dict({
        "model": "AdapNet_pp", "num_classes": NUM_CLASSES, "height": 32, "width": 32,
        "batch_size": 1, "max_iteration": 2, "learning_rate": 1e-3, "seed": 3,
        "train_data": str(tmp_path / "train.tfrecords"), "checkpoint": str(tmp_path / "run"),
    }, source="seed.config", mode="train")
    trainer = Trainer(config, log=lambda line: None, model_fn=lambda: build_tiny_model(config))

    def seeds():
        return trainer.strategy.run(lambda: tf.stack([trainer.step_seed(0), trainer.step_seed(1)])).numpy()

    first = seeds()
    assert not np.array_equal(first[0], first[1])
    trainer.step.assign_add(1)
    later = seeds()
    assert not np.array_equal(first, later)
    trainer.step.assign_add(-1)
    np.testing.assert_array_equal(seeds(), first)
    np.testing.assert_array_equal(first[:, 0], [3 * 16, 3 * 16 + 1])


def test_a_gradient_of_none_is_applied_on_several_replicas_as_on_one():
    """`all_reduce` of a list holding None raised "None values not supported" on two replicas;
    a variable no loss reaches (a custom model, a second pass) keeps its None (helper 127)."""
    from tests.training_helpers import run_on_two_logical_cpus

    result = run_on_two_logical_cpus("""
import keras
from ssma_tf.keras_compat import ExternalGradientAggregation
from ssma_tf.training.step import apply_gradients

class SGD(ExternalGradientAggregation, keras.optimizers.SGD):
    aggregate_gradients = False  # as the trainers' optimizers: apply_gradients sums

with strategy.scope():
    a, b = keras.Variable(np.zeros(3, np.float32)), keras.Variable(np.zeros(2, np.float32))
    optimizer = SGD(1.0)
    optimizer.build([a, b])

@tf.function
def step():
    strategy.run(lambda: apply_gradients(optimizer, [tf.ones(3), None], [a, b], 2))

step()
print("a", a.numpy().tolist(), "b", b.numpy().tolist())
""")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "a [-2.0, -2.0, -2.0] b [0.0, 0.0]" in result.stdout
