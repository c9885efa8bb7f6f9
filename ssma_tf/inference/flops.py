"""FLOPs of one inference: the pruning report's and the benches' single counter.

The model's inference call (`training=False`) is traced at a static input shape, and the TF
profiler's registered `flops` statistic is summed over every op the outputs depend on (a
convolution counts 2·k_h·k_w·C_in per output element, a transposed convolution the same per input
element, element-wise ops that have a registered statistic (an addition) one per element, ReLU
and resizing, which have none, nothing; a multiply-add is 2). Ops traced but not needed for the
outputs (an auxiliary head a layer computes and the model drops) do not count.

This is the count the TF profiler gives on the graph with its variables frozen into constants
(`convert_variables_to_constants_v2`, which prunes the same unused ops), to the FLOP, without
copying every weight into the graph: about ten times faster on AdapNet++.
"""

from __future__ import annotations

import logging
from typing import Iterator

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from ssma_tf.keras_compat import check_tensorflow_backend


def input_specs(model: keras.Model, height: int, width: int):
    """Batch-1 float32 specs of a model's images at height × width: one, or a list of one per modality."""
    specs = [tf.TensorSpec((1, height, width, int(x.shape[-1])), tf.float32) for x in model.inputs]
    return specs if len(specs) > 1 else specs[0]


def inference_function(model: keras.Model, height: int, width: int):
    """The model's batch-1 inference call (`training=False`) traced at height × width: the graph
    `op_flops` counts, which can also be run (the pruning report times it).

    Raises:
        UserInputError: Keras runs on another backend than TensorFlow (the TF profiler counts
            a TensorFlow graph; on JAX the trace failed 25 frames deep, helper 302).
    """
    check_tensorflow_backend("inference_function")
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(input_specs(model, height, width))


class _DropDeprecationNotice(logging.Filter):
    """TensorFlow's FLOP registry calls a function it deprecated itself and logs a notice of it
    (`tensor_shape_from_node_def_name ... is deprecated`, with "Instructions for updating"): it
    says nothing to a user of the count and came with every `ssma-prune`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "tensor_shape_from_node_def_name" not in record.getMessage()


def op_flops(model: keras.Model, height: int, width: int, concrete=None) -> Iterator[tuple[str, str, float]]:
    """(op type, op name, FLOPs) of every op with FLOPs in one inference at height × width.

    `concrete`: the model's `inference_function` at that size, when it is traced already.

    Raises:
        UserInputError: Keras runs on another backend than TensorFlow.
    """
    check_tensorflow_backend("op_flops")
    if concrete is None:
        concrete = inference_function(model, height, width)
    graph = concrete.graph
    seen, pending = set(), [tensor.op for tensor in concrete.outputs]
    counted = []
    notice = _DropDeprecationNotice()
    tf.get_logger().addFilter(notice)
    try:
        while pending:
            op = pending.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            pending.extend(tensor.op for tensor in op.inputs)
            pending.extend(op.control_inputs)
            try:
                value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
            except ValueError:  # no FLOPs registered for this op type (reads, reshapes, constants)
                continue
            if value:
                counted.append((op.type, op.name, float(value)))
    finally:
        tf.get_logger().removeFilter(notice)
    return iter(counted)


def flops(model: keras.Model, height: int, width: int, concrete=None) -> float:
    """FLOPs of one batch-1 inference at height × width (`concrete`: as `op_flops` takes it).

    Raises:
        UserInputError: Keras runs on another backend than TensorFlow.
    """
    check_tensorflow_backend("flops")
    return sum(value for _, _, value in op_flops(model, height, width, concrete))
