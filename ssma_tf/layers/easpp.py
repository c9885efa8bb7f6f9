"""Efficient atrous spatial pyramid pooling (eASPP), Valada et al. 2019, Section 3.2."""

import numbers

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
        widths: output channels of single convolutions by their name above (`conv1x1`,
            `branch2_atrous1`, `projection`, ...), for a pruned eASPP (Section 3.5); the others
            keep `filters` or `branch_filters`.
    """

    def __init__(self, filters: int = 256, branch_filters: int = 64, dilation_rates=(3, 6, 12), widths=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not hasattr(dilation_rates, "__iter__") or isinstance(dilation_rates, str):
            raise ValueError(f"EASPP dilation_rates must be positive integers, got {dilation_rates!r}")
        dilation_rates = tuple(dilation_rates)
        if not dilation_rates or any(not isinstance(d, numbers.Integral) or isinstance(d, bool) or d < 1
                                     for d in dilation_rates):
            raise ValueError(f"EASPP dilation_rates must be positive integers, got {dilation_rates!r}")
        dilation_rates = tuple(int(d) for d in dilation_rates)  # NumPy's too (a config's array)
        for key, value in (("filters", filters), ("branch_filters", branch_filters)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EASPP {key} must be a positive integer, got {value!r}")
        self.filters = filters
        self.branch_filters = branch_filters
        self.dilation_rates = dilation_rates
        names = ["conv1x1", "image_pooling", "projection"] + [
            f"branch{i}_{part}" for i in range(1, len(dilation_rates) + 1)
            for part in ("reduce", "atrous1", "atrous2", "expand")
        ]
        self.widths = dict(widths or {})
        for key, value in self.widths.items():
            if key not in names:
                raise ValueError(f"EASPP widths: no convolution named {key!r} (one of {names})")
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EASPP widths[{key!r}] must be a positive integer, got {value!r}")

        def width(name: str, default: int) -> int:
            return self.widths.get(name, default)

        policy = self.dtype_policy
        self.conv1x1 = ConvBN(width("conv1x1", filters), 1, name="conv1x1", dtype=policy)
        self.branches = []
        for i, rate in enumerate(dilation_rates, start=1):
            self.branches.append([
                ConvBN(width(f"branch{i}_reduce", branch_filters), 1, name=f"branch{i}_reduce", dtype=policy),
                ConvBN(width(f"branch{i}_atrous1", branch_filters), 3, dilation_rate=rate, name=f"branch{i}_atrous1",
                       dtype=policy),
                ConvBN(width(f"branch{i}_atrous2", branch_filters), 3, dilation_rate=rate, name=f"branch{i}_atrous2",
                       dtype=policy),
                ConvBN(width(f"branch{i}_expand", filters), 1, name=f"branch{i}_expand", dtype=policy),
            ])
        # Keras tracks the layers of a nested list for `.weights.h5` files but not for
        # `tf.train.Checkpoint`, which would leave the branches out of every TF2 checkpoint (a
        # resumed run would restart them from random weights). Private attributes are tracked by
        # `tf.train.Checkpoint` and skipped by the `.weights.h5` writer, so those files keep their
        # layout (tests/layers/test_easpp.py checks both).
        for branch in self.branches:
            for layer in branch:
                setattr(self, f"_checkpointed_{layer.name}", layer)
        self.image_pooling = ConvBN(width("image_pooling", filters), 1, name="image_pooling", dtype=policy)
        self.projection = ConvBN(width("projection", filters), 1, activation=None, name="projection", dtype=policy)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.conv1x1.build(input_shape)
        concatenated = self.conv1x1.filters + self.image_pooling.filters
        for branch in self.branches:
            shape = input_shape
            for layer in branch:
                layer.build(shape)
                shape = input_shape[:-1] + (layer.filters,)
            concatenated += branch[-1].filters
        self.image_pooling.build((input_shape[0], 1, 1, input_shape[-1]))
        self.projection.build(input_shape[:-1] + (concatenated,))
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
        outputs.append(pooled * ops.ones_like(outputs[0][..., :1]))
        return self.projection(ops.concatenate(outputs, axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.projection.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, branch_filters=self.branch_filters,
                      dilation_rates=list(self.dilation_rates), widths=dict(self.widths) or None)
        return config
