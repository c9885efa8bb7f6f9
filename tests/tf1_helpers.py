"""Test helpers that write checkpoints in the original TF1 format from plain arrays."""

import numpy as np
import tensorflow as tf


def read_spec(path) -> dict:
    """Parses a `tf1_variables_*.txt` listing into {name: shape}."""
    spec = {}
    for line in open(path, encoding="utf-8"):
        name, shape = line.strip().split(" ", 1)
        spec[name] = [int(d) for d in shape.strip("[]").split(",") if d.strip()]
    return spec


def random_arrays(spec: dict, seed: int = 0) -> dict:
    """Random float32 arrays for every variable; variances positive as batch norms need."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in spec.items():
        if "moving_variance" in name:
            arrays[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            arrays[name] = (rng.standard_normal(shape) * 0.05).astype(np.float32)
    return arrays


def write_tf1_checkpoint(prefix: str, arrays: dict) -> str:
    """Writes a V2 checkpoint (the format TF1's Saver wrote) holding exactly these names."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
        tensors=[tf.constant(arrays[n]) for n in names],
    )
    return prefix
