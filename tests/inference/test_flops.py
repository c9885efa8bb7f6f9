"""The FLOPs counter of the pruning report and the benches (`ssma_tf.inference.flops`)."""

import keras
import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from ssma_tf.inference.flops import flops, input_specs, op_flops


class _DeadBranch(keras.Model):
    """A convolution whose output is used and a second one that is computed and dropped."""

    def __init__(self):
        super().__init__()
        self.used = keras.layers.Conv2D(4, 3, padding="same")
        self.dropped = keras.layers.Conv2D(8, 3, padding="same")

    def call(self, x, training=False):
        self.dropped(x)  # traced, not needed for the output
        return keras.ops.softmax(self.used(x))


def _frozen_profiler_count(model, height, width):
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        input_specs(model, height, width))
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def test_a_convolution_counts_two_flops_per_multiply_add_and_dropped_ops_do_not_count():
    inputs = keras.Input((8, 8, 3))
    model = _DeadBranch()
    model(inputs)
    model = keras.Model(inputs, model(inputs))
    by_type = {}
    for op_type, _, value in op_flops(model, 8, 8):
        by_type[op_type] = by_type.get(op_type, 0) + value
    assert by_type["Conv2D"] == 2 * 3 * 3 * 3 * 4 * 8 * 8  # the used convolution only
    assert by_type["BiasAdd"] == 4 * 8 * 8
    # The profiler's count on the frozen graph, which prunes the dropped branch too.
    assert flops(model, 8, 8) == _frozen_profiler_count(model, 8, 8)


def test_one_spec_per_modality_with_its_channels():
    images = [keras.Input((None, None, c)) for c in (3, 1, 3)]
    fused = keras.layers.Concatenate()(images)
    model = keras.Model(images, keras.layers.Conv2D(2, 1)(fused))
    specs = input_specs(model, 6, 10)
    assert [tuple(s.shape) for s in specs] == [(1, 6, 10, 3), (1, 6, 10, 1), (1, 6, 10, 3)]
    assert flops(model, 6, 10) == pytest.approx(2 * 7 * 2 * 60 + 2 * 60)


def test_the_count_logs_no_deprecation_notice_of_tensorflows_registry(monkeypatch):
    """Every `ssma-prune` printed TensorFlow's notice that its own FLOP registry calls a deprecated
    function, with "Instructions for updating". TensorFlow logs it once per process: forgotten here."""
    import logging

    from tensorflow.python.util import deprecation

    monkeypatch.setattr(deprecation, "_PRINTED_WARNING", {})
    caught = []
    handler = logging.Handler()
    handler.emit = caught.append
    tf.get_logger().addHandler(handler)
    try:
        inputs = keras.Input((8, 8, 3))
        assert flops(keras.Model(inputs, keras.layers.Conv2D(2, 3)(keras.layers.ReLU()(inputs))), 8, 8) > 0
    finally:
        tf.get_logger().removeHandler(handler)
    assert [r.getMessage() for r in caught if "deprecated" in r.getMessage()] == []
