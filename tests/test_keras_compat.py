"""The Keras internals behind `ssma_tf.keras_compat` still work as the project relies on them.

Each test fails when a Keras release changes what the adapter uses, before a model quietly
folds nothing, trains its encoders at the wrong rate or all-reduces gradients twice.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from ssma_tf import keras_compat
from ssma_tf.layers import ConvBN


def _nested_model():
    """A functional model inside a functional model, with a custom layer that owns sub-layers."""
    inner_input = keras.Input((8, 8, 3))
    inner = keras.Model(inner_input, ConvBN(4, 3, name="stem")(inner_input), name="inner")
    outer_input = keras.Input((8, 8, 3))
    return keras.Model(outer_input, layers.ReLU(name="relu")(inner(outer_input)), name="outer")


def test_walk_layers_reaches_the_sub_layers_of_nested_and_custom_layers():
    model = _nested_model()
    names = [layer.name for layer in keras_compat.walk_layers(model)]
    assert "outer" not in names
    for name in ("inner", "stem", "relu"):
        assert names.count(name) == 1, names
    stem = model.get_layer("inner").get_layer("stem")
    walked = keras_compat.walk_layers(model)
    # The convolution and batch norm live only as attributes of `ConvBN`.
    assert any(layer is stem.conv for layer in walked) and any(layer is stem.bn for layer in walked)


def test_variable_key_is_one_key_per_variable_across_its_forms():
    optimizer = keras.optimizers.Adam()
    first, second = keras.Variable(np.zeros(2, np.float32)), keras.Variable(np.zeros(2, np.float32))
    key = keras_compat.variable_key(optimizer, first)
    assert key == keras_compat.variable_key(optimizer, first.value)  # the TensorFlow variable
    assert key != keras_compat.variable_key(optimizer, second)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        mirrored = keras.Variable(np.zeros(2, np.float32))
        replicated = keras.optimizers.Adam()
    copies = strategy.experimental_local_results(mirrored.value)
    assert {keras_compat.variable_key(replicated, c) for c in copies} == {
        keras_compat.variable_key(replicated, mirrored)
    }


def test_adam_slots_are_the_moments_adam_updates():
    variable = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer = keras.optimizers.Adam(learning_rate=0.1, beta_1=0.9, beta_2=0.999)
    gradient = np.array([0.5, -4.0], np.float32)
    optimizer.apply_gradients([(tf.constant(gradient), variable)])
    momentum, velocity = keras_compat.adam_slots(optimizer, variable)
    np.testing.assert_allclose(momentum.numpy(), 0.1 * gradient, rtol=1e-6)
    np.testing.assert_allclose(velocity.numpy(), 0.001 * gradient**2, rtol=1e-6)
    assert keras_compat.adam_slots(optimizer, variable.value)[0] is momentum  # the TF variable too


class _CountingSGD(keras_compat.ExternalGradientAggregation, keras.optimizers.SGD):
    """SGD that counts how often Keras calls its gradient all-reduce hook."""

    calls = 0

    def _all_reduce_sum_gradients(self, grads_and_vars):
        type(self).calls += 1
        return super()._all_reduce_sum_gradients(grads_and_vars)


@pytest.mark.parametrize("aggregate", [True, False])
def test_keras_calls_the_gradient_aggregation_hook(aggregate):
    keras_compat.check_gradient_aggregation_hook()
    _CountingSGD.calls = 0
    optimizer = _CountingSGD(learning_rate=1.0)
    optimizer.aggregate_gradients = aggregate
    variable = keras.Variable(np.ones(2, np.float32))
    optimizer.apply([np.full(2, 0.5, np.float32)], [variable])
    assert _CountingSGD.calls == 1  # without the hook being called, skipping it would do nothing
    np.testing.assert_allclose(variable.numpy(), [0.5, 0.5])


class _Doubled(layers.ReLU):
    def call(self, inputs):
        return super().call(inputs) * 2.0


def test_a_swapped_class_changes_what_the_built_graph_computes():
    model = _nested_model()
    relu = model.get_layer("relu")
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype(np.float32)
    before = np.asarray(model(x))
    weights = [w.numpy().copy() for w in model.weights]
    keras_compat.swap_class(relu, _Doubled)
    assert type(relu) is _Doubled
    np.testing.assert_allclose(np.asarray(model(x)), 2.0 * before, rtol=1e-6)
    for old, new in zip(weights, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_swap_class_refuses_classes_that_change_more_than_call():
    model = _nested_model()

    class Unrelated(layers.ReLU.__mro__[1]):  # a sibling, not a subclass of ReLU
        def call(self, inputs):
            return inputs

    class WithState(layers.ReLU):
        def build(self, input_shape):
            self.extra = self.add_weight(shape=(1,))

    class OtherSignature(layers.ReLU):
        def call(self, inputs, scale):
            return inputs * scale

    for bad, message in ((Unrelated, "derive directly"), (WithState, "only override call"),
                         (OtherSignature, "must take")):
        with pytest.raises(ValueError, match=message):
            keras_compat.swap_class(model.get_layer("relu"), bad)


def test_a_missing_internal_is_named():
    class Bare:
        pass

    with pytest.raises(keras_compat.KerasInternalsError, match="_flatten_layers"):
        keras_compat.walk_layers(Bare())


def test_scale_loss_for_replicas_is_keras_own_scaling():
    # Outside a strategy nothing changes; on two replicas (tests/test_keras_training.py) it halves.
    value = tf.constant(3.0)
    assert float(keras_compat.scale_loss_for_replicas(value)) == 3.0
    from keras.src.losses import loss as keras_loss

    assert float(keras_loss.scale_loss_for_distribution(value)) == 3.0


def test_an_additional_loss_is_reduced_as_compute_loss_reduces_it():
    """A model whose compute_loss calls its loss directly adds the add_loss terms as Keras would."""
    inputs = keras.Input((4,))
    outputs = layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.5))(inputs)
    model = keras.Model(inputs, outputs)
    model(np.ones((1, 4), np.float32))
    (term,) = model.losses
    reduced = keras_compat.additional_loss(model, term)
    assert float(reduced) == pytest.approx(float(tf.reduce_sum(term)))
    # Keras' own compute_loss with no loss compiled is the sum of the same terms.
    model.compile(loss=None)
    assert float(model.compute_loss(y_pred=model(np.ones((1, 4), np.float32)))) == pytest.approx(float(reduced))


def test_graph_producers_and_consumers_follow_a_functional_graph():
    image = keras.Input((8, 8, 3))
    conv = layers.Conv2D(4, 1, name="conv")
    x = conv(image)
    bn = layers.BatchNormalization(name="bn")
    y = bn(x)
    added = layers.Add(name="add")
    added([y, x])
    keras.Model(image, y)
    assert keras_compat.graph_producers(bn) == [conv]
    assert keras_compat.graph_producers(added) == [bn, conv]
    assert keras_compat.graph_consumer_count(conv) == 2 and keras_compat.graph_consumer_count(bn) == 1
    # A layer called twice has no single producer; one never called in a graph has none.
    conv(layers.Input((8, 8, 3)))
    assert keras_compat.graph_producers(conv) is None
    assert keras_compat.graph_producers(layers.Dense(2)) is None


def test_outermost_call_tells_a_layer_called_inside_another_from_one_called_itself():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, inputs):
            seen.append(keras_compat.outermost_call(self))
            return inputs

    probe = Probe()
    probe(np.zeros((1, 2), np.float32))
    keras.Sequential([keras.Input((2,)), probe])(np.zeros((1, 2), np.float32))
    assert seen[0] is True and seen[-1] is False
    assert keras_compat.outermost_call(probe)  # outside any call
