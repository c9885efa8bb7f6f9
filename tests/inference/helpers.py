"""Helpers shared by the prediction and export tests: realistic batch norms and image files."""

import os

import numpy as np
from PIL import Image

# Batch norms that do not follow a convolution (docs/architecture.md): the input one, the
# pre-activations and the block outputs.
UNFOLDABLE = ("input_bn", "preact_bn", "block1_out_bn", "block2_out_bn", "block4_out_bn")


def randomize_batch_norms(model, seed: int = 0) -> None:
    """Gives every batch norm random statistics, like a trained network's (and the TF1 fixture's).

    With the initial statistics (mean 0, variance 1) folding would change nothing and the input
    batch norm would pass 0..255 values on, so that activations grow through the network and
    float32 rounding dominates any comparison. Here the input batch norm normalises 0..255
    images and the others have moving means near 0 and variances in 0.5..2.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        path, shape = variable.path, tuple(variable.shape)
        first = "input_bn/" in path
        if path.endswith("moving_mean"):
            value = rng.uniform(100, 150, shape) if first else rng.normal(0, 0.1, shape)
        elif path.endswith("moving_variance"):
            value = rng.uniform(2000, 5000, shape) if first else rng.uniform(0.5, 2.0, shape)
        elif path.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif path.endswith("beta"):
            value = rng.normal(0, 0.1, shape)
        else:
            continue
        variable.assign(value.astype(np.float32))


def image_scale_batch_norms(model, seed: int = 0) -> None:
    """Random batch-norm parameters with the input batch norms set to image statistics.

    Every other batch norm gets a scale and variance in 0.5..1.5 and a mean and shift of spread
    0.2, so that folding has real scales and shifts to fold while activations stay of order one;
    the last upsampling's scale of 0.1 keeps the logits at a few units, so that a comparison of
    softmaxes at 1e-4 is not dominated by saturation.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "moving_variance" in variable.path or "gamma" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        elif "moving_mean" in variable.path or "beta" in variable.path:
            variable.assign(rng.normal(0, 0.2, variable.shape).astype("float32"))
    model.get_layer("up3").bn.gamma.assign(np.full(model.num_classes, 0.1, "float32"))
    for encoder in model.encoders:
        encoder.get_layer("input_bn").moving_mean.assign(np.full(3, 127.0, "float32"))
        encoder.get_layer("input_bn").moving_variance.assign(np.full(3, 75.0**2, "float32"))


def write_rgb(path, array: np.ndarray) -> str:
    """Writes an (H, W, 3) uint8 array as an RGB PNG (or (H, W) as grey) and returns the path."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return os.fspath(path)


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB image (smooth, so that resizing it changes little)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (max(2, height // 8), max(2, width // 8), 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
