"""Exports AdapNet++ or SSMA as a TensorFlow SavedModel for serving, optionally with TFLite files.

    ssma-export -c configs/ssma_cityscapes_test.config --output exports/ssma_cityscapes
    ssma-export checkpoints/my_run --output exports/my_run
    ssma-export --checkpoint run/final.weights.h5 --model AdapNet_pp --num_classes 7 \
        --size 384x768 --fold_batch_norm --tflite float32 float16 --output exports/adapnet

The model: as for `ssma-predict` (a training run's folder or `.keras` file alone, a config, or
a checkpoint with `--model` and `--num_classes`); `--set key=value` replaces a key of the config.

The signature `serving_default` takes uint8 BGR batches (`image`, or `modality1` and `modality2`
for SSMA) and returns `class_ids` (int32, B×H×W) and `probabilities` (float32, B×H×W×C) at the
input size. With a size (the config's height × width unless `--size` says otherwise) inputs of
any size are resized inside; with `--size input` height and width must be multiples of 16.
The work is done by `ssma_tf.inference.export`.

Exit status: 0 done, 2 bad config, checkpoint or options.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ssma_tf.cli.common import add_model_source, add_version, command, model_source_or_exit, size_or_exit


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    from ssma_tf.constants import INTERPOLATIONS  # no TensorFlow: --help stays quick

    parser = argparse.ArgumentParser(
        prog="ssma-export",
        description="Export AdapNet++ or SSMA as a SavedModel with a uint8 serving signature (and TFLite)."
    )
    add_model_source(parser, "dataset whose class names and colours go into the metadata")
    parser.add_argument("-o", "--output", required=True, help="the SavedModel folder to write")
    parser.add_argument("--size", help="HEIGHTxWIDTH to resize inputs to inside the graph, or 'input' for no "
                        "resizing (inputs must be multiples of 16); default: the config's size, else 'input'")
    parser.add_argument("--modality2_interpolation", choices=INTERPOLATIONS,
                        help="SSMA: how modality 2 is resized (default: the config's, else nearest)")
    parser.add_argument("--fold_batch_norm", action="store_true",
                        help="fold batch norms into the preceding convolutions (checked to change no "
                        "probability by more than 1e-4; no measured gain on CPU, TFLite folds by itself)")
    parser.add_argument("--tflite", nargs="+", choices=("float32", "float16"), default=[],
                        help="also write TFLite conversions of the SavedModel")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_version(parser)
    return parser


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, loads the model and exports it; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = model_source_or_exit(parser, args)
    size = size_or_exit(parser, args.size)

    from ssma_tf.files import check_output
    from ssma_tf.inference.export import export_saved_model
    from ssma_tf.inference.settings import setup_inference

    check_output(args.output, what="--output", directory=True, overwrite=args.overwrite)  # before the model loads

    # Bad input (config, checkpoint, an existing output) ends the command with one line (`command`).
    setup = setup_inference(args.config, args.checkpoint, args.model, args.num_classes, args.dataset,
                            overrides=overrides)
    report = export_saved_model(
        setup.model, args.output, size=size if args.size is not None else setup.size,
        modality2_interpolation=args.modality2_interpolation or setup.modality2_interpolation,
        fold_batch_norm=args.fold_batch_norm, tflite=args.tflite, dataset=setup.dataset,
        overwrite=args.overwrite, log=lambda line: print(line, flush=True),
    )
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
