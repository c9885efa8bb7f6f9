"""Turning an original TF1 checkpoint into the project's own weights file."""

from __future__ import annotations

from ssma_tf.checkpoints.loading import model_for_checkpoint
from ssma_tf.checkpoints.tf1_import import CheckpointError, LoadReport, load_tf1_checkpoint
from ssma_tf.files import atomic_path, check_output

SUFFIXES = (".weights.h5", ".keras")


def convert_tf1_checkpoint(prefix: str, output: str, overwrite: bool = False) -> LoadReport:
    """Loads a trained TF1 AdapNet++ or SSMA checkpoint and writes it as `.weights.h5` or `.keras`.

    The file is written under a temporary name and renamed at the end, so an interrupted
    conversion never leaves a file that looks complete.

    Args:
        prefix: TF1 checkpoint prefix (or a directory with a `checkpoint` file).
        output: destination ending in `.weights.h5` (weights only) or `.keras` (model + weights).
        overwrite: replace an existing output.

    Returns:
        The import report.
    """
    if not output.endswith(SUFFIXES):
        raise CheckpointError(f"output {output!r} must end in .weights.h5 or .keras")
    # Before the checkpoint is read: a path that cannot be written fails in a second, not after.
    check_output(output, what="output", overwrite=overwrite)
    model = model_for_checkpoint(prefix)
    report = load_tf1_checkpoint(model, prefix)
    with atomic_path(output) as temporary:  # keeps the suffix Keras goes by
        if output.endswith(".keras"):
            model.save(temporary)
        else:
            model.save_weights(temporary)
    return report
