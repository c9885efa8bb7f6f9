"""Turning an original TF1 checkpoint into the project's own weights file."""

from __future__ import annotations

from typing import Sequence

from ssma_tf.checkpoints.loading import model_for_checkpoint, warn_of_released_rates
from ssma_tf.checkpoints.tf1_import import CheckpointError, LoadReport, load_tf1_checkpoint
from ssma_tf.constants import EASPP_RATES
from ssma_tf.files import atomic_path, check_output

SUFFIXES = (".weights.h5", ".keras")


def check_destination(output: str, overwrite: bool = False) -> None:
    """Raises CheckpointError (a suffix other than `.weights.h5` or `.keras`) or OutputPathError
    (an existing `output` without `overwrite`, a folder that cannot be written) before any
    checkpoint is fetched or read: a path that cannot be written fails in a second, not after."""
    if not output.endswith(SUFFIXES):
        raise CheckpointError(f"output {output!r} must end in .weights.h5 or .keras")
    check_output(output, what="output", overwrite=overwrite)


def convert_tf1_checkpoint(prefix: str, output: str, overwrite: bool = False,
                           easpp_rates: Sequence[int] = EASPP_RATES, warn_of_rates: bool = True) -> LoadReport:
    """Loads a trained TF1 AdapNet++ or SSMA checkpoint and writes it as `.weights.h5` or `.keras`.

    The file is written under a temporary name and renamed at the end, so an interrupted
    conversion never leaves a file that looks complete.

    Args:
        prefix: TF1 checkpoint prefix (or a directory with a `checkpoint` file).
        output: destination ending in `.weights.h5` (weights only) or `.keras` (model + weights).
        overwrite: replace an existing output; without it, a file that appears there during the
            conversion (another command's) is kept and this one dropped (`OutputPathError`).
        easpp_rates: the eASPP rates the network was trained with (a checkpoint does not hold
            them; a `.keras` output keeps them): the 19-class Cityscapes releases' are (6, 12, 18).
        warn_of_rates: warn (`ConfigWarning`) when a checkpoint of the class count of a release
            trained with other rates is converted with the default ones.

    Returns:
        The import report.
    """
    check_destination(output, overwrite)
    model = model_for_checkpoint(prefix, tuple(easpp_rates))
    report = load_tf1_checkpoint(model, prefix)
    if warn_of_rates:
        warn_of_released_rates(model, report, stacklevel=2)
    # Without `overwrite`, a file another command wrote there meanwhile is kept (before: replaced; helper 366).
    with atomic_path(output, overwrite=overwrite) as temporary:  # keeps the suffix Keras goes by
        if output.endswith(".keras"):
            model.save(temporary)
        else:
            model.save_weights(temporary)
    return report
