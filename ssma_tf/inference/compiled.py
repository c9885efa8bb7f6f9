"""The inference copy of a model with every rewrite applied, and its compiled predict function.

`optimize_for_inference` puts together the rewrites of `ssma_tf.inference.rewrites` (the
inference copy, sub-pixel upsampling, precision) and `ssma_tf.inference.batch_norm_folding`;
`compiled_predict` wraps the result in a `tf.function` that is traced once per input shape (and
never again for repeated calls with that shape), `jit_compile=True` adds XLA; `inference_model`
is the float32 view of the outputs inference needs, which `Predictor` and the export serve.

    from ssma_tf.inference.compiled import compiled_predict
    predict = compiled_predict(model)          # model: AdapNetPP or SSMA with its weights
    probabilities = predict(images)            # or predict([modality1, modality2])
"""

from __future__ import annotations

from typing import Any, Callable

import keras

from ssma_tf.inference.batch_norm_folding import fold_batch_norms
from ssma_tf.inference.rewrites import POLICIES, check_precision, copy_for_inference, use_subpixel_upsampling
from ssma_tf.keras_compat import check_tensorflow_backend

# SSMA blocks whose gates `return_all` exposes, from the deepest: (output key, picture name).
GATES = (("gate_latent", "latent"), ("gate_skip2", "skip2"), ("gate_skip1", "skip1"))


def optimize_for_inference(model: keras.Model, *, fold_batch_norm: bool = True,
                           subpixel_upsampling: bool = True, precision: str = "float32",
                           dense_residuals: bool = True) -> keras.Model:
    """An inference-only copy of `model` (no auxiliary heads) with the rewrites above.

    The copy shares nothing with `model`: later changes to the model's weights do not reach it.

    Args:
        model: an `AdapNetPP` or `SSMA` with its weights.
        fold_batch_norm: fold batch norms into the preceding convolutions (TensorFlow backend only).
        subpixel_upsampling: compute the decoder's transposed convolutions in sub-pixel form (any
            backend).
        precision: "float32" (the original's arithmetic) or "bfloat16" (see
            `ssma_tf.inference.rewrites`).
        dense_residuals: a pruned network's masked residual units compute every channel, with
            zero filters at the pruned ones, instead of scattering their channels back (the same
            outputs; `ssma_tf.inference.rewrites.copy_for_inference`).

    Returns:
        A model with the same inputs whose `call(x, training=False)` returns the float32 softmax;
        its attributes `folded_batch_norms`, `subpixel_layers` and `precision` say what was
        rewritten.

    Raises:
        ValueError: an unknown precision, or folding asked for on another backend.
    """
    dtype = POLICIES[check_precision(precision)]
    if fold_batch_norm:
        if keras.backend.backend() != "tensorflow":
            # The advice names what then runs: the copy itself, not compiled_predict, which read it
            # as its own and then failed in its tf.function (helper 302).
            raise ValueError("fold_batch_norm needs the TensorFlow backend (the folded layer adds a tf.nn.bias_add); "
                             f"on {keras.backend.backend()}, give fold_batch_norm=False and call the copy (or a "
                             "jax.jit of it): compiled_predict, Predictor and the exports run on TensorFlow only")
        copy, folded = fold_batch_norms(model, dtype, dense_residuals)
    else:
        copy, folded = copy_for_inference(model, dtype, dense_residuals), 0
    copy.folded_batch_norms = folded
    copy.subpixel_layers = use_subpixel_upsampling(copy) if subpixel_upsampling else 0
    copy.precision = precision
    return copy


def compiled_predict(model: keras.Model, *, jit_compile: bool = False, fold_batch_norm: bool = True,
                     subpixel_upsampling: bool = True, precision: str = "float32",
                     return_all: bool = False, dense_residuals: bool = True) -> Callable[[Any], Any]:
    """The fast compiled inference function of a model.

    Args:
        model: an `AdapNetPP` or `SSMA` with its weights (an inference copy is made once, here;
            later weight changes of `model` are not seen — build a new function after training).
        jit_compile: compile with XLA.
        fold_batch_norm, subpixel_upsampling, precision, dense_residuals: see `optimize_for_inference`.
        return_all: return the model's dict of outputs (`softmax`, `logits` and SSMA's gates)
            instead of the softmax.

    Returns:
        A `tf.function` taking a (B, H, W, 3) float batch (AdapNet++) or a list of two (SSMA),
        H and W multiples of 16, and returning the float32 softmax (B, H, W, C). It is traced once
        per distinct input shape; `experimental_get_tracing_count()` counts the traces.

    Raises:
        UserInputError: Keras runs on another backend (a tf.function cannot trace its model).
    """
    check_tensorflow_backend("compiled_predict")
    # Imported here: the rest of this module serves other Keras backends without TensorFlow.
    import tensorflow as tf

    fast = optimize_for_inference(model, fold_batch_norm=fold_batch_norm, subpixel_upsampling=subpixel_upsampling,
                                  precision=precision, dense_residuals=dense_residuals)

    def predict(inputs):
        return fast(inputs, training=False, return_all=return_all)

    function = tf.function(predict, jit_compile=jit_compile)
    function.model = fast  # keeps the copy alive with the function, and lets callers inspect it
    return function


def inference_model(model: keras.Model, optimize: bool = False, precision: str = "float32") -> keras.Model:
    """The part of a model inference needs, in float32: softmax, logits and SSMA's gates.

    The auxiliary heads only serve the training loss, so they are left out. Without `optimize` the result is a
    functional view that shares the model's layers and weights; a mixed-precision model is first
    copied into float32, so that predictions and exports do not depend on how the model was trained.

    Args:
        model: an `AdapNetPP` or `SSMA`.
        optimize: build the view on `optimize_for_inference(model)`, a copy with batch norms folded
            into the convolutions (on the TensorFlow backend; on another, unfolded) and the
            decoder's transposed convolutions in sub-pixel form: the same outputs to float32
            rounding, faster (README, Benchmarks). The copy is made here, once: later changes of
            the model's weights do not reach it.
        precision: with `optimize`, "float32" or "bfloat16" (`ssma_tf.inference.rewrites`: faster on
            hardware with bfloat16 units, probabilities within a few 1e-2 of float32).

    Returns:
        A `keras.Model` with the same inputs that returns a dict: `softmax`, `logits` and, for
        SSMA, `gate_latent`, `gate_skip2`, `gate_skip1`.
    """
    if check_precision(precision) != "float32" and not optimize:
        raise ValueError(f"precision={precision!r} needs optimize=True (the inference copy)")
    if optimize:
        # Folding adds a tf.nn.bias_add: on JAX the copy keeps its batch norms (before: "fold_batch_norm
        # needs the TensorFlow backend", a flag this function does not take; helper 197).
        model = optimize_for_inference(model, precision=precision,
                                       fold_batch_norm=keras.backend.backend() == "tensorflow")
    elif model.dtype_policy.name != "float32":
        model = copy_for_inference(model, "float32")
    keys = ["softmax", "logits"] + [key for key, _ in GATES if key in model.output]
    return keras.Model(model.inputs, {key: model.output[key] for key in keys}, name=f"{model.name}_inference")
