"""Efficient atrous spatial pyramid pooling (eASPP), Valada et al. 2019, Section 3.2."""

import keras
from keras import layers, ops

from ssma_tf import SERIALIZATION_PACKAGE
from ssma_tf.layers.conv_bn import ConvBN


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class EASPP(layers.Layer):
    """eASPP: a 1×1 branch, cascaded atrous branches with bottlenecks, and image pooling.

    Branches, concatenated in this order and projected by a 1×1 conv + BN (no ReLU):
      - `conv1x1`: CBR(1×1, filters);
      - for each rate r: `branch{i}_reduce` CBR(1×1, branch_filters) → `branch{i}_atrous1` and
        `branch{i}_atrous2` CBR(3×3, dilation r, branch_filters) → `branch{i}_expand`
        CBR(1×1, filters);
      - `image_pooling`: global mean → CBR(1×1, filters) → spread back over the feature map.

    Args:
        filters: output channels of every branch and of the projection (256).
        branch_filters: bottleneck width of the atrous branches (64).
        dilation_rates: rates of the atrous branches (3, 6, 12).
    """

    def __init__(self, filters: int = 256, branch_filters: int = 64, dilation_rates=(3, 6, 12), **kwargs):
        super().__init__(**kwargs)
        dilation_rates = tuple(dilation_rates)
        if not dilation_rates or any(not isinstance(d, int) or d < 1 for d in dilation_rates):
            raise ValueError(f"EASPP dilation_rates must be positive integers, got {dilation_rates!r}")
        for key, value in (("filters", filters), ("branch_filters", branch_filters)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EASPP {key} must be a positive integer, got {value!r}")
        self.filters = filters
        self.branch_filters = branch_filters
        self.dilation_rates = dilation_rates
        policy = self.dtype_policy
        self.conv1x1 = ConvBN(filters, 1, name="conv1x1", dtype=policy)
        self.branches = []
        for i, rate in enumerate(dilation_rates, start=1):
            self.branches.append([
                ConvBN(branch_filters, 1, name=f"branch{i}_reduce", dtype=policy),
                ConvBN(branch_filters, 3, dilation_rate=rate, name=f"branch{i}_atrous1", dtype=policy),
                ConvBN(branch_filters, 3, dilation_rate=rate, name=f"branch{i}_atrous2", dtype=policy),
                ConvBN(filters, 1, name=f"branch{i}_expand", dtype=policy),
            ])
        # Keras tracks the layers of a nested list for `.weights.h5` files but not for
        # `tf.train.Checkpoint`, which would leave the branches out of every TF2 checkpoint (a
        # resumed run would restart them from random weights). Private attributes are tracked by
        # `tf.train.Checkpoint` and skipped by the `.weights.h5` writer, so those files keep their
        # layout (tests/layers/test_easpp.py checks both).
        for branch in self.branches:
            for layer in branch:
                setattr(self, f"_checkpointed_{layer.name}", layer)
        self.image_pooling = ConvBN(filters, 1, name="image_pooling", dtype=policy)
        self.projection = ConvBN(filters, 1, activation=None, name="projection", dtype=policy)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.conv1x1.build(input_shape)
        for reduce, atrous1, atrous2, expand in self.branches:
            reduce.build(input_shape)
            mid = input_shape[:-1] + (self.branch_filters,)
            atrous1.build(mid)
            atrous2.build(mid)
            expand.build(mid)
        self.image_pooling.build((input_shape[0], 1, 1, input_shape[-1]))
        self.projection.build(input_shape[:-1] + (self.filters * (len(self.branches) + 2),))
        self.built = True

    def call(self, inputs, training=None):
        outputs = [self.conv1x1(inputs, training=training)]
        for branch in self.branches:
            x = inputs
            for layer in branch:
                x = layer(x, training=training)
            outputs.append(x)
        pooled = self.image_pooling(ops.mean(inputs, axis=(1, 2), keepdims=True), training=training)
        # The released graph resizes the 1×1 map bilinearly to the feature size: that is a broadcast.
        outputs.append(pooled * ops.ones_like(outputs[0]))
        return self.projection(ops.concatenate(outputs, axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, branch_filters=self.branch_filters,
                      dilation_rates=list(self.dilation_rates))
        return config
