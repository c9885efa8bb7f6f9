"""Graph rewrites that need no TensorFlow: sub-pixel upsampling, the inference copy, precision.

Measured on a 2-core AVX2 CPU (docs/benchmarks.md), a forward pass of AdapNet++ or SSMA is
about 90 % convolutions. Two rewrites make the same computation cheaper there without changing
its result beyond float32 rounding (a few 1e-5 on the probabilities of the networks the tests
and benchmarks use; an SSMA trained for only 3 steps, its batch-norm statistics far from settled,
differed by 2.7e-4 with the same class map, and its folding failed the export's 1e-4 check,
found by a review on 2026-12-02); this module holds
the one that runs on any Keras backend, batch-norm folding is in
`ssma_tf.inference.batch_norm_folding` (it needs TensorFlow's fused bias add):

- **Sub-pixel transposed convolutions**: the decoder's three upsamplings (4×4 stride 2, 4×4
  stride 2, 8×8 stride 4, TF `SAME`) are transposed convolutions with kernel = 2 × stride. Such a
  layer equals one ordinary 2×2 convolution producing stride² × C channels (one group per output
  phase) followed by a pixel shuffle; TensorFlow's CPU `Conv2D` kernel runs that 2–3× faster than
  its `Conv2DBackpropInput`, with the same multiply-adds.
- **The inference copy** (`copy_for_inference`): the model rebuilt from its config without the
  auxiliary heads, under the dtype policy of the chosen precision, sharing no variables.

Both rewrites keep float32 arithmetic, and on a CPU a float32 forward pass is bound by the
multiply-adds (about 150 GFLOP per 384×768 AdapNet++ image): the float32 path runs as fast as the
original graph, no faster. `precision="bfloat16"` computes the convolutions in bfloat16 with
float32 weights, batch-norm folding done in float64 first, and float32 logits and softmax. On
processors with bfloat16 matrix units (Intel AMX; NVIDIA Ampere and later) that is several times
faster. With AVX512-BF16 alone it depends on the processor: 1.64× slower than float32 on an
Intel Xeon, about 0.55× on an AMD EPYC (docs/bench/deploy_cpu.json); without either, bfloat16 is
emulated and slower. The probabilities then differ from float32 by up to a few 1e-2 and a
small share of near-tie pixels change class. `precision="auto"`, which `Predictor`,
`resolve_precision` and the commands' `--precision` take (not the rewrites here, which are given
a settled precision), times both on the machine (`ssma_tf.inference.precision`; README, Benchmarks).
`ssma_tf.inference.compiled` puts the rewrites together into the compiled predict function.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from ssma_tf.inference.precision import choose_precision
from ssma_tf.keras_compat import swap_class, walk_layers
from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.models.widths import is_masked_residual


# ---------------------------------------------------------------------------------------------
# Sub-pixel form of a transposed convolution.


def subpixel_supported(kernel_size: int, strides: int, padding: str = "same") -> bool:
    """True when a transposed convolution has the sub-pixel form below (k = 2·s, SAME)."""
    return padding.lower() == "same" and strides > 1 and kernel_size == 2 * strides


def subpixel_kernel(kernel, strides: int):
    """Rearranges a transposed-convolution kernel [k, k, C_out, C_in] (k = 2·s) for `subpixel_conv2d_transpose`.

    With TF `SAME` padding the transposed convolution pads h = s // 2 before the first output.
    Output row s·m + p (p the phase) then receives exactly two input rows, m + q − 1 and m + q,
    through kernel taps s + r and r, where p + h = s·q + r. On the input padded with one zero row
    on each side, a VALID 2×2 convolution at row i reads original rows i − 1 and i, so phase p is
    that convolution at row m + q, with row a ∈ {0, 1} of its 2×2 kernel being tap s + r (a = 0)
    or r (a = 1). Storing phase p in channel group r (not p) makes the pixel shuffle put it at
    row s·(m + q) + r = s·m + p + h: every phase lands shifted by the same h, which one crop
    removes. Rows and columns alike; groups ordered (r_y, r_x) as `depth_to_space` expects.

    Returns:
        A [2, 2, C_in, s·s·C_out] kernel.
    """
    size, _, c_out, c_in = kernel.shape
    if size != 2 * strides:
        raise ValueError(f"the sub-pixel form needs kernel_size == 2 * strides, got {size} and {strides}")
    taps = np.empty((2, 2, strides, strides), np.int32)  # [a, b, r_y, r_x] → flat tap index
    for rest_y in range(strides):
        for rest_x in range(strides):
            for a in range(2):
                for b in range(2):
                    tap_y = strides + rest_y if a == 0 else rest_y
                    tap_x = strides + rest_x if b == 0 else rest_x
                    taps[a, b, rest_y, rest_x] = tap_y * size + tap_x
    flat = ops.reshape(kernel, (size * size, c_out, c_in))
    gathered = ops.take(flat, taps.reshape(-1), axis=0)  # [2·2·s·s, C_out, C_in]
    gathered = ops.reshape(gathered, (2, 2, strides * strides, c_out, c_in))
    gathered = ops.transpose(gathered, (0, 1, 4, 2, 3))  # [2, 2, C_in, s·s, C_out]
    return ops.reshape(gathered, (2, 2, c_in, strides * strides * c_out))


def subpixel_conv2d_transpose(inputs, kernel, strides: int):
    """`conv2d_transpose(inputs, kernel, strides, padding="SAME")` for k = 2·s, as conv + pixel shuffle.

    Args:
        inputs: (B, H, W, C_in).
        kernel: [k, k, C_out, C_in], the Keras/TF layout of a transposed-convolution kernel.
        strides: s (the same along both axes).

    Returns:
        (B, s·H, s·W, C_out), equal to the transposed convolution up to float rounding.
    """
    shape = ops.shape(inputs)
    height, width = shape[1], shape[2]
    padded = ops.pad(inputs, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = ops.conv(padded, subpixel_kernel(kernel, strides), strides=1, padding="valid")  # (B, H+1, W+1, s·s·C)
    y = ops.depth_to_space(y, strides)  # (B, s·(H+1), s·(W+1), C), every phase shifted by s // 2
    shift = strides // 2
    return y[:, shift:shift + height * strides, shift:shift + width * strides, :]


class _SubpixelConv2DTranspose(layers.Conv2DTranspose):
    """A `Conv2DTranspose` (no bias, k = 2·s, SAME) computed in the sub-pixel form."""

    def call(self, inputs):
        kernel = ops.cast(self.kernel, self.compute_dtype)
        return subpixel_conv2d_transpose(inputs, kernel, self.strides[0])


def use_subpixel_upsampling(model: keras.Model) -> int:
    """Switches every eligible transposed convolution of `model`, in place, to the sub-pixel form.

    Same variables, same outputs (to float rounding), same gradients; the model stays trainable.
    Returns how many layers were switched.
    """
    count = 0
    for layer in walk_layers(model):
        if (type(layer) is layers.Conv2DTranspose and not layer.use_bias
                and layer.data_format == "channels_last" and layer.strides[0] == layer.strides[1]
                and layer.kernel_size[0] == layer.kernel_size[1] and tuple(layer.dilation_rate) == (1, 1)
                and subpixel_supported(layer.kernel_size[0], layer.strides[0], layer.padding)):
            # Same variables, same place in the graph; only the computation changes.
            swap_class(layer, _SubpixelConv2DTranspose)
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Precision and the inference copy.

PRECISIONS = ("float32", "bfloat16")
# The dtype policy of the inference copy for each precision: bfloat16 arithmetic keeps float32
# weights (folded in float64, cast once per call) and float32 logits and softmax.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def check_precision(precision: str) -> str:
    """Returns `precision` if it is one of `PRECISIONS`, else raises a ValueError naming it."""
    if precision not in PRECISIONS:
        # "auto" is settled first (helper 246: the message did not say where it is taken).
        settled = ("; 'auto' is settled by Predictor, resolve_precision or a command's --precision, before a "
                   "rewrite" if precision == "auto" else "")
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}{settled}")
    return precision


def resolve_precision(precision: str) -> str:
    """"auto" → the precision `ssma_tf.inference.precision.choose_precision` settles on (timed on
    this machine, or a GPU's compute capability); any other value is checked and returned."""
    if precision == "auto":
        return choose_precision("auto").precision
    return check_precision(precision)


def copy_for_inference(model: keras.Model, dtype: str = "float32", dense_residuals: bool = True) -> keras.Model:
    """A copy without auxiliary heads under the dtype policy `dtype`, sharing no variables (any backend).

    With `dense_residuals` (the default), a pruned network's masked residual units (Section 3.5:
    the last convolution computes only some of the unit's channels, scattered back to their
    indices before the shortcut is added) become units whose last convolution computes every
    channel, with zero filters at the pruned ones: the same outputs exactly, without the gather
    that places the channels. That gather along the channel axis cost more than the filters it
    saved: the demo's SSMA pruned by 22 % of its weights ran at 1.05× the unpruned network's time
    with it and 0.95× without (384×768, 2-core AMD EPYC; docs/pruning.md).

    Batch-norm folding (`ssma_tf.inference.batch_norm_folding`) starts from it too; it lives here
    because this module does not import TensorFlow, so the sub-pixel rewrite also serves JAX.
    """
    config = dict(model.get_config(), dtype=dtype)
    if "aux_heads" in config:
        config["aux_heads"] = False
    widths = config.get("widths") or {}
    masked = {name for name, width in widths.items() if is_masked_residual(name, width)} if dense_residuals else set()
    if masked:
        config["widths"] = {name: width for name, width in widths.items() if name not in masked} or None
    with overwritten_weights():  # each layer's weights are set below
        clone = type(model).from_config(config)
    # Kernels of masked units' last convolutions → the channels their columns go to.
    scatter = {}
    if masked:
        from ssma_tf.layers.residual_unit import ResidualUnit

        for layer in walk_layers(model):
            if isinstance(layer, ResidualUnit) and layer.residual_indices is not None:
                scatter[id(layer.conv3.kernel)] = list(layer.residual_indices)
    # Top-level layer names are unique in a functional model (each encoder is one layer).
    for layer in clone.layers:
        if not layer.weights:
            continue
        source = model.get_layer(layer.name)
        if not scatter:
            layer.set_weights(source.get_weights())
            continue
        # The same constructor with other widths creates the same weights in the same order.
        for old, new in zip(source.weights, layer.weights):
            value = ops.convert_to_numpy(old)
            if id(old) in scatter:
                full = np.zeros(tuple(new.shape), value.dtype)
                full[..., scatter[id(old)]] = value
                value = full
            new.assign(value)
    return clone
